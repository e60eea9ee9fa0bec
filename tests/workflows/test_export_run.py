"""A run folder is what `export --run` takes: its model, preprocessor and label names travel to
the served `label` and logits (truncated at the run's sequence length, as evaluation was);
config.json names the workflow; a folder without a model is one clear error."""

import csv
import importlib
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import test_classifier_workflows
from test_classifier_workflows import NEGATIVE, POSITIVE, settings

from keras_transformer.data import pipelines
from keras_transformer.preprocessing import (
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
    load_preprocessor,
)
from keras_transformer.text.io import load_tokenizer
from workflows import asis, export, pretrain, transfer
from workflows.__main__ import WORKFLOWS, main
from workflows.config import save_config, workflow_name

base_run = test_classifier_workflows.base_run  # the fixture: a tiny masked-LM pretrain run
# Unseen texts, each word of them in the base's vocabulary.
TEXTS = ["a good film", "awful acting and a dull story", "great fun", "the worst film this year"]


@pytest.fixture(scope="module")
def labeled_csv(tmp_path_factory):
    """Labels that are words; the file lists "good" rows first, so id order is not file order."""
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows = [(f"{t} {i}", "good") for i in range(10) for t in POSITIVE]
    rows += [(f"{t} {i}", "bad") for i in range(10) for t in NEGATIVE]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def transfer_run(base_run, labeled_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer")
    values = settings(labeled_csv, folder, init_from=base_run, epochs=1, learning_rate=1e-2)
    return transfer.run(transfer.Config(**values)).run_dir


@pytest.fixture(scope="module")
def short_run(base_run, labeled_csv, tmp_path_factory):
    """A transfer run at sequence_length 8, shorter than its base's maximum of 16."""
    folder = tmp_path_factory.mktemp("short")
    values = settings(labeled_csv, folder, init_from=base_run, epochs=1, learning_rate=1e-2)
    return transfer.run(transfer.Config(**{**values, "sequence_length": 8})).run_dir


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def command(capsys, *argv):
    """Runs `python -m workflows ARGV` in this process: (exit code, stdout, stderr lines)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, [line for line in out.err.splitlines() if line.strip()]


def in_memory_logits(run_dir, texts, sequence_length=16):
    """The run's model on `texts` batched as its evaluation was (`classification_dataset`)."""
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    tokenizer = load_tokenizer(os.path.join(run_dir, "tokenizer.json"))
    examples = tf.data.Dataset.from_tensor_slices((texts, [0] * len(texts)))
    batches = pipelines.classification_dataset(examples, tokenizer, sequence_length, len(texts))
    return model.predict(batches.map(lambda x, y: x), verbose=0)


def test_exported_run_serves_the_label_words(transfer_run, tmp_path, capsys):
    code, stdout, stderr = command(
        capsys, "export", "--run", transfer_run, "--output-dir", str(tmp_path), "--name", "reviews"
    )
    assert code == 0, stderr
    assert read_json(os.path.join(transfer_run, "labels.json")) == ["bad", "good"]  # id order
    path = tmp_path / "reviews" / "1"
    assert json.loads(stdout[stdout.index("{") :])["path"] == str(path)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(TEXTS))
    logits = in_memory_logits(transfer_run, TEXTS)
    labels = [label.decode() for label in served["label"].numpy()]
    assert labels == [["bad", "good"][k] for k in logits.argmax(-1)]
    np.testing.assert_allclose(served["logits"].numpy(), logits, atol=1e-4)


# Far longer than the runs' sequence lengths (8 and 16 tokens).
LONG = " ".join(TEXTS * 3)


def served_logits(run, folder, name, texts):
    result = export.run(export.Config(run=str(run), output_dir=str(folder), name=name))
    signature = tf.saved_model.load(result.path).signatures["serving_default"]
    return signature(text=tf.constant(texts))["logits"].numpy()


def test_export_truncates_at_the_run_sequence_length(base_run, short_run, tmp_path):
    texts = [LONG, TEXTS[0]]
    served = served_logits(short_run, tmp_path, "short", texts)
    np.testing.assert_allclose(served, in_memory_logits(short_run, texts, 8), atol=1e-5, rtol=0)
    # At the model's maximum (16), the long text would be served other logits.
    assert not np.allclose(served[0], in_memory_logits(short_run, texts, 16)[0], atol=1e-4)
    saved = load_preprocessor(os.path.join(short_run, "preprocessor.json"))
    assert isinstance(saved, ClassifierPreprocessor) and saved.sequence_length == 8
    pretrained = load_preprocessor(os.path.join(base_run, "preprocessor.json"))
    assert isinstance(pretrained, MaskedLMPreprocessor)
    assert (
        pretrained.sequence_length
        == read_json(os.path.join(base_run, "config.json"))["sequence_length"]
    )


def test_a_run_without_preprocessor_json_uses_its_config_sequence_length(
    short_run, tmp_path, capsys
):
    older = tmp_path / "older"
    shutil.copytree(short_run, older)
    os.remove(older / "preprocessor.json")
    texts = [LONG, TEXTS[1]]
    served = served_logits(older, tmp_path, "older", texts)
    assert "has no preprocessor.json" in capsys.readouterr().out
    np.testing.assert_allclose(served, in_memory_logits(short_run, texts, 8), atol=1e-5, rtol=0)


def test_class_names_override_labels_json(transfer_run):
    model, _, label_names, _ = export.load_model_and_tokenizer(export.Config(run=transfer_run))
    assert label_names == ["bad", "good"]
    given = export.Config(run=transfer_run, class_names="neg, pos")
    assert export.class_names_for(given, model, label_names) == ["neg", "pos"]
    default = export.Config(run=transfer_run)
    assert export.class_names_for(default, model, label_names) == ["bad", "good"]


def test_config_json_names_the_workflow_and_only_settings_that_apply(
    base_run, transfer_run, labeled_csv, tmp_path
):
    saved = read_json(os.path.join(transfer_run, "config.json"))
    assert saved["workflow"] == "transfer"
    assert "dataset_config" not in saved
    assert saved["dataset"] == labeled_csv and saved["text_column"] == "text"
    assert read_json(os.path.join(base_run, "config.json"))["workflow"] == "pretrain"
    result = asis.run(asis.Config(**settings(labeled_csv, tmp_path, init_from=transfer_run)))
    saved = read_json(os.path.join(result.run_dir, "config.json"))
    assert saved["workflow"] == "as-is"
    for unused in ("dataset_config", "learning_rate", "epochs", "dropout", "strategy"):
        assert unused not in saved
    assert saved["init_from"] == transfer_run and saved["sequence_length"] == 16
    on_movies = transfer.Config(dataset="movie_sentiment").unused_settings()
    assert set(on_movies) == {"text_column", "label_column"}


def test_pretrain_config_json_leaves_out_what_its_objective_and_tokens_ignore(tmp_path):
    causal_char = pretrain.Config(objective="causal", tokens="char")
    saved = read_json(save_config(causal_char, str(tmp_path / "a")))
    assert saved["workflow"] == "pretrain"
    for unused in ("mask_rate", "vocabulary", "vocabulary_size"):
        assert unused not in saved
    assert saved["prompt"] == "ROMEO:" and saved["top_k"] == 20
    masked = pretrain.Config(objective="masked", tokens="wordpiece")
    saved = read_json(save_config(masked, str(tmp_path / "b")))
    for unused in ("prompt", "num_samples", "sample_length", "temperature", "top_k"):
        assert unused not in saved
    assert saved["mask_rate"] == 0.15 and saved["vocabulary_size"] == 8000


def test_every_workflow_records_its_command_name():
    for name, module_name in WORKFLOWS.items():
        assert workflow_name(importlib.import_module(module_name).Config) == name


def test_a_run_folder_without_a_model_is_one_clear_error(transfer_run, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(transfer_run, unfinished)
    os.remove(unfinished / "model.keras")
    saved_models = tmp_path / "saved"
    for run, message in (
        (str(unfinished), "holds no model (model.keras is missing)"),
        (str(tmp_path / "nowhere"), "is not a folder"),
        (os.path.join(transfer_run, "labels.json"), "is not a folder"),
    ):
        code, _, stderr = command(
            capsys, "export", "--run", run, "--output-dir", str(saved_models), "--name", "m"
        )
        assert code == 2
        assert len(stderr) == 1 and stderr[0].startswith(f"error: --run {run!r} "), stderr
        assert message in stderr[0]
        assert not saved_models.exists()


def test_run_conflicts_and_bad_labels_fail_before_writing(transfer_run, tmp_path):
    with pytest.raises(ValueError, match="not --run and --model-path"):
        export.run(export.Config(run=transfer_run, model_path="m.keras", output_dir=str(tmp_path)))
    copy = tmp_path / "copy"
    shutil.copytree(transfer_run, copy)
    (copy / "labels.json").write_text('["bad", "good", "ugly"]', encoding="utf-8")
    with pytest.raises(ValueError, match="names 3 labels, but the model .* has 2 classes"):
        export.run(export.Config(run=str(copy), output_dir=str(tmp_path / "saved"), name="m"))
    (copy / "labels.json").write_text('{"0": "bad"}', encoding="utf-8")
    with pytest.raises(ValueError, match="must hold a JSON list of label names"):
        export.run(export.Config(run=str(copy), output_dir=str(tmp_path / "saved"), name="m"))
    assert not (tmp_path / "saved").exists()
