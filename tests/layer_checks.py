"""The standard checks every layer passes (the shared harness of the layer tests)."""

import os
import tempfile

import keras
import numpy as np


def assert_close(actual, expected, atol=1e-5, rtol=0.0):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=rtol)


def run_layer_checks(layer_cls, init_kwargs, call_args, call_kwargs=None, num_weights=None):
    """Config round trip, weight count, eager and symbolic call, save/reload, mixed precision.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        call_args: list of numpy inputs (positional).
        call_kwargs: dict of extra call arguments (numpy or Python values).
        num_weights: expected number of weights after building, if given.
    """
    call_kwargs = call_kwargs or {}

    # The constructor is the config.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        if isinstance(value, int | float | str | bool | type(None)):
            assert config[key] == value, (key, config[key], value)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layer_cls

    # Eager call; weight count.
    outputs = layer(*call_args, **call_kwargs)
    if num_weights is not None:
        assert len(layer.weights) == num_weights, [w.path for w in layer.weights]

    # Same weights -> same outputs, for the clone too.
    clone(*call_args, **call_kwargs)
    clone.set_weights(layer.get_weights())
    assert_close(clone(*call_args, **call_kwargs), outputs, atol=1e-6)

    # Symbolic call in a functional model, then .keras save and reload.
    symbolic = [
        keras.Input(shape=np.asarray(a).shape[1:], dtype=str(np.asarray(a).dtype))
        for a in call_args
    ]
    model = keras.Model(symbolic, layer(*symbolic, **call_kwargs))
    expected = np.asarray(model(call_args))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        assert_close(keras.saving.load_model(path)(call_args), expected, atol=0)

    # One training step moves the trainable weights.
    if layer.trainable_weights:
        before = [np.array(w) for w in layer.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        loss = model.train_on_batch(call_args, np.ones_like(expected))
        assert np.isfinite(loss)
        assert any(
            not np.allclose(b, np.array(w))
            for b, w in zip(before, layer.trainable_weights, strict=True)
        )
    return outputs


def run_mixed_precision(layer_cls, init_kwargs, call_args, call_kwargs=None):
    """The layer runs under mixed_bfloat16: bfloat16 compute, float32 weights, finite outputs."""
    layer = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
    outputs = layer(*call_args, **(call_kwargs or {}))
    outputs = outputs[0] if isinstance(outputs, tuple) else outputs
    assert all(w.dtype == "float32" for w in layer.weights)
    assert np.all(np.isfinite(np.asarray(keras.ops.cast(outputs, "float32"))))
    return outputs
