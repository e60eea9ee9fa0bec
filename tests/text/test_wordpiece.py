"""WordPieceTokenizer: the same ids as keras-hub's (tensorflow-text) tokenizer, and its contract."""

import random

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from text_samples import sample_vocabulary, varied_strings

from keras_transformer.text import WordPieceTokenizer

SAMPLE = varied_strings(3000)
VOCAB = sample_vocabulary(SAMPLE)


def _run_in_tf_data(tokenizer, strings, batch_size=128):
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(strings, tf.string))
    dataset = dataset.batch(batch_size).map(tokenizer)
    return [row for batch in dataset for row in batch.to_list()]


@pytest.mark.parametrize(
    "lowercase, strip_accents",
    [(True, True), (False, False), (True, False), (False, True)],
)
def test_ids_equal_keras_hub_on_varied_sample(lowercase, strip_accents):
    strings = SAMPLE if lowercase and strip_accents else SAMPLE[:800]
    ours = WordPieceTokenizer(VOCAB, lowercase=lowercase, strip_accents=strip_accents)
    reference = keras_hub.tokenizers.WordPieceTokenizer(
        VOCAB, lowercase=lowercase, strip_accents=strip_accents
    )
    expected = _run_in_tf_data(reference, strings)
    got = _run_in_tf_data(ours, strings)
    mismatches = [(s, g, e) for s, g, e in zip(strings, got, expected, strict=True) if g != e]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]!r}"
    # The sample exercises every path: unknown words, multi-piece words and empty outputs.
    unk = ours.token_to_id("[UNK]")
    assert any(unk in row for row in got)
    assert any(len(row) == 0 for row in got)
    assert sum(len(row) for row in got) > 5 * len(strings)


def test_eager_call_matches_tf_data_and_scalar_input():
    tokenizer = WordPieceTokenizer(VOCAB)
    strings = SAMPLE[:200]
    eager = tokenizer(strings).to_list()
    assert eager == _run_in_tf_data(tokenizer, strings)
    assert tokenizer(strings[20]).numpy().tolist() == eager[20]


def test_dense_output_truncates_and_pads_with_zero():
    tokenizer = WordPieceTokenizer(VOCAB, sequence_length=8)
    ragged = WordPieceTokenizer(VOCAB)(SAMPLE[:50]).to_list()
    dense = tokenizer(SAMPLE[:50]).numpy()
    assert dense.shape == (50, 8)
    for row, ids in zip(dense, ragged, strict=True):
        expected = (ids + [0] * 8)[:8]
        assert row.tolist() == expected


def test_hand_computed_ids_and_detokenize():
    vocab = ["[PAD]", "[UNK]", "the", "qu", "##ick", "br", "##own", "fox", ".", "un", "##aff"]
    tokenizer = WordPieceTokenizer(vocab)
    ids = tokenizer(["The QUICK brown fox.", "unaffable", ""]).to_list()
    assert ids == [[2, 3, 4, 5, 6, 7, 8], [1], []]
    assert tokenizer.detokenize([[2, 3, 4, 5, 6, 7, 8]]).numpy().tolist() == [
        b"the quick brown fox ."
    ]


def test_detokenize_equals_keras_hub():
    reference = keras_hub.tokenizers.WordPieceTokenizer(VOCAB)
    ours = WordPieceTokenizer(VOCAB)
    rng = random.Random(0)
    ids = [[rng.randrange(len(VOCAB)) for _ in range(rng.randrange(0, 12))] for _ in range(300)]
    dataset = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(ids, dtype=tf.int32))
    expected = [s for b in dataset.batch(100).map(reference.detokenize) for s in b.numpy()]
    got = [s for b in dataset.batch(100).map(ours.detokenize) for s in b.numpy()]
    assert got == expected


def test_invalid_utf8_bytes_become_replacement_character():
    vocab = ["[PAD]", "[UNK]", "caf", "##\ufffd", "ok"]
    tokenizer = WordPieceTokenizer(vocab)
    ids = tokenizer(tf.constant([b"caf\xff ok", b"caf\xef\xbf\xbd ok", b"\xc3"])).to_list()
    assert ids[0] == ids[1] == [2, 3, 4]
    assert ids[2] == [1]


def test_words_longer_than_the_byte_cap_are_unknown():
    tokenizer = WordPieceTokenizer(["[UNK]", "a", "##a"], max_bytes_per_word=10)
    assert tokenizer(["a" * 10, "a" * 11]).to_list() == [[1] + [2] * 9, [0]]


def test_config_round_trip_and_keras_serialization():
    tokenizer = WordPieceTokenizer(VOCAB, sequence_length=16, lowercase=False, name="wp")
    config = tokenizer.get_config()
    assert config["vocabulary"] == VOCAB and config["lowercase"] is False
    restored = WordPieceTokenizer.from_config(config)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer))
    expected = tokenizer(SAMPLE[:100]).numpy()
    np.testing.assert_array_equal(restored(SAMPLE[:100]).numpy(), expected)
    np.testing.assert_array_equal(again(SAMPLE[:100]).numpy(), expected)


def test_vocabulary_file_is_read(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    from_file = WordPieceTokenizer(str(path))
    assert from_file.get_vocabulary() == VOCAB
    assert from_file(SAMPLE[:50]).to_list() == WordPieceTokenizer(VOCAB)(SAMPLE[:50]).to_list()


def test_clear_errors():
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        WordPieceTokenizer(["[PAD]", "a"])
    with pytest.raises(ValueError, match="twice"):
        WordPieceTokenizer(["[UNK]", "a", "a"])
    tokenizer = WordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(ValueError, match="dtype=int32"):
        tokenizer(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        tokenizer(tf.constant([["a"], ["b"]]))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("[CLS]")
    assert tokenizer([]).to_list() == []
