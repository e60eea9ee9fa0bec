"""compress: general distillation of an encoder into a smaller student with a pruned vocabulary."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_classifier_workflows import (  # noqa: F401
    NEGATIVE,
    POSITIVE,
    labeled_csv,
    tiny_masked_base,
)
from test_seq2seq_workflow import CrashAfter, saved_weights

from workflows import classify, compress, transfer
from workflows import training as workflow_training

SEQUENCE_LENGTH = 16


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    corpus_text = "\n".join((POSITIVE + NEGATIVE) * 30)
    return tiny_masked_base(tmp_path_factory.mktemp("teacher"), corpus_text)


@pytest.fixture(scope="module")
def positive_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "positive.txt"
    path.write_text("\n".join(f"{t} {i % 3}" for i in range(100) for t in POSITIVE), "utf-8")
    return str(path)


def compress_config(teacher_run, corpus, output_dir, **changes):
    settings = {
        "init_from": teacher_run,
        "corpus": corpus,
        "student_layers": 1,
        "sequence_length": SEQUENCE_LENGTH,
        "batch_size": 4,
        "steps": 12,
        "eval_interval": 4,
        "eval_batches": 2,
        "learning_rate": 3e-3,
        "warmup_steps": 2,
        "similarity_pairs": 50,
        "output_dir": str(output_dir),
        "verbose": 0,
        **changes,
    }
    return compress.Config(**settings)


@pytest.fixture(scope="module")
def student_run(teacher_run, positive_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    teacher = classify.load_base(teacher_run)
    before = [w.numpy().copy() for w in teacher.backbone.weights]
    result = compress.run(compress_config(teacher_run, positive_corpus, folder / "run"))
    after = [w.numpy() for w in classify.load_base(teacher_run).backbone.weights]
    return result, before, after


def test_the_student_is_smaller_learns_and_leaves_the_teacher_unchanged(student_run):
    result, before, after = student_run
    metrics = result.metrics
    assert metrics["student_layers"] == 1 and metrics["teacher_layers"] == 2
    assert metrics["student_vocabulary_size"] < metrics["teacher_vocabulary_size"]
    assert metrics["student_parameters"] < metrics["teacher_parameters"]
    with open(os.path.join(result.run_dir, "history.json"), encoding="utf-8") as file:
        history = json.load(file)
    assert history["val_loss"][-1] < history["val_loss"][0]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)
    assert -1.0 <= metrics["similarity_spearman"] <= 1.0


def test_the_student_run_is_a_base_whose_tokenizer_keeps_the_corpus_pieces(
    student_run, teacher_run, positive_corpus
):
    result, _, _ = student_run
    student = classify.load_base(result.run_dir)
    teacher = classify.load_base(teacher_run)
    assert student.pooling == "mean"
    assert student.backbone.vocabulary_size == len(student.tokenizer.vocabulary)
    assert student.backbone.num_layers == 1
    texts = tf.constant(POSITIVE)

    def pieces(tokenizer):
        ids = tokenizer(texts)
        return [[tokenizer.vocabulary[i] for i in row] for row in ids.to_list()]

    assert pieces(student.tokenizer) == pieces(teacher.tokenizer)
    # A word of the teacher's vocabulary that the corpus never used is gone from the student's.
    dropped = set(teacher.tokenizer.vocabulary) - set(student.tokenizer.vocabulary)
    assert dropped and not any(
        token.startswith("[unused") for token in student.tokenizer.vocabulary
    )


def test_transfer_takes_the_student_as_its_base(student_run, labeled_csv, tmp_path):  # noqa: F811
    result, _, _ = student_run
    outcome = transfer.run(
        transfer.Config(
            init_from=result.run_dir,
            dataset=labeled_csv,
            sequence_length=16,
            batch_size=16,
            epochs=1,
            output_dir=str(tmp_path / "transfer"),
            verbose=0,
        )
    )
    model = keras.saving.load_model(os.path.join(outcome.run_dir, "model.keras"), compile=False)
    assert model.backbone.vocabulary_size == result.metrics["student_vocabulary_size"]


def test_bad_settings_fail_before_training(teacher_run, positive_corpus, tmp_path):
    with pytest.raises(ValueError, match="wider than its teacher"):
        compress.run(compress_config(teacher_run, positive_corpus, tmp_path / "a",
                                     student_hidden_dim=64))  # fmt: skip
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(ValueError):
        compress.run(compress_config(teacher_run, str(blank), tmp_path / "b"))
    with pytest.raises(ValueError, match="at least one must be positive"):
        off = {"cosine_weight": 0, "sentence_weight": 0, "attention_weight": 0, "value_weight": 0}
        compress.run(compress_config(teacher_run, positive_corpus, tmp_path / "c", **off))
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "c")


def test_spearman_matches_hand_computed_ranks():
    # Ranks 1 2 3 4 vs 1 3 2 4: 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8.
    assert compress.spearman([10, 20, 30, 40], [1, 3, 2, 4]) == pytest.approx(0.8)
    # Ties share their average rank: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4).
    tied = np.array([1, 2.5, 2.5, 4])
    expected = np.corrcoef(tied, [1, 2, 3, 4])[0, 1]
    assert compress.spearman([5, 7, 7, 9], [1, 2, 3, 4]) == pytest.approx(expected)
    assert compress.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.slow  # 3 short runs, about 30 s
def test_a_killed_compress_run_resumes_to_the_uninterrupted_weights(
    teacher_run, positive_corpus, tmp_path, monkeypatch
):
    """Killed after step 6 (its checkpoint is after step 4), then started again with the same
    --output-dir: the student must end bit for bit as an uninterrupted run's. With dropout, so
    the checkpoint must hold the student's random-number states too, and the resumed run must
    skip the batches already trained on (a fresh start would also reach the same weights, but
    would evaluate twice: the history shows which)."""
    settings = {"steps": 8, "eval_interval": 4, "dropout": 0.1}
    uninterrupted = compress.run(
        compress_config(teacher_run, positive_corpus, tmp_path / "uninterrupted", **settings)
    )
    config = compress_config(teacher_run, positive_corpus, tmp_path / "resumed", **settings)

    def crashing_fit(*args, callbacks=(), **kwargs):
        return workflow_training.fit(*args, callbacks=[*callbacks, CrashAfter(6)], **kwargs)

    monkeypatch.setattr(compress, "fit", crashing_fit)
    with pytest.raises(RuntimeError, match="simulated crash"):
        compress.run(config)
    assert (tmp_path / "resumed" / "backup" / "checkpoint").exists()
    assert not (tmp_path / "resumed" / "model.keras").exists()
    monkeypatch.undo()

    resumed = compress.run(config)  # from the checkpoint after step 4
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    full_history = json.loads((tmp_path / "uninterrupted" / "history.json").read_text())
    assert resumed.steps == uninterrupted.steps == 8
    assert len(history["val_loss"]) == 1 and len(full_history["val_loss"]) == 2
    assert history["val_loss"][0] == full_history["val_loss"][1]
    ours, theirs = saved_weights(resumed.model_path), saved_weights(uninterrupted.model_path)
    assert sorted(ours) == sorted(theirs) and len(ours) > 10
    for name, value in ours.items():
        np.testing.assert_array_equal(value, theirs[name], err_msg=name)
    assert resumed.metrics["validation_loss"] == uninterrupted.metrics["validation_loss"]
    assert not (tmp_path / "resumed" / "backup").exists()  # removed once training completed
