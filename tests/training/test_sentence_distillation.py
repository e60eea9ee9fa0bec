"""`sentence_cosine_loss`: the mean-pooled sentence vectors' cosine term, against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.training.distillation import hidden_cosine_loss, sentence_cosine_loss

RNG = np.random.default_rng(11)
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], "int32")


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


def np_sentence_cosine(teacher, student, mask):
    """A loop over sentences: the mean of each one's real token vectors, then 1 - cosine."""
    losses = []
    for t, s, m in zip(teacher, student, mask.astype(bool), strict=True):
        a, b = t[m].mean(axis=0), s[m].mean(axis=0)
        losses.append(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.mean(losses))


def test_equals_a_numpy_hand_computation_with_padding_ignored():
    teacher, student = normal(3, 4, 5), normal(3, 4, 5)
    expected = np_sentence_cosine(teacher, student, MASK)
    assert float(sentence_cosine_loss(teacher, student, MASK)) == pytest.approx(expected, 1e-5)
    wild = student.copy()
    wild[~MASK.astype(bool)] = 1e3 * normal(int((MASK == 0).sum()), 5)
    assert float(sentence_cosine_loss(teacher, wild, MASK)) == pytest.approx(expected, 1e-5)
    no_mask = np_sentence_cosine(teacher, student, np.ones_like(MASK))
    assert float(sentence_cosine_loss(teacher, student)) == pytest.approx(no_mask, 1e-5)


def test_zero_for_scaled_sentence_vectors_that_the_token_cosine_term_still_penalises():
    # Token vectors whose directions differ but whose means point the teacher's way: only the
    # sentence term is blind to the difference, which is why it is a term of its own.
    teacher = normal(3, 4, 5)
    mask = np.ones((3, 4), "int32")
    shuffled = teacher[:, ::-1, :] * 2.0  # same mean direction (times 2), other token order
    assert float(sentence_cosine_loss(teacher, shuffled, mask)) == pytest.approx(0.0, abs=1e-5)
    assert float(hidden_cosine_loss(teacher, shuffled, mask)) > 0.1
    assert float(sentence_cosine_loss(teacher, -teacher, mask)) == pytest.approx(2.0, abs=1e-5)


def test_gradients_reach_the_student_only():
    teacher = tf.Variable(normal(3, 4, 5))
    student = tf.Variable(normal(3, 4, 5))
    with tf.GradientTape() as tape:
        loss = sentence_cosine_loss(teacher, student, MASK)
    teacher_gradient, student_gradient = tape.gradient(loss, [teacher, student])
    assert teacher_gradient is None
    assert np.abs(student_gradient.numpy()[MASK.astype(bool)]).sum() > 0
    assert np.all(student_gradient.numpy()[~MASK.astype(bool)] == 0)  # padding gets nothing


def test_different_shapes_are_refused_with_advice():
    with pytest.raises(ValueError, match="HiddenProjection"):
        sentence_cosine_loss(normal(3, 4, 5), normal(3, 4, 6), MASK)
