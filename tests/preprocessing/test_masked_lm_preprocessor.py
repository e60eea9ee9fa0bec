"""MaskedLMPreprocessor: the same batches as the pipeline code it replaced (same seed stream),
`[MASK]` markers for fill_mask, config round trip, bad input."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from preprocessing_helpers import TEXTS, word_pieces

from keras_transformer.data.pipelines import masked_lm_dataset
from keras_transformer.preprocessing import MaskedLMPreprocessor
from keras_transformer.text import MaskedLMMaskGenerator, StartEndPacker
from keras_transformer.text.vocabulary import SPECIAL_TOKENS

T = 16


def _old_masked_lm_dataset(texts, tokenizer, sequence_length, batch_size, seed):
    """`masked_lm_dataset` as it was before the preprocessors (no shuffle), for reference."""
    ids = {t: tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")}
    packer = StartEndPacker(sequence_length, ids["[CLS]"], ids["[SEP]"], ids["[PAD]"])
    vocabulary = tokenizer.get_vocabulary()
    masker = MaskedLMMaskGenerator(
        vocabulary_size=tokenizer.vocabulary_size(),
        mask_token_id=ids["[MASK]"],
        max_selections=max(1, math.ceil(0.15 * sequence_length)),
        unselectable_token_ids=[
            vocabulary.index(t) for t in SPECIAL_TOKENS if t != "[UNK]" and t in vocabulary
        ],
    )
    batches = texts.batch(batch_size)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def to_inputs(text, random_value):
        token_ids, padding_mask = packer(tokenizer(text))
        masked = masker(
            token_ids, padding_mask, tf.stack([tf.constant(seed, tf.int64), random_value])
        )
        x = {
            "token_ids": masked["token_ids"],
            "padding_mask": padding_mask,
            "segment_ids": tf.zeros_like(token_ids),
            "mask_positions": masked["mask_positions"],
        }
        return x, masked["mask_ids"], masked["mask_weights"]

    return tf.data.Dataset.zip((batches, seeds)).map(to_inputs)


def _numpy(dataset, epochs):
    return [tf.nest.map_structure(np.asarray, b) for _ in range(epochs) for b in dataset]


def test_same_batches_as_the_old_pipeline_for_the_same_seed():
    texts = tf.data.Dataset.from_tensor_slices(TEXTS * 4)
    new = _numpy(masked_lm_dataset(texts, word_pieces(), T, 5, seed=11), epochs=2)
    old = _numpy(_old_masked_lm_dataset(texts, word_pieces(), T, 5, seed=11), epochs=2)
    assert len(new) == len(old) == 10
    for a, b in zip(new, old, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    assert any(b[2].sum() > 0 for b in new)  # Tokens were chosen.


def test_a_given_seed_fixes_the_masks():
    preprocessor = MaskedLMPreprocessor(word_pieces(), T, mask_selection_rate=0.5)
    seed = tf.constant([3, 4], tf.int64)
    first, again = preprocessor(TEXTS, seed=seed), preprocessor(TEXTS, seed=seed)
    tf.nest.map_structure(np.testing.assert_array_equal, first, again)
    x, mask_ids, weights = first
    positions = x["mask_positions"].numpy()
    clean = preprocessor.packer(preprocessor.tokenizer(TEXTS))[0].numpy()
    rows = np.arange(len(TEXTS))[:, None]
    np.testing.assert_array_equal(np.where(weights > 0, clean[rows, positions], 0), mask_ids)


def _fill_mask_reference(tokenizer, texts, length):
    """Split on the literal "[MASK]", tokenize the pieces, put the mask id between them."""
    cls, sep, mask = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[MASK]"))
    rows = []
    for text in texts:
        ids = []
        for i, piece in enumerate(text.split("[MASK]")):
            ids += ([mask] if i else []) + tokenizer([piece]).to_list()[0]
        rows.append([cls] + ids[: length - 2] + [sep])
    width = max(len(r) for r in rows)
    return [r + [0] * (width - len(r)) for r in rows], [
        [1] * len(r) + [0] * (width - len(r)) for r in rows
    ]


def test_fill_mask_preprocess_keeps_literal_masks():
    tokenizer = word_pieces()
    preprocessor = MaskedLMPreprocessor(tokenizer, T)
    texts = ["Paris is the [MASK] of France.", "[MASK][MASK] x [MASK]", "", "no mask"] + TEXTS
    out = preprocessor.fill_mask_preprocess(tf.constant(texts))
    token_ids, mask = _fill_mask_reference(tokenizer, texts, T)
    assert out["token_ids"].numpy().tolist() == token_ids
    assert out["padding_mask"].numpy().astype(int).tolist() == mask
    assert (out["token_ids"].numpy() == tokenizer.token_to_id("[MASK]")).sum() >= 5


def test_config_round_trip_gives_equal_outputs():
    preprocessor = MaskedLMPreprocessor(word_pieces(), T, max_selections=4, seed=9)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(preprocessor)
    )
    assert restored.get_config() == preprocessor.get_config()
    seed = tf.constant([1, 2], tf.int64)
    tf.nest.map_structure(
        np.testing.assert_array_equal, preprocessor(TEXTS, seed=seed), restored(TEXTS, seed=seed)
    )


def test_bad_input():
    with pytest.raises(ValueError, match=r"MaskedLMPreprocessor needs .*'\[MASK\]' \(mask_token\)"):
        MaskedLMPreprocessor(word_pieces(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]), T)
    preprocessor = MaskedLMPreprocessor(word_pieces(), T)
    with pytest.raises(ValueError, match=r"takes `x` as strings .* dtype float32"):
        preprocessor(tf.constant([1.0]))
    with pytest.raises(ValueError, match="`seed` must be an int"):
        MaskedLMPreprocessor(word_pieces(), T, seed="0")
