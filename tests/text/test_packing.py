"""Packers: the same outputs as keras-hub's on random batches, and their invariants."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.text import MultiSegmentPacker, StartEndPacker


def _random_ragged(rng, rows, max_length):
    return tf.ragged.constant(
        [list(rng.integers(5, 50, rng.integers(0, max_length))) for _ in range(rows)],
        dtype=tf.int32,
    )


@pytest.mark.parametrize("truncate", ["round_robin", "waterfall"])
@pytest.mark.parametrize("sequence_length", [4, 9, 16])
def test_multi_segment_packer_equals_keras_hub(truncate, sequence_length):
    rng = np.random.default_rng(sequence_length)
    segments = [_random_ragged(rng, 100, 12) for _ in range(2)]
    ours = MultiSegmentPacker(sequence_length, 2, 3, truncate=truncate)(segments)
    reference = keras_hub.layers.MultiSegmentPacker(
        sequence_length, start_value=2, end_value=3, truncate=truncate
    )(tuple(segments))
    np.testing.assert_array_equal(ours[0], reference[0])
    np.testing.assert_array_equal(ours[1], reference[1])
    np.testing.assert_array_equal(ours[2], ours[0] != 0)


def test_start_end_packer_equals_keras_hub_and_keeps_the_end_token():
    rng = np.random.default_rng(0)
    ids = _random_ragged(rng, 100, 20)
    token_ids, padding_mask = StartEndPacker(10, start_value=2, end_value=3)(ids)
    reference = keras_hub.layers.StartEndPacker(10, start_value=2, end_value=3)(ids)
    np.testing.assert_array_equal(token_ids, reference)
    lengths = padding_mask.numpy().sum(axis=1)
    assert (token_ids.numpy()[np.arange(100), lengths - 1] == 3).all()
    np.testing.assert_array_equal(padding_mask, token_ids != 0)


def test_packer_errors():
    with pytest.raises(ValueError, match="sequence_length"):
        StartEndPacker(2, start_value=1, end_value=2)
    with pytest.raises(ValueError, match="truncate"):
        MultiSegmentPacker(8, 1, 2, truncate="middle")
    with pytest.raises(ValueError, match="segments"):
        MultiSegmentPacker(8, 1, 2)([])
