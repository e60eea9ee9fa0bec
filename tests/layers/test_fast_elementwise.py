"""Our dropout, layer norm and GELU equal Keras' (values, gradients, statistics)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import assert_close, run_layer_checks, run_mixed_precision

from keras_transformer.layers import Dropout, LayerNormalization
from keras_transformer.layers.feed_forward import gelu, gelu_approximate

RNG = np.random.default_rng(7)


def value_and_gradient(fn, x):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = fn(x)
        loss = tf.reduce_sum(y * tf.constant(RNG.normal(size=y.shape), y.dtype))
    return np.asarray(y), np.asarray(tape.gradient(loss, x))


@pytest.mark.parametrize("ours, approximate", [(gelu, False), (gelu_approximate, True)])
def test_gelu_equals_keras_with_gradient(ours, approximate):
    x = RNG.normal(size=(4, 16)).astype("float32") * 3
    state = RNG.bit_generator.state
    expected = value_and_gradient(lambda v: keras.activations.gelu(v, approximate), x)
    RNG.bit_generator.state = state
    actual = value_and_gradient(ours, x)
    assert_close(actual[0], expected[0], atol=1e-6)
    assert_close(actual[1], expected[1], atol=1e-5)


def test_layer_norm_equals_keras_with_gradients():
    x = RNG.normal(size=(3, 5, 8)).astype("float32") * 4 + 1
    ours, theirs = LayerNormalization(epsilon=1e-5), keras.layers.LayerNormalization(epsilon=1e-5)
    ours.build(x.shape)
    theirs.build(x.shape)
    weights = [RNG.normal(size=(8,)).astype("float32") for _ in range(2)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    upstream = tf.constant(RNG.normal(size=x.shape), tf.float32)
    results = []
    for layer in (ours, theirs):
        inputs = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(inputs) * upstream)
        grads = tape.gradient(loss, [inputs, *layer.trainable_weights])
        results.append([np.asarray(layer(x))] + [np.asarray(g) for g in grads])
    for a, b in zip(*results, strict=True):
        assert_close(a, b, atol=1e-5)


def test_layer_norm_standard_checks():
    x = RNG.normal(size=(2, 3, 8)).astype("float32")
    run_layer_checks(LayerNormalization, {"epsilon": 1e-6}, [x], num_weights=2)
    run_mixed_precision(LayerNormalization, {}, [x])


def test_dropout_statistics():
    layer = Dropout(0.1, seed=3)
    x = np.ones((64, 512), "float32")
    out = np.asarray(layer(x, training=True))
    dropped = (out == 0).mean()
    assert abs(dropped - 0.1) < 0.01
    assert abs(out.mean() - 1.0) < 0.02  # unbiased: kept values scaled up
    assert_close(layer(x, training=False), x, atol=0)
    assert not np.array_equal(out, np.asarray(layer(x, training=True)))  # fresh masks


def test_dropout_in_bfloat16_and_odd_widths():
    out = np.asarray(
        keras.ops.cast(
            Dropout(0.5, seed=1, dtype="mixed_bfloat16")(
                np.ones((32, 64), "float32"), training=True
            ),
            "float32",
        )
    )
    assert abs((out == 0).mean() - 0.5) < 0.05
    odd = np.asarray(Dropout(0.5, seed=1)(np.ones((32, 63), "float32"), training=True))
    assert abs((odd == 0).mean() - 0.5) < 0.05  # falls back to Keras' dropout
