"""What transfer, scratch and as-is promise, checked on a tiny base with dropout > 0.

- transfer: the frozen base runs in inference mode (no dropout, even inside `fit`); after a
  few steps its weights are unchanged while the new head's moved.
- scratch: the base's architecture with new random weights (not a copy).
- as-is: on two clearly different word groups, accuracy far above chance.
"""

import csv

import keras
import numpy as np
import pytest
from test_classifier_workflows import tiny_masked_base

from keras_transformer.models import BertClassifier
from workflows import asis, classify, scratch, transfer

FRUIT = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "peach", "pear", "plum"]
TOOLS = ["hammer", "wrench", "drill", "saw", "chisel", "pliers", "clamp", "lathe", "vise", "axe"]
BASE_DROPOUT = 0.3


def sentences(words, count, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=5)) for _ in range(count)]


@pytest.fixture(scope="module")
def labeled_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "words.csv"
    rows = [(text, "fruit") for text in sentences(FRUIT, 60, 0)]
    rows += [(text, "tools") for text in sentences(TOOLS, 60, 1)]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A masked-LM pretrain run whose encoder has dropout 0.3."""
    corpus_text = "\n".join(sentences(FRUIT, 100, 2) + sentences(TOOLS, 100, 3))
    return tiny_masked_base(
        tmp_path_factory.mktemp("runs"),
        corpus_text,
        vocabulary_size=100,
        dropout=BASE_DROPOUT,
        learning_rate=1e-2,
    )


def settings(labeled_csv, output_dir, **kwargs):
    return {
        "dataset": labeled_csv,
        "sequence_length": 12,
        "batch_size": 16,
        "epochs": 2,
        "output_dir": str(output_dir),
        "verbose": 0,
        **kwargs,
    }


def values(weights):
    return [np.array(w) for w in weights]


@pytest.fixture
def trained(monkeypatch):
    """Records the model's weights just before and just after `classify.train`."""
    record = {}
    original = classify.train

    def train(model, *args, **kwargs):
        record["model"] = model
        record["backbone_before"] = values(model.backbone.weights)
        record["head_before"] = values(model.classification_head.weights)
        history = original(model, *args, **kwargs)
        record["backbone_after"] = values(model.backbone.weights)
        record["head_after"] = values(model.classification_head.weights)
        return history

    monkeypatch.setattr(classify, "train", train)
    return record


def a_batch(labeled_csv, base):
    config = asis.Config(dataset=labeled_csv, sequence_length=12, batch_size=8)
    splits = classify.load_splits(config)
    train_ds, _, _ = classify.datasets(config, splits, base, config.batch_size)
    x, _ = next(iter(train_ds))
    return x


def test_frozen_base_runs_in_inference_mode(base_run, labeled_csv):
    base = classify.load_base(base_run)
    assert base.backbone.dropout == BASE_DROPOUT
    x = a_batch(labeled_csv, base)
    # The base itself, in training mode, drops out: two calls differ.
    first = np.asarray(base.backbone(x, training=True)["sequence_output"])
    second = np.asarray(base.backbone(x, training=True)["sequence_output"])
    assert not np.allclose(first, second)
    model = BertClassifier(
        base.backbone, num_classes=2, pooling="mean", dropout=0.0, freeze_backbone=True
    )
    first, second = np.asarray(model(x, training=True)), np.asarray(model(x, training=True))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, np.asarray(model(x, training=False)))
    # Not frozen, the same base in the same classifier drops out.
    base.backbone.trainable = True
    unfrozen = BertClassifier(base.backbone, num_classes=2, pooling="mean", dropout=0.0)
    assert not np.allclose(np.asarray(unfrozen(x, training=True)), first)


def test_transfer_moves_the_head_and_not_the_base(base_run, labeled_csv, tmp_path, trained):
    base_weights = values(classify.load_base(base_run).backbone.weights)
    result = transfer.run(
        transfer.Config(
            **settings(
                labeled_csv, tmp_path, init_from=base_run, learning_rate=1e-2, dropout=0.0, epochs=1
            )
        )
    )
    for before, start, after in zip(
        base_weights, trained["backbone_before"], trained["backbone_after"], strict=True
    ):
        assert np.array_equal(before, start) and np.array_equal(before, after)
    moved = [
        not np.array_equal(b, a)
        for b, a in zip(trained["head_before"], trained["head_after"], strict=True)
    ]
    assert moved and all(moved), moved  # kernel and bias both learned
    saved = keras.saving.load_model(result.model_path)
    assert saved.freeze_backbone
    for before, now in zip(base_weights, values(saved.backbone.weights), strict=True):
        np.testing.assert_array_equal(before, now)
    for after, now in zip(
        trained["head_after"], values(saved.classification_head.weights), strict=True
    ):
        np.testing.assert_array_equal(after, now)
    # The saved model keeps the base in inference mode (dropout 0.3 inside, head dropout 0).
    x = a_batch(labeled_csv, classify.load_base(base_run))
    np.testing.assert_array_equal(
        np.asarray(saved(x, training=True)), np.asarray(saved(x, training=True))
    )


def test_scratch_reinitialises_the_base_architecture(base_run, labeled_csv, tmp_path, trained):
    base = classify.load_base(base_run)
    # seed=0, the base's own pretraining seed: scratch must still not rebuild the base's
    # *initial* values, which its pooler (untrained by masked-LM pretraining) still holds.
    result = scratch.run(
        scratch.Config(**settings(labeled_csv, tmp_path, init_from=base_run, epochs=1, seed=0))
    )
    fresh = trained["model"].backbone
    ours, theirs = fresh.get_config(), base.backbone.get_config()
    ours.pop("name"), theirs.pop("name")
    assert ours == theirs
    starts, base_weights = trained["backbone_before"], values(base.backbone.weights)
    assert [w.shape for w in starts] == [w.shape for w in base_weights]
    paths = [w.path for w in fresh.weights]
    random_starts = 0
    for path, start, copied in zip(paths, starts, base_weights, strict=True):
        if np.ptp(start) == 0:  # zeros / ones initialisers (biases, layer norms)
            continue
        random_starts += 1
        assert not np.array_equal(start, copied), f"{path} starts as the base's value"
    assert random_starts >= 2 * 6 + 4  # every kernel and embedding table was checked
    assert keras.saving.load_model(result.model_path).backbone.num_layers == 2


def test_as_is_centroids_beat_chance_on_separable_words(base_run, labeled_csv, tmp_path):
    result = asis.run(asis.Config(**settings(labeled_csv, tmp_path, init_from=base_run)))
    assert "centroid" in result.metrics["method"]
    splits = classify.load_splits(asis.Config(dataset=labeled_csv))
    counts = np.bincount(splits.test.labels)
    assert len(counts) == 2 and counts.min() >= 5
    # A constant predictor scores max(counts) / total (0.5 here); a random one about 0.5.
    assert result.metrics["test_accuracy"] >= 0.9, result.metrics
