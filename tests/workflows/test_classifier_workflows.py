"""The classifier workflows on a tiny base and a tiny labeled CSV: what each one promises."""

import csv

import keras
import numpy as np
import pytest

from workflows import asis, distill, finetune, pretrain, scratch, transfer

POSITIVE = [
    "a good film",
    "great acting and a fine story",
    "lovely and warm",
    "a joy to watch",
    "wonderful music",
    "the best film this year",
    "fine and funny",
    "great fun",
]
NEGATIVE = [
    "a bad film",
    "awful acting and a dull story",
    "boring and cold",
    "a pain to watch",
    "terrible music",
    "the worst film this year",
    "dull and sad",
    "awful mess",
]


@pytest.fixture(scope="module")
def labeled_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows = [(f"{t} {i}", "positive") for i in range(10) for t in POSITIVE]
    rows += [(f"{t} {i}", "negative") for i in range(10) for t in NEGATIVE]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


def tiny_masked_base(folder, corpus_text, **overrides):
    """A tiny masked-LM pretrain run on `corpus_text` in `folder/pretrain`; returns its path."""
    corpus = folder / "corpus.txt"
    corpus.write_text(corpus_text, encoding="utf-8")
    settings = {
        "objective": "masked",
        "tokens": "wordpiece",
        "corpus": str(corpus),
        "vocabulary_size": 120,
        "num_layers": 2,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "sequence_length": 16,
        "batch_size": 8,
        "steps": 10,
        "eval_interval": 5,
        "eval_batches": 1,
        "dropout": 0.0,
        "output_dir": str(folder / "pretrain"),
        "verbose": 0,
    }
    pretrain.run(pretrain.Config(**{**settings, **overrides}))
    return str(folder / "pretrain")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, labeled_csv):
    corpus_text = "\n".join((POSITIVE + NEGATIVE) * 30)
    return tiny_masked_base(tmp_path_factory.mktemp("runs"), corpus_text)


def settings(labeled_csv, output_dir, **kwargs):
    return {
        "dataset": labeled_csv,
        "sequence_length": 16,
        "batch_size": 16,
        "epochs": 3,
        "output_dir": str(output_dir),
        "verbose": 0,
        **kwargs,
    }


def weights_of(path):
    model = keras.saving.load_model(path)
    return model, [np.array(w) for w in model.backbone.weights]


def test_transfer_keeps_the_base_frozen(base_run, labeled_csv, tmp_path):
    _, base_weights = weights_of(f"{base_run}/model.keras")
    result = transfer.run(
        transfer.Config(**settings(labeled_csv, tmp_path, init_from=base_run, learning_rate=1e-2))
    )
    model, after = weights_of(result.model_path)
    for before, now in zip(base_weights, after, strict=True):
        np.testing.assert_array_equal(before, now)
    assert result.metrics["trainable_parameters"] < result.metrics["frozen_parameters"]
    assert result.metrics["trainable_parameters"] == 32 * 2 + 2
    history = (tmp_path / "history.json").read_text()
    assert "val_accuracy" in history


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_transfer_trains_a_float32_base_in_the_runs_precision(
    precision, base_run, labeled_csv, tmp_path
):
    model, base_weights = weights_of(f"{base_run}/model.keras")
    assert model.backbone.dtype_policy.name == "float32"
    result = transfer.run(
        transfer.Config(
            **settings(labeled_csv, tmp_path, init_from=base_run, epochs=1),
            mixed_precision=precision,
        )
    )
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    model, after = weights_of(result.model_path)
    assert model.backbone.dtype_policy.name == f"mixed_{precision}"
    assert model.backbone.transformer_blocks[0].compute_dtype == precision
    for before, now in zip(base_weights, after, strict=True):  # the same base, still frozen
        np.testing.assert_array_equal(before, now)
    assert np.isfinite(result.metrics["test_accuracy"])


def test_finetune_from_transfer_moves_the_base(base_run, labeled_csv, tmp_path):
    first = transfer.run(
        transfer.Config(**settings(labeled_csv, tmp_path / "t", init_from=base_run))
    )
    _, base_weights = weights_of(first.model_path)
    result = finetune.run(
        finetune.Config(
            **settings(labeled_csv, tmp_path / "f", init_from=first.run_dir, learning_rate=1e-3)
        )
    )
    _, after = weights_of(result.model_path)
    changed = [not np.array_equal(b, a) for b, a in zip(base_weights, after, strict=True)]
    assert any(changed)
    assert result.metrics["frozen_parameters"] == 0


def test_finetune_top_blocks_only(base_run, labeled_csv, tmp_path):
    model, before = weights_of(f"{base_run}/model.keras")
    result = finetune.run(
        finetune.Config(
            **settings(labeled_csv, tmp_path, init_from=base_run, top_blocks=1, learning_rate=1e-3)
        )
    )
    tuned = keras.saving.load_model(result.model_path)
    lower = tuned.backbone.transformer_blocks[0].weights
    reference = model.backbone.transformer_blocks[0].weights
    for a, b in zip(lower, reference, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    top = tuned.backbone.transformer_blocks[1].weights
    top_reference = model.backbone.transformer_blocks[1].weights
    assert any(
        not np.array_equal(np.array(a), np.array(b))
        for a, b in zip(top, top_reference, strict=True)
    )
    with pytest.raises(ValueError, match="top_blocks"):
        finetune.run(
            finetune.Config(
                **settings(labeled_csv, tmp_path / "x", init_from=base_run, top_blocks=5)
            )
        )


def test_scratch_and_as_is(base_run, labeled_csv, tmp_path):
    result = scratch.run(
        scratch.Config(**settings(labeled_csv, tmp_path / "s", init_from=base_run))
    )
    assert result.metrics["base"].startswith("random weights")
    centroid = asis.run(asis.Config(**settings(labeled_csv, tmp_path / "a", init_from=base_run)))
    assert "centroid" in centroid.metrics["method"]
    saved = asis.run(asis.Config(**settings(labeled_csv, tmp_path / "b", init_from=result.run_dir)))
    assert saved.metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])


def test_distill_halves_the_teacher_and_keeps_it_fixed(base_run, labeled_csv, tmp_path):
    teacher = finetune.run(
        finetune.Config(
            **settings(labeled_csv, tmp_path / "teacher", init_from=base_run, learning_rate=1e-3)
        )
    )
    result = distill.run(
        distill.Config(
            **settings(labeled_csv, tmp_path / "student", init_from=teacher.run_dir, epochs=2)
        )
    )
    student = keras.saving.load_model(result.model_path)
    assert student.backbone.num_layers == 1
    assert result.metrics["student_layers"] == 1
    assert result.metrics["parameters"] < result.metrics["teacher_parameters"]
    assert result.metrics["teacher_test_accuracy"] == pytest.approx(
        teacher.metrics["test_accuracy"]
    )


def test_bad_configs_fail_before_training(base_run, labeled_csv, tmp_path):
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.run(distill.Config(**settings(labeled_csv, tmp_path / "a")))
    with pytest.raises(ValueError, match="not a classifier run"):
        distill.run(distill.Config(**settings(labeled_csv, tmp_path / "b", init_from=base_run)))
    with pytest.raises(ValueError, match="Unknown strategy"):
        transfer.run(
            transfer.Config(
                **settings(labeled_csv, tmp_path / "c", init_from=base_run, strategy="bogus")
            )
        )
    with pytest.raises(FileNotFoundError, match="model.keras"):
        transfer.run(
            transfer.Config(**settings(labeled_csv, tmp_path / "d", init_from=str(tmp_path)))
        )
    with pytest.raises(ValueError, match="must not be deeper"):
        distill.build_student(
            keras.saving.load_model(f"{base_run}/model.keras"), distill.Config(student_layers=9)
        )


@pytest.mark.parametrize("workflow", [transfer, finetune, scratch, asis, distill])
def test_a_refused_base_leaves_no_run_folder(workflow, base_run, labeled_csv, tmp_path):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    output = tmp_path / "run"
    config = workflow.Config(**settings(labeled_csv, output, init_from=str(not_a_run)))
    with pytest.raises(FileNotFoundError, match="model.keras"):
        workflow.run(config)
    assert not output.exists()
    # A folder the user made beforehand is kept, without the config the refused run wrote.
    output.mkdir()
    with pytest.raises(FileNotFoundError, match="model.keras"):
        workflow.run(config)
    assert output.is_dir() and not list(output.iterdir())


def test_a_refused_dataset_leaves_no_run_folder(base_run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nonly one row,a\n", encoding="utf-8")
    output = tmp_path / "run"
    with pytest.raises(ValueError):
        transfer.run(transfer.Config(**settings(str(bad), output, init_from=base_run)))
    assert not output.exists()
