"""compress with a masked-LM teacher: DistilBERT's soft targets next to MiniLM's terms."""

# The fixtures teacher_run and positive_corpus come from test_compress: their names are both
# imported and taken as test arguments.
# ruff: noqa: F811

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_classifier_workflows import POSITIVE
from test_compress import (  # noqa: F401  (the fixtures teacher_run, positive_corpus)
    SEQUENCE_LENGTH,
    compress_config,
    positive_corpus,
    teacher_run,
)

from keras_transformer.models import BertBackbone, BertMaskedLM
from keras_transformer.preprocessing import ClassifierPreprocessor, MaskedLMPreprocessor
from keras_transformer.text.io import load_tokenizer
from keras_transformer.text.vocabulary_pruning import prune_vocabulary
from workflows import classify, compress


@pytest.fixture(scope="module")
def student_run(teacher_run, positive_corpus, tmp_path_factory):
    # --masked-lm-weight unset: on, since the teacher (a masked pretrain run) has a head.
    folder = tmp_path_factory.mktemp("student")
    return compress.run(compress_config(teacher_run, positive_corpus, folder / "run"))


def load(path):
    return keras.saving.load_model(path, compile=False)


def kept_teacher_ids(teacher_vocabulary, student_vocabulary):
    index = {token: i for i, token in enumerate(teacher_vocabulary)}
    return np.array([index[token] for token in student_vocabulary], "int32")


def np_soft_target_loss(teacher_logits, student_logits, temperature, weights):
    def log_softmax(z):
        z = z / temperature
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    teacher, student = log_softmax(teacher_logits), log_softmax(student_logits)
    kl = (np.exp(teacher) * (teacher - student)).sum(-1)  # (B, P)
    return temperature**2 * (kl * weights).sum() / weights.sum()


def test_the_masked_lm_term_is_on_for_a_masked_teacher_and_goes_down(student_run):
    metrics = student_run.metrics
    assert metrics["masked_lm_weight"] == 1.0
    assert metrics["validation_masked_lm_loss"] > 0
    with open(os.path.join(student_run.run_dir, "history.json"), encoding="utf-8") as file:
        history = json.load(file)
    assert len(history["val_masked_lm_loss"]) == 3
    assert history["val_masked_lm_loss"][-1] < history["val_masked_lm_loss"][0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    # The other default terms still run next to it.
    assert history["val_cosine_loss"][-1] > 0 and history["val_value_loss"][-1] > 0
    # The teacher's head is left as it was (the run itself checks its weights too).
    student_masked_lm = load(os.path.join(student_run.run_dir, "masked_lm.keras"))
    assert isinstance(student_masked_lm, BertMaskedLM)
    assert student_masked_lm.backbone.num_layers == 1
    assert student_masked_lm.backbone.vocabulary_size == metrics["student_vocabulary_size"]


def test_the_masked_lm_term_equals_a_hand_computation_from_both_models_logits(
    student_run, teacher_run, positive_corpus
):
    teacher = load(os.path.join(teacher_run, "model.keras"))
    student = load(os.path.join(student_run.run_dir, "masked_lm.keras"))
    teacher_tokenizer = load_tokenizer(os.path.join(teacher_run, "tokenizer.json"))
    student_tokenizer = load_tokenizer(os.path.join(student_run.run_dir, "tokenizer.json"))
    kept = kept_teacher_ids(teacher_tokenizer.vocabulary, student_tokenizer.vocabulary)
    assert len(kept) < len(teacher_tokenizer.vocabulary)  # the vocabulary was pruned
    texts = POSITIVE[:4]
    masker = MaskedLMPreprocessor(student_tokenizer, SEQUENCE_LENGTH, seed=3)
    batch = next(iter(compress.make_masked_dataset(texts, masker, 4, False, kept)))
    batch = {key: value.numpy() for key, value in batch.items()}
    weights = batch["mask_weights"]
    assert weights.sum() > 0

    # The batch is in the teacher's ids: the teacher's own tokens but at the chosen positions.
    clean = ClassifierPreprocessor(teacher_tokenizer, SEQUENCE_LENGTH)(tf.constant(texts))
    chosen = np.zeros_like(batch["padding_mask"])
    for row, (positions, w) in enumerate(zip(batch["mask_positions"], weights, strict=True)):
        chosen[row, positions[w > 0]] = True
    same = ~chosen & batch["padding_mask"]
    np.testing.assert_array_equal(batch["token_ids"][same], clean["token_ids"].numpy()[same])

    student_ids = np.full(len(teacher_tokenizer.vocabulary), student_tokenizer.oov_token_id)
    student_ids[kept] = np.arange(len(kept))
    distiller = compress.GeneralDistiller(
        teacher.backbone,
        student.backbone,
        {"cosine": 0.0, "mse": 0.0, "attention": 0.0, "value": 0.0, "masked_lm": 1.0},
        teacher.backbone.num_heads,
        student_ids,
        teacher_masked_lm=teacher,
        student_masked_lm=student,
        temperature=2.0,
        kept_ids=kept,
    )
    terms = distiller.terms(batch, distiller(batch))
    assert set(terms) == {"masked_lm"}

    model_inputs = ("token_ids", "segment_ids", "padding_mask", "mask_positions")
    teacher_inputs = {key: batch[key] for key in model_inputs}
    student_inputs = {**teacher_inputs, "token_ids": student_ids[batch["token_ids"]]}
    teacher_logits = keras.ops.convert_to_numpy(teacher(teacher_inputs)).astype("float64")
    student_logits = keras.ops.convert_to_numpy(student(student_inputs)).astype("float64")
    expected = np_soft_target_loss(teacher_logits[..., kept], student_logits, 2.0, weights)
    assert expected > 1e-5  # the two distributions differ: the check is not 0 == 0
    # float32 logits of two close distributions: the KL's rounding is ~1e-7 absolute.
    np.testing.assert_allclose(float(terms["masked_lm"]), expected, rtol=2e-3, atol=1e-6)
    # Without the mask weights (the padded prediction slots counted) it would differ.
    assert (weights == 0).any()
    unweighted = np_soft_target_loss(
        teacher_logits[..., kept], student_logits, 2.0, np.ones_like(weights)
    )
    assert abs(unweighted - expected) > 1e-2 * expected


def test_the_student_head_starts_as_the_teachers_cut_to_the_kept_vocabulary(
    teacher_run, positive_corpus
):
    base = classify.load_base(teacher_run)
    assert isinstance(base.masked_lm, BertMaskedLM) and base.masked_lm.backbone is base.backbone
    with open(positive_corpus, encoding="utf-8") as file:
        pruned = prune_vocabulary(base.tokenizer, [file.read()])
    # A student as deep as its teacher, copied from it: its logits are the teacher's at the
    # kept ids.
    student = BertBackbone.from_config(base.backbone.get_config())
    student.set_weights(base.backbone.get_weights())
    masked_lm, backbone = compress.build_student_masked_lm(student, base.masked_lm, True, pruned)
    assert masked_lm.backbone is backbone
    assert backbone.vocabulary_size == len(pruned.vocabulary) < base.backbone.vocabulary_size
    teacher_text = MaskedLMPreprocessor(base.tokenizer, SEQUENCE_LENGTH, seed=1)
    x, _, _ = teacher_text(tf.constant(POSITIVE[:3]))
    student_x = {**x, "token_ids": tf.constant(pruned.old_to_new[x["token_ids"].numpy()])}
    assert np.all(student_x["token_ids"].numpy() >= 0)  # every id of the text is kept
    np.testing.assert_allclose(
        masked_lm(student_x).numpy(),
        base.masked_lm(x).numpy()[..., pruned.kept_ids],
        rtol=1e-5,
        atol=1e-5,
    )


def test_asking_for_the_masked_lm_term_without_a_teacher_head_fails_before_training(
    teacher_run, positive_corpus, tmp_path
):
    # A base without a head: the pretrain run's encoder alone, as a compress run holds it.
    headless = tmp_path / "headless"
    headless.mkdir()
    base = classify.load_base(teacher_run)
    base.backbone.save(str(headless / "model.keras"))
    shutil.copy(os.path.join(teacher_run, "tokenizer.json"), headless / "tokenizer.json")
    headless_base = classify.load_base(str(headless))
    assert headless_base.masked_lm is None
    with pytest.raises(ValueError, match="needs a teacher with a masked-LM head") as error:
        compress.run(
            compress_config(str(headless), positive_corpus, tmp_path / "run", masked_lm_weight=0.5)
        )
    assert "\n" not in str(error.value) and "--masked-lm-weight 0" in str(error.value)
    assert not os.path.exists(tmp_path / "run")
    # Unset, the term follows the teacher; 0 turns it off even with a head.
    config = compress_config(str(headless), positive_corpus, tmp_path / "unused")
    assert compress.resolve_masked_lm_weight(config, headless_base) == 0.0
    assert compress.resolve_masked_lm_weight(config, base) == 1.0
    off = compress_config(teacher_run, positive_corpus, tmp_path / "unused", masked_lm_weight=0)
    assert compress.resolve_masked_lm_weight(off, base) == 0.0
    with pytest.raises(ValueError, match="--temperature must be positive"):
        compress.run(compress_config(teacher_run, positive_corpus, tmp_path / "t", temperature=0))


def test_the_run_folder_is_still_a_base_and_holds_the_students_masked_lm(student_run):
    base = classify.load_base(student_run.run_dir)
    assert type(base.backbone) is BertBackbone and base.masked_lm is None
    assert base.pooling == "mean"
    assert base.backbone.vocabulary_size == len(base.tokenizer.vocabulary)
    assert base.backbone.num_layers == 1
    masked_lm = load(os.path.join(student_run.run_dir, "masked_lm.keras"))
    for saved, base_weight in zip(masked_lm.backbone.weights, base.backbone.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), base_weight.numpy())
    # The head is not the teacher's any more: distillation trained it.
    teacher_path = student_run.metrics["teacher"].removeprefix("pretrain run ")
    teacher_head = load(os.path.join(teacher_path, "model.keras")).masked_lm_head
    assert not np.allclose(
        masked_lm.masked_lm_head.dense.kernel.numpy(), teacher_head.dense.kernel.numpy()
    )
