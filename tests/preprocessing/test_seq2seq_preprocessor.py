"""Seq2SeqPreprocessor: teacher forcing equals a Python reference, generation inputs, config
round trip, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from preprocessing_helpers import CHARACTER_CORPUS, TEXTS, characters, word_pieces

from keras_transformer.preprocessing import Seq2SeqPreprocessor

S, T = 10, 8


def _frame(ids, length, start, end, pad):
    ids = ([start] if start is not None else []) + ids
    ids = ids[: length - 1] + [end]
    return ids + [pad] * (length - len(ids)), [True] * len(ids) + [False] * (length - len(ids))


def test_teacher_forcing_equals_the_reference():
    source, target = word_pieces(), characters()
    preprocessor = Seq2SeqPreprocessor(source, S, T, target_tokenizer=target)
    targets_text = (CHARACTER_CORPUS * 3)[: len(TEXTS)]
    x, labels, weights = preprocessor(tf.constant(TEXTS), tf.constant(targets_text))
    eos, pad = source.token_to_id("[EOS]"), source.token_to_id("[PAD]")
    bos_t, eos_t, pad_t = (target.token_to_id(t) for t in ("[BOS]", "[EOS]", "[PAD]"))
    for row, (text, goal) in enumerate(zip(TEXTS, targets_text, strict=True)):
        ids, mask = _frame(source([text]).to_list()[0], S, None, eos, pad)
        assert x["encoder_token_ids"][row].numpy().tolist() == ids
        assert x["encoder_padding_mask"][row].numpy().tolist() == mask
        ids, mask = _frame(target([goal]).to_list()[0], T + 1, bos_t, eos_t, pad_t)
        assert x["decoder_token_ids"][row].numpy().tolist() == ids[:-1]
        assert x["decoder_padding_mask"][row].numpy().tolist() == mask[:-1]
        assert labels[row].numpy().tolist() == ids[1:]
        assert weights[row].numpy().tolist() == [float(m) for m in mask[1:]]
    assert preprocessor.start_token_id == bos_t and preprocessor.end_token_id == eos_t
    inputs = preprocessor.generate_preprocess(tf.constant(TEXTS))
    np.testing.assert_array_equal(inputs["encoder_token_ids"], x["encoder_token_ids"])
    np.testing.assert_array_equal(inputs["encoder_padding_mask"], x["encoder_padding_mask"])
    goal = target(CHARACTER_CORPUS[:1])
    assert preprocessor.detokenize(goal).numpy().tolist() == [CHARACTER_CORPUS[0].encode()]


def test_config_round_trip_gives_equal_outputs():
    preprocessor = Seq2SeqPreprocessor(word_pieces(), S, T, target_tokenizer=characters())
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(preprocessor)
    )
    assert restored.get_config() == preprocessor.get_config()
    pair = (tf.constant(TEXTS), tf.constant(TEXTS))
    tf.nest.map_structure(np.testing.assert_array_equal, preprocessor(*pair), restored(*pair))
    same = Seq2SeqPreprocessor(word_pieces(), S, T)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(same))
    assert again.target_tokenizer is None and again.start_token_id == same.start_token_id


def test_bad_input():
    lacking = characters(["[PAD]", "[UNK]", "[EOS]"])
    with pytest.raises(ValueError, match=r"'\[BOS\]' \(target start\)"):
        Seq2SeqPreprocessor(word_pieces(), S, T, target_tokenizer=lacking)
    preprocessor = Seq2SeqPreprocessor(word_pieces(), S, T)
    with pytest.raises(ValueError, match=r"takes `target` as strings .* dtype int32"):
        preprocessor(tf.constant(["a"]), tf.constant([1]))
    with pytest.raises(ValueError, match="one rank"):
        preprocessor(tf.constant(["a"]), tf.constant("b"))
