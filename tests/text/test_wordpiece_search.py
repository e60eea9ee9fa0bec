"""The integer piece search (`wordpiece_search`) against a plain Python greedy WordPiece.

Random vocabularies with pieces long enough to need every prefix level (7 bytes, then 5 more at
a time), multi-byte characters, and words of more than 16 pieces (the pointer-doubling rounds
that run only when a chain goes on), compared word by word with a direct longest-match loop.
"""

import random

import pytest
import tensorflow as tf

from keras_transformer.text.wordpiece_search import PiecePrefixTable, greedy_word_pieces

ALPHABET = "abcdé日"


def _reference(word, vocab):
    ids = {token: i for i, token in enumerate(vocab)}  # A later duplicate wins, as the table.
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            token = word[start:end] if start == 0 else "##" + word[start:end]
            if token in ids and len(word[start:end].encode()) <= 100:
                pieces.append(ids[token])
                start = end
                break
        else:
            return [0]
    return pieces


def _split(words, vocab, max_bytes_per_word=100):
    table = PiecePrefixTable(vocab, "##", max_bytes_per_word=max_bytes_per_word)
    ids, word_index, rank, counts = greedy_word_pieces(tf.constant(words, tf.string), table, 0)
    got = [[] for _ in words]
    for piece, word, position in zip(ids.numpy(), word_index.numpy(), rank.numpy(), strict=True):
        assert position == len(got[word])
        got[word].append(int(piece))
    assert counts.numpy().tolist() == [len(row) for row in got]
    return got, table


def _random_vocab(rng, size, longest):
    vocab = ["[UNK]"]
    for _ in range(size):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, longest)))
        vocab.append(text if rng.random() < 0.5 else "##" + text)
    return vocab


@pytest.mark.parametrize("seed", range(4))
def test_random_vocabularies_match_a_python_greedy_split(seed):
    rng = random.Random(seed)
    vocab = _random_vocab(rng, 400, longest=14)  # Up to 14 characters: up to 42 bytes.
    vocab += [c for c in ALPHABET] + ["##" + c for c in ALPHABET[:4]]
    pieces = vocab[1:]
    words = []
    for _ in range(300):
        # Words glued from pieces (so that long pieces match), with stray characters.
        parts = [rng.choice(pieces).removeprefix("##") for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            parts.insert(rng.randint(0, len(parts)), rng.choice(ALPHABET + "z"))  # z: no piece.
        words.append("".join(parts))
    got, table = _split(words, vocab)
    assert len(table.level_offsets) >= 4  # Prefixes of more than 17 bytes were looked up.
    assert got == [_reference(word, vocab) for word in words]
    assert any(row == [0] for row in got) and any(len(row) > 3 for row in got)


def test_words_of_many_pieces_run_every_doubling_round():
    vocab = ["[UNK]", "a", "##a", "##b", "b", "##ab"]
    words = ["a" * n for n in (1, 15, 16, 17, 40, 100)] + ["ab" * 30, "b" + "a" * 63 + "c"]
    got, _ = _split(words, vocab)
    assert got == [_reference(word, vocab) for word in words]
    assert got[4] == [1] + [2] * 39
    assert got[-1] == [0]


def test_no_words_and_an_empty_vocabulary_of_pieces():
    assert _split([], ["[UNK]", "a"])[0] == []
    assert _split(["abc", "x"], ["[UNK]", "##"])[0] == [[0], [0]]


def test_level_width_follows_the_number_of_long_prefixes():
    # Few prefixes end a level: 7 bytes per further level; many: fewer bytes, more levels.
    vocab = ["[UNK]", "abcdefghijklmnopqrstu", "##vwxyzabcdefghij", "a", "##b", "##vwx"]
    words = ["abcdefghijklmnopqrstuvwxyzabcdefghij", "abcdefghijklmnopqrstuvwxb", "ab"]
    got, table = _split(words, vocab)
    assert table.level_bytes == 7 and table.level_offsets == [7, 14, 21]
    assert got == [_reference(word, vocab) for word in words] == [[1, 2], [1, 5, 4], [3, 4]]
    rng = random.Random(5)
    _, many = _split(["a"], _random_vocab(rng, 400, longest=14))
    assert many.level_bytes < 7
