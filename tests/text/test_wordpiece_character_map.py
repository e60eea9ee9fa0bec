"""WordPieceTokenizer's per-character normalization gives the words of the exact path.

Strings whose characters `word_character_map` covers are normalized by one table lookup per
character, before splitting; the others take the exact path (NFD accent stripping on the
string, then case folding word by word). Here the two are compared on every character the table
maps, on random strings of covered characters, and on strings the table must leave to the exact
path, for each normalization setting.
"""

import random
import unicodedata

import pytest
import tensorflow as tf

from keras_transformer.text import WordPieceTokenizer
from keras_transformer.text.normalization import word_character_map
from keras_transformer.text.string_ops import split_whitespace
from keras_transformer.text.wordpiece import _ASCII_SYMBOL_RANGES, CJK_RANGES

SETTINGS = [(True, True), (True, False), (False, True), (False, False)]


def _exact_words(tokenizer, strings):
    """The words of the exact path alone (what every non-ASCII string took before).

    Words that case folding empties (default ignorables alone) are left out: they give no
    token, and the per-character path does not make them.
    """
    text = tf.constant(strings, tf.string)
    if tokenizer.lowercase:
        text = tf.strings.lower(text)
    text = tokenizer._normalize_exact(text)
    text = tf.strings.regex_replace(text, tokenizer._keep_pattern, r" \0 ")
    words, word_row, _ = split_whitespace(text)
    if tokenizer.lowercase:
        words = tokenizer._normalizer.case_fold(words)
    rows = [[] for _ in strings]
    for word, row in zip(words.numpy().tolist(), word_row.numpy().tolist(), strict=True):
        if word:
            rows[row].append(word)
    return rows


def _assert_same_words(tokenizer, strings):
    got = tokenizer.split_words(tf.constant(strings, tf.string)).to_list()
    expected = _exact_words(tokenizer, strings)
    mismatches = [(s, g, e) for s, g, e in zip(strings, got, expected, strict=True) if g != e]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]!r}"


def _covered(lowercase, strip_accents):
    mapping, ranges = word_character_map(
        strip_accents, lowercase, _ASCII_SYMBOL_RANGES + CJK_RANGES
    )
    return mapping, [c for low, high in ranges for c in range(low, high + 1)]


@pytest.mark.parametrize("lowercase, strip_accents", SETTINGS)
def test_every_mapped_character_alone_and_between_letters(lowercase, strip_accents):
    tokenizer = WordPieceTokenizer(["[UNK]"], lowercase=lowercase, strip_accents=strip_accents)
    mapping, _ = _covered(lowercase, strip_accents)
    chars = [chr(c) for c in sorted(mapping)]
    strings = chars + [f"Ab{c}cD" for c in chars] + [f"{c}{c}x{c}" for c in chars]
    _assert_same_words(tokenizer, strings)


@pytest.mark.parametrize("lowercase, strip_accents", SETTINGS)
def test_random_strings_of_covered_characters(lowercase, strip_accents):
    tokenizer = WordPieceTokenizer(["[UNK]"], lowercase=lowercase, strip_accents=strip_accents)
    mapping, covered = _covered(lowercase, strip_accents)
    rng = random.Random(0)
    pool = [chr(c) for c in mapping] + [chr(c) for c in rng.sample(covered, 3000)]
    pool += list("aZ .,-'\t") * 50
    strings = ["".join(rng.choice(pool) for _ in range(rng.randrange(1, 16))) for _ in range(3000)]
    _assert_same_words(tokenizer, strings)


@pytest.mark.parametrize("lowercase, strip_accents", SETTINGS)
def test_strings_the_table_leaves_to_the_exact_path(lowercase, strip_accents):
    tokenizer = WordPieceTokenizer(["[UNK]"], lowercase=lowercase, strip_accents=strip_accents)
    _, covered = _covered(lowercase, strip_accents)
    covered = set(covered)
    # Combining marks, a vowel sign, Hangul jamo, an unassigned character, U+FFFD, a mark
    # after punctuation, a character that folds to a space and a mark (U+00B4).
    samples = ["e\u0301", "\u0915\u093f", "\u1100\u1161x", "a\u0378b", "x\ufffdy", "a.\u0301b"]
    samples += ["a\u00b4b", "\u0b47\u0b3e", "Ａ\u0301b", "\u1e9b\u0323"]
    samples += ["x\U0001d16d\U0001d165y"]  # Two spacing marks that NFD reorders.
    assert any(not set(map(ord, s)) <= covered for s in samples)
    strings = samples + [f"Café {s} ñ" for s in samples]
    _assert_same_words(tokenizer, strings)
    # Invalid UTF-8 is replaced on the exact path as before.
    invalid = tokenizer.split_words(tf.constant([b"caf\xc3 \xff\xfeok", "Öl".encode()]))
    assert invalid.to_list()[0] == _exact_words(tokenizer, [b"caf\xc3 \xff\xfeok"])[0]


def test_the_table_covers_common_text_and_folds_it():
    mapping, covered = _covered(True, True)
    covered = set(covered)
    assert {ord(c) for c in "éÉ–’½ßﬁÅ한日本語\u200b"} <= covered
    assert mapping[ord("É")] == "e" and mapping[ord("½")] == "1\u20442"
    assert mapping[0x200B] == " "  # A format character: a word delimiter.
    # NBSP folds to a space inside its word (folding comes after splitting): not covered.
    assert 0x00A0 not in covered
    assert ord("\ufffd") not in covered and 0x0378 not in covered  # U+0378 is unassigned.
    assert all(unicodedata.category(chr(c)) != "Cn" for c in covered)
