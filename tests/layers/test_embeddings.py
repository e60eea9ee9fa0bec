import math

import numpy as np
import pytest
from layer_checks import assert_close, run_layer_checks, run_mixed_precision

from keras_transformer.layers import (
    PositionEmbedding,
    SinusoidalPositionEncoding,
    TokenEmbedding,
)

IDS = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], "int32")


def test_token_embedding_checks():
    run_layer_checks(TokenEmbedding, {"vocabulary_size": 10, "hidden_dim": 8}, [IDS], num_weights=1)
    run_mixed_precision(TokenEmbedding, {"vocabulary_size": 10, "hidden_dim": 8}, [IDS])


def test_token_embedding_lookup_and_reverse():
    layer = TokenEmbedding(vocabulary_size=10, hidden_dim=4)
    vectors = np.asarray(layer(IDS))
    table = np.asarray(layer.embeddings)
    assert_close(vectors, table[IDS], atol=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    assert_close(layer(x, reverse=True), x @ table.T)


@pytest.mark.parametrize("bad", [10, -1])
def test_token_ids_out_of_range(bad):
    layer = TokenEmbedding(vocabulary_size=10, hidden_dim=4)
    with pytest.raises(ValueError, match=f"Token id {bad} is out of range"):
        layer(np.array([[1, bad]]))


def test_position_embedding_checks():
    x = np.zeros((2, 5, 8), "float32")
    run_layer_checks(PositionEmbedding, {"max_sequence_length": 16}, [x], num_weights=1)
    run_mixed_precision(PositionEmbedding, {"max_sequence_length": 16}, [x])


def test_position_embedding_values_and_offset():
    layer = PositionEmbedding(max_sequence_length=8)
    x = np.zeros((2, 3, 4), "float32")
    out = np.asarray(layer(x))
    table = np.asarray(layer.position_embeddings)
    assert_close(out[1], table[:3], atol=0)
    assert_close(layer(x[:, :1], start_index=5)[0, 0], table[5], atol=0)


def test_position_embedding_too_long():
    layer = PositionEmbedding(max_sequence_length=4)
    with pytest.raises(ValueError, match="length 5 > max_sequence_length=4"):
        layer(np.zeros((1, 5, 2), "float32"))


def test_sinusoidal_checks():
    x = np.zeros((2, 5, 8), "float32")
    run_layer_checks(SinusoidalPositionEncoding, {"max_wavelength": 10000}, [x], num_weights=0)
    run_mixed_precision(SinusoidalPositionEncoding, {}, [x])


def test_sinusoidal_hand_values():
    # H = 4: PE[p] = [sin p, cos p, sin(p / 100), cos(p / 100)] since 10000^(2/4) = 100.
    out = np.asarray(SinusoidalPositionEncoding()(np.zeros((1, 3, 4), "float32")))
    for p in range(3):
        expected = [math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)]
        assert_close(out[0, p], expected, atol=1e-6)
    shifted = SinusoidalPositionEncoding()(np.zeros((1, 1, 4), "float32"), start_index=2)
    assert_close(shifted[0, 0], out[0, 2], atol=1e-6)


def test_sinusoidal_odd_width():
    with pytest.raises(ValueError, match="even hidden size"):
        SinusoidalPositionEncoding()(np.zeros((1, 2, 3), "float32"))
