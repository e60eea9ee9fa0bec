"""as-is: use a model without training it, and measure what it gives.

- A classifier run (transfer, finetune, scratch, distill): its test accuracy and speed.
- A base encoder (`minilm`, a Hugging Face folder, a masked-LM pretrain run): its sentence
  embeddings as they are, classified by the nearest class centroid of the training texts'
  embeddings (cosine similarity): no weight changes, only averages.
"""

import dataclasses
import os
import typing

import numpy as np

from keras_transformer.layers.pooling import pool
from workflows import classify
from workflows.config import save_config, write_json_atomic
from workflows.training import new_run_dir

TRAINING_SETTINGS = (
    "epochs",
    "learning_rate",
    "warmup_fraction",
    "weight_decay",
    "clip_norm",
    "dropout",
    "patience",
    "max_seconds",
    "strategy",
    "verbose",
)


@dataclasses.dataclass(frozen=True)
class Config(classify.ClassifierConfig):
    workflow: typing.ClassVar[str] = "as-is"

    def unused_settings(self):
        # Nothing trains: no optimizer, schedule, early stopping, time budget, strategy or fit.
        return (*super().unused_settings(), *TRAINING_SETTINGS)


def embed(backbone, dataset, pooling):
    """Pooled, L2-normalised sentence vectors and labels for a classification dataset."""
    vectors, labels = [], []
    for x, y in dataset:
        pooled = pool(backbone(x, training=False), x["padding_mask"], pooling)
        vectors.append(np.asarray(pooled, "float32"))
        labels.append(np.asarray(y))
    vectors = np.concatenate(vectors)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors, np.concatenate(labels)


def run(config):
    """Evaluates without training; returns a `ClassifierResult`."""
    classify.check_config(config)
    splits = classify.load_splits(config)
    base = classify.load_base(config.init_from)  # before the run folder: a refusal leaves none
    run_dir = new_run_dir(config.output_dir, "asis")
    save_config(config, run_dir)
    train_ds, validation_ds, test_ds = classify.datasets(config, splits, base, config.batch_size)
    if base.classifier is not None:
        base.classifier.compile()
        metrics = classify.evaluate(base.classifier, test_ds, validation_ds)
        metrics["method"] = "the classifier as saved"
    else:
        pooling = classify.pooling_for(config, base)
        train_vectors, train_labels = embed(base.backbone, train_ds, pooling)
        test_vectors, test_labels = embed(base.backbone, test_ds, pooling)
        centroids = np.stack(
            [train_vectors[train_labels == k].mean(0) for k in range(len(splits.label_names))]
        )
        predictions = (test_vectors @ centroids.T).argmax(1)
        metrics = {
            "test_accuracy": float((predictions == test_labels).mean()),
            "method": f"nearest class centroid of {pooling}-pooled embeddings",
        }
    metrics["base"] = base.description
    write_json_atomic(os.path.join(run_dir, "metrics.json"), metrics)
    print(f"[as-is] {metrics}", flush=True)
    return classify.ClassifierResult(run_dir, "", metrics)
