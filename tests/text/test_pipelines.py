"""Task pipelines: determinism, fresh masks per epoch, shifted targets, model input formats."""

import numpy as np
import pytest
import tensorflow as tf
from text_samples import sample_vocabulary

from keras_transformer.data.pipelines import (
    causal_lm_dataset,
    classification_dataset,
    masked_lm_dataset,
    seq2seq_dataset,
)
from keras_transformer.text import CharacterTokenizer, WordPieceTokenizer

TEXTS = [
    f"the {w} movie was {a} and {b}"
    for w in ("first", "second", "last", "long")
    for a in ("great", "terrible", "boring")
    for b in ("fun", "sad", "odd", "unbelievable")
]
VOCAB = sample_vocabulary(TEXTS) + ["[BOS]", "[EOS]"]


def _tokenizer():
    return WordPieceTokenizer(VOCAB)


def _as_numpy(dataset, epochs=1):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for _ in range(epochs) for b in dataset]


def test_masked_lm_same_seed_same_batches_fresh_masks_each_epoch():
    texts = tf.data.Dataset.from_tensor_slices(TEXTS)
    make = lambda seed: masked_lm_dataset(  # noqa: E731
        texts, _tokenizer(), 16, 8, seed=seed, shuffle_buffer_size=32
    )
    first, again = _as_numpy(make(5), epochs=2), _as_numpy(make(5), epochs=2)
    for a, b in zip(first, again, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    epochs = len(first) // 2
    one, two = first[:epochs], first[epochs:]
    assert any(
        not np.array_equal(a[0]["mask_positions"], b[0]["mask_positions"])
        for a, b in zip(one, two, strict=True)
    )
    x, mask_ids, mask_weights = first[0]
    assert set(x) == {"token_ids", "padding_mask", "segment_ids", "mask_positions"}
    assert x["token_ids"].dtype == np.int32 and x["mask_positions"].shape == (8, 3)
    assert mask_ids.dtype == np.int32 and mask_weights.dtype == np.float32


def test_causal_lm_targets_are_the_inputs_shifted_by_one():
    tokenizer = CharacterTokenizer.from_text(TEXTS)
    dataset = causal_lm_dataset(tf.data.Dataset.from_tensor_slices(TEXTS), tokenizer, 20, 4)
    batches = _as_numpy(dataset)
    stream = tokenizer(TEXTS).to_list()
    eos = tokenizer.token_to_id("[EOS]")
    flat = [i for ids in stream for i in ids + [eos]]
    for index, (x, targets, weights) in enumerate(batches):
        np.testing.assert_array_equal(targets[:, :-1], x["token_ids"][:, 1:])
        assert x["padding_mask"].all() and (weights == 1).all()
        for row in range(4):  # Contiguous blocks of the stream, in order.
            start = (index * 4 + row) * 21
            assert x["token_ids"][row].tolist() == flat[start : start + 20]
            assert targets[row].tolist() == flat[start + 1 : start + 21]
    assert len(batches) == len(flat) // 21 // 4


def test_classification_and_pairs():
    labels = list(range(len(TEXTS)))
    single = classification_dataset(
        tf.data.Dataset.from_tensor_slices((TEXTS, labels)), _tokenizer(), 12, 5
    )
    x, y = next(iter(single))
    assert set(x) == {"token_ids", "padding_mask", "segment_ids"}
    assert y.dtype == tf.int32 and y.numpy().tolist() == labels[:5]
    assert (x["token_ids"].numpy()[:, 0] == VOCAB.index("[CLS]")).all()
    pairs = classification_dataset(
        tf.data.Dataset.from_tensor_slices(((TEXTS, TEXTS), labels)), _tokenizer(), 12, 5
    )
    x, _ = next(iter(pairs))
    assert set(x["segment_ids"].numpy().ravel()) == {0, 1}


def test_seq2seq_teacher_forcing():
    dataset = seq2seq_dataset(
        tf.data.Dataset.from_tensor_slices((TEXTS, TEXTS[::-1])), _tokenizer(), 12, 10, 4
    )
    x, targets, weights = next(iter(dataset))
    decoder = x["decoder_token_ids"].numpy()
    assert (decoder[:, 0] == VOCAB.index("[BOS]")).all()
    np.testing.assert_array_equal(decoder[:, 1:], targets.numpy()[:, :-1])
    np.testing.assert_array_equal(weights.numpy() > 0, targets.numpy() != 0)
    assert x["encoder_token_ids"].shape == (4, 12) and x["decoder_padding_mask"].dtype == tf.bool


def test_missing_special_tokens_are_named():
    tokenizer = WordPieceTokenizer(["[UNK]", "the"])
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        masked_lm_dataset(tf.data.Dataset.from_tensor_slices(TEXTS), tokenizer, 8, 2)
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        masked_lm_dataset(TEXTS, tokenizer, 8, 2)
