"""CharacterTokenizer: characters or bytes to ids and back."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text import CharacterTokenizer

CORPUS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "All: Speak, speak."]


def test_round_trip_and_unknown_characters():
    tokenizer = CharacterTokenizer.from_text(CORPUS)
    assert tokenizer.get_vocabulary()[:4] == ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    assert tokenizer.vocabulary_size() == 4 + len(set("".join(CORPUS)))
    ids = tokenizer(CORPUS)
    assert [s.decode() for s in tokenizer.detokenize(ids).numpy()] == CORPUS
    assert 0 not in ids.flat_values.numpy()  # Id 0 is padding only.
    unknown = tokenizer(["Zé."]).to_list()[0]
    assert unknown[0] == unknown[1] == tokenizer.token_to_id("[UNK]")
    assert tokenizer.detokenize(tf.constant([unknown])).numpy()[0].decode() == "\ufffd\ufffd."


def test_byte_unit_covers_every_byte():
    tokenizer = CharacterTokenizer.from_text([bytes(range(256))], unit="byte")
    data = tf.constant([b"caf\xc3\xa9 \xff\x00"])
    ids = tokenizer(data)
    assert ids.to_list()[0].count(tokenizer.token_to_id("[UNK]")) == 0
    assert tokenizer.detokenize(ids).numpy()[0] == b"caf\xc3\xa9 \xff\x00"


def test_dense_output_config_round_trip_and_tf_data():
    tokenizer = CharacterTokenizer.from_text(CORPUS, sequence_length=10)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer))
    expected = tokenizer(CORPUS).numpy()
    assert expected.shape == (2, 10)
    np.testing.assert_array_equal(restored(CORPUS).numpy(), expected)
    dataset = tf.data.Dataset.from_tensor_slices(CORPUS).batch(2).map(tokenizer)
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), expected)


def test_vocabulary_errors():
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        CharacterTokenizer(["[PAD]", "a"])
    with pytest.raises(ValueError, match="id 0"):
        CharacterTokenizer(["[UNK]", "[PAD]", "a"])
    with pytest.raises(ValueError, match="unit"):
        CharacterTokenizer(["[PAD]", "[UNK]"], unit="word")
