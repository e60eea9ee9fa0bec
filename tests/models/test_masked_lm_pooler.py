"""An unused pooler (masked LM, cls or mean pooling) is left alone, silently; "pooler" trains it.

Keras warns from `BaseOptimizer._filter_empty_gradients` with `warnings.warn(...)`
("Gradients do not exist for variables [...]") when a trained variable gets no gradient.
"""

import logging
import os
import tempfile
import warnings

import keras
import numpy as np

from keras_transformer.models import BertBackbone, BertClassifier, BertMaskedLM

T = 16  # = max_sequence_length: every position embedding row gets a gradient
SIZE = {
    "vocabulary_size": 50,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 16,
    "intermediate_dim": 32,
    "max_sequence_length": T,
}
WARNING = "Gradients do not exist"


def masked_lm_batch(rng):
    x = {
        "token_ids": rng.integers(0, SIZE["vocabulary_size"], (4, T)).astype("int32"),
        "segment_ids": np.repeat([[0] * (T // 2) + [1] * (T // 2)], 4, axis=0).astype("int32"),
        "padding_mask": np.ones((4, T), "int32"),
        "mask_positions": np.tile(np.arange(0, T, 2), (4, 1)).astype("int32"),
    }
    y = rng.integers(0, SIZE["vocabulary_size"], (4, T // 2)).astype("int32")
    return x, y, np.ones((4, T // 2), "float32")


def fit_capturing_warnings(model, x, y, sample_weight, capfd, caplog):
    """Runs one `fit` step; returns every warning, log record and printed line it produced."""
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, sample_weight=sample_weight, epochs=1, batch_size=4, verbose=0)
    printed = capfd.readouterr()
    return (
        [str(w.message) for w in caught]
        + [r.getMessage() for r in caplog.records]
        + [
            printed.out,
            printed.err,
        ]
    )


def pooler_paths(backbone):
    return {w.path for w in backbone.pooler.weights}


def test_one_step_prints_no_missing_gradient_warning_and_skips_only_the_pooler(capfd, caplog):
    x, y, weights = masked_lm_batch(np.random.default_rng(0))
    model = BertMaskedLM(BertBackbone(**SIZE))
    model.compile()
    before = {w.path: np.array(w) for w in model.weights}
    messages = fit_capturing_warnings(model, x, y, weights, capfd, caplog)
    assert not [m for m in messages if WARNING in m], messages

    pooler = pooler_paths(model.backbone)
    assert len(pooler) == 2
    after = {w.path: np.array(w) for w in model.weights}
    assert sorted(after) == sorted(before)
    unchanged = sorted(p for p in after if np.array_equal(after[p], before[p]))
    assert unchanged == sorted(pooler)  # the pooler did not move; every other weight did


def test_pooler_is_counted_as_non_trainable_but_keeps_its_own_flag():
    backbone = BertBackbone(**SIZE)
    model = BertMaskedLM(backbone)
    pooler = {id(w) for w in backbone.pooler.weights}
    assert not pooler & {id(w) for w in model.trainable_weights}
    assert not pooler & {id(w) for w in model.trainable_variables}
    assert pooler <= {id(w) for w in model.non_trainable_weights}
    assert pooler <= {id(w) for w in model.non_trainable_variables}
    assert len(model.trainable_weights) + len(model.non_trainable_weights) == len(model.weights)
    assert backbone.pooler.trainable
    assert pooler <= {id(w) for w in backbone.trainable_weights}


def test_a_classifier_on_the_pretrained_backbone_trains_the_pooler(capfd, caplog):
    rng = np.random.default_rng(1)
    x, y, weights = masked_lm_batch(rng)
    backbone = BertBackbone(**SIZE)
    masked_lm = BertMaskedLM(backbone)
    masked_lm.compile()
    masked_lm.fit(x, y, sample_weight=weights, epochs=1, verbose=0)

    classifier = BertClassifier(backbone, num_classes=2, pooling="pooler")
    assert {id(w) for w in backbone.pooler.weights} <= {id(w) for w in classifier.trainable_weights}
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np.array(w) for w in backbone.pooler.weights]
    inputs = {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    labels = rng.integers(0, 2, (4,)).astype("int32")
    messages = fit_capturing_warnings(classifier, inputs, labels, None, capfd, caplog)
    assert not [m for m in messages if WARNING in m], messages
    after = [np.array(w) for w in backbone.pooler.weights]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_save_reload_resumes_training_without_the_warning(capfd, caplog):
    x, y, weights = masked_lm_batch(np.random.default_rng(2))
    model = BertMaskedLM(BertBackbone(**SIZE))
    model.compile()
    model.fit(x, y, sample_weight=weights, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "masked_lm.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    expected = np.asarray(model(x))
    np.testing.assert_array_equal(np.asarray(restored(x)), expected)
    assert len(restored.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    pooler_before = [np.array(w) for w in restored.backbone.pooler.weights]
    messages = fit_capturing_warnings(restored, x, y, weights, capfd, caplog)
    assert not [m for m in messages if WARNING in m], messages
    for b, w in zip(pooler_before, restored.backbone.pooler.weights, strict=True):
        np.testing.assert_array_equal(b, np.asarray(w))


def test_a_mean_pooling_classifier_leaves_the_pooler_out_silently(capfd, caplog):
    rng = np.random.default_rng(3)
    x, _, _ = masked_lm_batch(rng)
    backbone = BertBackbone(**SIZE)
    classifier = BertClassifier(backbone, num_classes=2, pooling="mean")
    pooler = {id(w) for w in backbone.pooler.weights}
    assert not pooler & {id(w) for w in classifier.trainable_weights}
    assert pooler <= {id(w) for w in classifier.non_trainable_weights}
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = {w.path: np.array(w) for w in classifier.weights}
    inputs = {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    labels = rng.integers(0, 2, (4,)).astype("int32")
    messages = fit_capturing_warnings(classifier, inputs, labels, None, capfd, caplog)
    assert not [m for m in messages if WARNING in m], messages
    after = {w.path: np.array(w) for w in classifier.weights}
    unchanged = sorted(p for p in after if np.array_equal(after[p], before[p]))
    assert unchanged == sorted(pooler_paths(backbone))
