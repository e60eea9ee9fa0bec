"""WordPieceTokenizer's fast paths each give keras-hub's (tensorflow-text) ids.

The layer looks whole words up in one hash lookup and splits only the words that miss, with a
binary search over byte prefixes at every byte of every missed word (`wordpiece_search`). Each
test here aims at one path: whole words, multi-piece words, unknown and over-long words,
multi-byte characters (where a byte prefix of a piece ends inside a character), repeated words
and empty strings; the reference is keras-hub's `WordPieceTokenizer` on the same vocabulary.
"""

import keras_hub
import pytest
import tensorflow as tf

from keras_transformer.text import WordPieceTokenizer
from keras_transformer.text.wordpiece_search import PiecePrefixTable, greedy_word_pieces

VOCAB = [
    "[PAD]", "[UNK]", "the", "un", "##aff", "##able", "aff", "##a", "##b", "a", "b", "ab",
    "##ab", "qu", "##ick", "quick", "caf", "##é", "é", "##e", "e", "naï", "##ve", "##v",
    "日", "本", "##本", "語", "😀", "##😀", ".", ",", "!", "'", "s", "##s", "x", "##x",
    "straße", "##ß", "ñ", "##ñ", "n", "##n", "abcdefghijklmnop", "##bcdefghij",
]  # fmt: skip


def _ids(tokenizer, strings, batch_size=64):
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(strings, tf.string))
    return [row for batch in dataset.batch(batch_size).map(tokenizer) for row in batch.to_list()]


def _assert_equal_to_keras_hub(strings, lowercase=True, strip_accents=True, vocab=VOCAB):
    ours = WordPieceTokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents)
    reference = keras_hub.tokenizers.WordPieceTokenizer(
        vocab, lowercase=lowercase, strip_accents=strip_accents
    )
    got, expected = _ids(ours, strings), _ids(reference, strings)
    mismatches = [(s, g, e) for s, g, e in zip(strings, got, expected, strict=True) if g != e]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]!r}"
    return got


def test_whole_words_are_one_id_each():
    got = _assert_equal_to_keras_hub(["the quick caf", "a b ab", "quick"])
    assert got == [[2, 15, 16], [9, 10, 11], [15]]


def test_words_needing_pieces_take_the_longest_match_first():
    got = _assert_equal_to_keras_hub(
        ["unaffable", "abab", "aba", "qu-ick", "abcdefghijklmnopbcdefghij", "xxxxxxxx"]
    )
    assert got[0] == [3, 4, 5]  # un ##aff ##able
    assert got[1] == [11, 12]  # ab ##ab
    assert got[4] == [44, 45]  # The longest initial and continuation pieces.
    assert got[5] == [36] + [37] * 7


def test_unknown_words_are_one_unknown_id():
    got = _assert_equal_to_keras_hub(["unz", "zzz the", "aq", "abz ab"])
    assert got == [[1], [1, 2], [1], [1, 11]]


@pytest.mark.parametrize("length", [99, 100, 101, 140])
def test_over_long_words_are_unknown(length):
    got = _assert_equal_to_keras_hub(["x" * length, "ab " + "é" * (length // 2) + " ab"])
    assert (got[0] == [1]) == (length > 100)


def test_multi_byte_characters_without_normalization():
    # A byte prefix of "é" (0xC3) is a prefix of "è" too: the search must not cut inside it.
    strings = ["café", "cafè", "caféé", "naïve", "naïv", "日本語", "日本", "😀😀", "x😀", "ñññ"]
    strings += ["Straße", "straßeß", "éa", "eé", "日x本", "ab😀b"]
    got = _assert_equal_to_keras_hub(strings, lowercase=False, strip_accents=False)
    assert got[0] == [16, 17]  # caf ##é
    assert got[1] == [1]
    _assert_equal_to_keras_hub(strings, lowercase=True, strip_accents=False)
    _assert_equal_to_keras_hub(strings, lowercase=True, strip_accents=True)


def test_accents_cjk_and_punctuation_with_normalization():
    strings = ["Café, naïve!", "CAFÉ's", "日本語。x", "ÑAB.ab", "qu!ick", "un\u0301aff"]
    _assert_equal_to_keras_hub(strings)


def test_empty_strings_and_whitespace_give_no_ids():
    got = _assert_equal_to_keras_hub(["", " ", "\t\n", "ab", "", "\u200b"])
    assert got == [[], [], [], [11], [], []]


def test_a_batch_of_repeated_words_gives_each_its_ids():
    strings = ["unaffable unaffable ab abab unaffable"] * 40 + ["abab zz abab"] * 30
    got = _assert_equal_to_keras_hub(strings)
    assert got[0] == [3, 4, 5, 3, 4, 5, 11, 11, 12, 3, 4, 5]
    assert got[-1] == [11, 12, 1, 11, 12]


def test_piece_search_alone_matches_a_python_greedy_split():
    # The search on its own, on words the whole-word lookup missed, against a plain loop.
    vocab = ["[UNK]", "a", "ab", "abc", "##b", "##bc", "##c", "é", "##é", "##日本", "日"]
    table = PiecePrefixTable(vocab, "##", max_bytes_per_word=100)
    words = ["abcbc", "abbb", "aébc", "ac", "ad", "日日本", "éé", "cab", "a" * 50]

    def reference(word):
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                token = word[start:end] if start == 0 else "##" + word[start:end]
                if token in vocab:
                    pieces.append(vocab.index(token))
                    start = end
                    break
            else:
                return [0]
        return pieces

    ids, word_index, rank, counts = greedy_word_pieces(tf.constant(words), table, 0)
    ids, word_index, rank = ids.numpy().tolist(), word_index.numpy(), rank.numpy()
    got = [[] for _ in words]
    for piece, word, position in zip(ids, word_index, rank, strict=True):
        assert position == len(got[word])
        got[word].append(piece)
    assert got == [reference(word) for word in words]
    assert counts.numpy().tolist() == [len(reference(word)) for word in words]


def test_prefix_table_leaves_out_pieces_longer_than_a_word_can_be():
    table = PiecePrefixTable(["[UNK]", "abcdef", "##abcdefgh", "ab"], "##", max_bytes_per_word=4)
    assert table.max_initial_bytes == 2
    assert table.max_continuation_bytes == 0
