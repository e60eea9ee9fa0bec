"""Helpers shared by the model tests."""

import os
import tempfile

import keras
import numpy as np


def assert_close(actual, expected, atol=1e-5):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=0)


def assert_save_reload_identical(model, inputs):
    """A `.keras` round trip gives the same config and identical outputs."""
    expected = keras.tree.map_structure(np.asarray, model(inputs))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    actual = keras.tree.map_structure(np.asarray, restored(inputs))
    keras.tree.map_structure(lambda a, e: np.testing.assert_array_equal(a, e), actual, expected)
    return restored


def assert_fit_lowers_loss(model, x, y, sample_weight=None, epochs=5):
    """A few steps of `fit` on one small batch lower the training loss."""
    history = model.fit(x, y, sample_weight=sample_weight, epochs=epochs, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    return losses
