"""In-graph NFD accent stripping and NFKC_Casefold equal tensorflow-text's ICU versions."""

import random
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

from keras_transformer.text import UnicodeNormalizer, WordPieceTokenizer

# Blocks rich in decompositions, case mappings, combining marks and compositions.
BLOCKS = [
    (0x20, 0x7F),
    (0xA0, 0x250),
    (0x300, 0x370),
    (0x370, 0x530),
    (0x900, 0xD80),
    (0x1100, 0x1200),
    (0x1E00, 0x2000),
    (0x2000, 0x2400),
    (0x3000, 0x3100),
    (0xAC00, 0xD7A4),
    (0xF900, 0xFB00),
    (0xFB00, 0xFFF0),
    (0x1D100, 0x1D200),
    (0x1F300, 0x1F700),
]


def _random_strings(count, seed):
    rng = random.Random(seed)
    strings = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randrange(0, 12)):
            low, high = rng.choice(BLOCKS)
            char = chr(rng.randrange(low, high))
            if unicodedata.category(char) != "Cn":  # Unassigned in Unicode 14: skipped.
                chars.append(char)
        strings.append("".join(chars))
    return strings


def test_strip_accents_and_case_fold_equal_icu():
    strings = tf.constant([s.encode() for s in _random_strings(6000, seed=0)])
    normalizer = UnicodeNormalizer()
    stripped = tf.strings.regex_replace(tf_text.normalize_utf8(strings, "NFD"), r"\p{Mn}", "")
    tf.debugging.assert_equal(normalizer.strip_accents(strings), stripped)
    tf.debugging.assert_equal(normalizer.case_fold(strings), tf_text.case_fold_utf8(strings))
    tf.debugging.assert_equal(
        normalizer.case_fold(normalizer.strip_accents(strings)), tf_text.case_fold_utf8(stripped)
    )


def test_hand_checked_examples():
    normalizer = UnicodeNormalizer()
    folded = normalizer.case_fold(tf.constant(["Straße", "ﬁ", "Ｆｕｌｌ", "e\u0301", "한국어"]))
    assert [s.decode() for s in folded.numpy()] == ["strasse", "fi", "full", "é", "한국어"]
    stripped = normalizer.strip_accents(tf.constant(["Crème brûlée", "Ångström", "한"]))
    assert [s.decode() for s in stripped.numpy()] == [
        "Creme brulee",
        "Angstrom",
        "\u1112\u1161\u11ab",  # NFD splits Hangul syllables into jamo.
    ]


def test_nul_and_control_characters_split_words():
    # keras-hub drops everything after a NUL (a tensorflow-text quirk); we treat NUL, like
    # every other control character, as whitespace.
    tokenizer = WordPieceTokenizer(["[UNK]", "a", "b"])
    assert tokenizer(tf.constant([b"a\x00b", b"a\x07b", b"a\xc2\x85b"])).to_list() == [
        [1, 2],
        [1, 2],
        [1, 2],
    ]
