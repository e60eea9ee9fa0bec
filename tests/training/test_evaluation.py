"""bits_per_character: characters counted exactly (byte-level tokens that split a character
included) and bits equal to an analytic reference."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.preprocessing import CausalLMPreprocessor
from keras_transformer.text import BytePairTokenizer, CharacterTokenizer
from keras_transformer.text.byte_pair_files import BYTE_SYMBOLS
from keras_transformer.training.evaluation import bits_per_character, characters_per_id

TEXTS = ["To be, or not 🙂 to be", "ROMEO: 日本語 é", "a"]


class Uniform:
    """A stand-in causal LM whose logits are all zero: every token costs log(V) nats."""

    def __init__(self, vocabulary_size):
        self.vocabulary_size = vocabulary_size

    def __call__(self, inputs, training=False):
        shape = tf.shape(inputs["token_ids"])
        return tf.zeros([shape[0], shape[1], self.vocabulary_size])


def byte_tokenizer():
    # No merges: every UTF-8 byte is a token, so emoji and CJK characters span several.
    return BytePairTokenizer(
        list(BYTE_SYMBOLS) + ["<|endoftext|>"], [], special_tokens=["<|endoftext|>"]
    )


def test_characters_per_id_sum_to_the_text_length_even_across_split_characters():
    tokenizer = byte_tokenizer()
    counts = characters_per_id(tokenizer)
    for text in TEXTS:
        ids = tokenizer([text]).to_list()[0]
        assert len(ids) == len(text.encode("utf-8"))  # a character of n bytes is n tokens
        assert int(counts[ids].sum()) == len(text)


@pytest.mark.parametrize("kind", ["bytes", "characters"])
def test_bits_per_character_of_a_uniform_model_equals_the_analytic_value(kind):
    tokenizer = byte_tokenizer() if kind == "bytes" else CharacterTokenizer.from_text(TEXTS)
    stream = CausalLMPreprocessor(tokenizer, 1).stream(TEXTS).numpy()
    preprocessor = CausalLMPreprocessor(tokenizer, len(stream) - 1)  # one block: the stream
    size = tokenizer.vocabulary_size()
    result = bits_per_character(Uniform(size), preprocessor, TEXTS)
    # Targets: the whole stream but its first token (a one-character "T"); each end token
    # counts one character.
    characters = sum(len(t) for t in TEXTS) + len(TEXTS) - 1
    tokens = len(stream) - 1
    assert result["characters"] == characters and result["tokens"] == tokens
    assert result["blocks"] == 1
    assert result["loss_per_token"] == pytest.approx(math.log(size), rel=1e-6)
    expected = tokens * math.log2(size) / characters
    assert result["bits_per_character"] == pytest.approx(expected, rel=1e-6)
    if kind == "characters":
        assert result["bits_per_character"] == pytest.approx(math.log2(size), rel=1e-6)


def test_blocks_are_cut_as_training_cuts_them_and_max_blocks_limits_them():
    tokenizer = CharacterTokenizer.from_text(TEXTS)
    preprocessor = CausalLMPreprocessor(tokenizer, 4)
    stream = preprocessor.stream(TEXTS).numpy()
    result = bits_per_character(Uniform(tokenizer.vocabulary_size()), preprocessor, TEXTS)
    assert result["blocks"] == len(stream) // 5 and result["tokens"] == 4 * (len(stream) // 5)
    limited = bits_per_character(
        Uniform(tokenizer.vocabulary_size()), preprocessor, TEXTS, max_blocks=2
    )
    assert limited["blocks"] == 2 and limited["tokens"] == 8
    batches = bits_per_character(
        Uniform(tokenizer.vocabulary_size()), preprocessor, TEXTS, batch_size=3, drop_remainder=True
    )
    assert batches["blocks"] == (len(stream) // 5) // 3 * 3


def test_too_little_text_is_a_clear_error():
    tokenizer = CharacterTokenizer.from_text(TEXTS)
    with pytest.raises(ValueError, match="fewer than one block"):
        bits_per_character(
            Uniform(tokenizer.vocabulary_size()), CausalLMPreprocessor(tokenizer, 500), ["ab"]
        )


def test_a_model_that_learned_the_text_scores_fewer_bits_than_uniform():
    # A bigram table from the stream itself: an independent model whose bits are computed here.
    tokenizer = CharacterTokenizer.from_text(TEXTS)
    size = tokenizer.vocabulary_size()
    preprocessor = CausalLMPreprocessor(tokenizer, 8)
    stream = preprocessor.stream(TEXTS).numpy()
    counts = np.ones([size, size])
    for a, b in zip(stream[:-1], stream[1:], strict=True):
        counts[a, b] += 1
    log_p = np.log(counts / counts.sum(1, keepdims=True)).astype(np.float32)

    def bigram(inputs, training=False):
        return tf.gather(tf.constant(log_p), inputs["token_ids"])

    result = bits_per_character(bigram, preprocessor, TEXTS)
    blocks = stream[: result["blocks"] * 9].reshape(-1, 9)
    nats = -sum(log_p[a, b] for row in blocks for a, b in zip(row[:-1], row[1:], strict=True))
    assert result["loss_per_token"] == pytest.approx(nats / result["tokens"], rel=1e-5)
    assert result["bits_per_character"] < math.log2(size)
