"""The distillation loss, term by term, against numpy; and the student's copied blocks.

`Distiller.compute_loss` is

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - alpha) * cross_entropy(labels, student)
    + cosine_weight * (1 - cos(teacher pooled vector, student pooled vector)),

each averaged over the batch. Each term is isolated by its weights and compared with the same
formula written in numpy from the two models' logits and pooled vectors.
"""

import json

import numpy as np
import pytest

from keras_transformer.models import BertBackbone, BertClassifier
from workflows import distill

V = 40
LENGTHS = (8, 5, 2, 6)


def randomized(model, seed):
    """Every weight random (biases and norms too): copies and mix-ups cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        noise = rng.normal(0.0, 0.3, tuple(variable.shape)).astype("float32")
        if variable.path.endswith("gamma"):
            noise += 1.0
        variable.assign(noise)
    return model


def tiny_classifier(num_layers, seed):
    backbone = BertBackbone(
        vocabulary_size=V,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=24,
        max_sequence_length=16,
        dropout=0.0,
    )
    return randomized(BertClassifier(backbone, num_classes=3, pooling="pooler", dropout=0.0), seed)


def padded_batch(seed=0):
    rng = np.random.default_rng(seed)
    width = max(LENGTHS)
    mask = np.arange(width)[None, :] < np.array(LENGTHS)[:, None]
    ids = np.where(mask, rng.integers(1, V, (len(LENGTHS), width)), 0).astype("int32")
    return {"token_ids": ids, "padding_mask": mask.astype("int32")}


LABELS = np.array([0, 2, 1, 2], "int32")


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def numpy_losses(teacher, student, x, y, temperature):
    """(soft, hard, cosine) terms, each averaged over the batch, in float64 numpy."""
    t_logits = np.asarray(teacher(x, training=False), "float64")
    s_logits = np.asarray(student(x, training=False), "float64")
    log_p = log_softmax(t_logits / temperature)
    log_q = log_softmax(s_logits / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)
    soft = temperature**2 * kl.mean()
    hard = -log_softmax(s_logits)[np.arange(len(y)), y].mean()
    t_vec = np.asarray(teacher.backbone(x, training=False)["pooled_output"], "float64")
    s_vec = np.asarray(student.backbone(x, training=False)["pooled_output"], "float64")
    cos = (t_vec * s_vec).sum(-1) / (
        np.linalg.norm(t_vec, axis=-1) * np.linalg.norm(s_vec, axis=-1)
    )
    return soft, hard, (1.0 - cos).mean()


@pytest.fixture(scope="module")
def pair():
    teacher = tiny_classifier(num_layers=4, seed=0)
    student = tiny_classifier(num_layers=2, seed=1)  # Not copied: its own random weights.
    return teacher, student


def distiller_loss(teacher, student, x, y, alpha, temperature, cosine_weight):
    model = distill.Distiller(teacher, student, alpha, temperature, cosine_weight)
    y_pred = model(x, training=False)
    return float(model.compute_loss(x, y, y_pred, training=False))


def test_soft_target_term_is_alpha_t_squared_kl(pair):
    teacher, student = pair
    x = padded_batch()
    soft, _, _ = numpy_losses(teacher, student, x, LABELS, temperature=2.5)
    assert soft > 0.05  # the two models disagree: the term is not trivially 0
    loss = distiller_loss(teacher, student, x, LABELS, 0.7, 2.5, 0.0)
    loss_without_hard = loss - 0.3 * numpy_losses(teacher, student, x, LABELS, 2.5)[1]
    np.testing.assert_allclose(loss_without_hard, 0.7 * soft, rtol=1e-5, atol=1e-6)
    only_soft = distiller_loss(teacher, student, x, LABELS, 1.0, 2.5, 0.0)
    np.testing.assert_allclose(only_soft, soft, rtol=1e-5, atol=1e-6)


def test_hard_term_is_one_minus_alpha_cross_entropy(pair):
    teacher, student = pair
    x = padded_batch()
    _, hard, _ = numpy_losses(teacher, student, x, LABELS, temperature=2.0)
    np.testing.assert_allclose(
        distiller_loss(teacher, student, x, LABELS, 0.0, 2.0, 0.0), hard, rtol=1e-5, atol=1e-6
    )
    soft, hard, _ = numpy_losses(teacher, student, x, LABELS, temperature=3.0)
    np.testing.assert_allclose(
        distiller_loss(teacher, student, x, LABELS, 0.25, 3.0, 0.0),
        0.25 * soft + 0.75 * hard,
        rtol=1e-5,
        atol=1e-6,
    )


def test_cosine_term_on_the_pooled_vectors(pair):
    teacher, student = pair
    x = padded_batch()
    soft, hard, cosine = numpy_losses(teacher, student, x, LABELS, temperature=2.0)
    assert cosine > 0.05
    total = distiller_loss(teacher, student, x, LABELS, 0.4, 2.0, 0.8)
    np.testing.assert_allclose(total, 0.4 * soft + 0.6 * hard + 0.8 * cosine, rtol=1e-5, atol=1e-6)


def test_padded_positions_contribute_nothing(pair):
    teacher, student = pair
    x = padded_batch()
    mask = x["padding_mask"].astype(bool)
    other = np.random.default_rng(9).integers(1, V, mask.shape).astype("int32")
    changed = dict(x, token_ids=np.where(mask, x["token_ids"], other))
    assert (changed["token_ids"] != x["token_ids"]).any()
    for alpha, temperature, cosine_weight in ((1.0, 2.0, 0.0), (0.0, 2.0, 0.0), (0.0, 2.0, 1.0)):
        before = distiller_loss(teacher, student, x, LABELS, alpha, temperature, cosine_weight)
        after = distiller_loss(teacher, student, changed, LABELS, alpha, temperature, cosine_weight)
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    # ... while a change at a real position does change them (the check above can fail).
    real_change = dict(x, token_ids=x["token_ids"].copy())
    real_change["token_ids"][0, 1] = (x["token_ids"][0, 1] % (V - 1)) + 1
    assert distiller_loss(teacher, student, real_change, LABELS, 1.0, 2.0, 0.0) != pytest.approx(
        distiller_loss(teacher, student, x, LABELS, 1.0, 2.0, 0.0), rel=1e-5
    )


def test_student_blocks_are_every_other_teacher_block():
    teacher = tiny_classifier(num_layers=4, seed=2)
    student = distill.build_student(teacher, distill.Config())
    assert student.backbone.num_layers == 2
    teacher_blocks = teacher.backbone.transformer_blocks
    for i, block in enumerate(student.backbone.transformer_blocks):
        source = teacher_blocks[2 * i]
        assert len(block.weights) == len(source.weights) > 0
        for ours, theirs in zip(block.weights, source.weights, strict=True):
            assert ours.path.split("/")[-1] == theirs.path.split("/")[-1]
            assert np.array_equal(np.asarray(ours), np.asarray(theirs)), ours.path
    # Block 1 of the student is teacher block 2, not teacher block 1.
    assert not np.array_equal(
        np.asarray(student.backbone.transformer_blocks[1].weights[0]),
        np.asarray(teacher_blocks[1].weights[0]),
    )
    for name in (
        "token_embedding",
        "position_embedding",
        "segment_embedding",
        "embeddings_norm",
        "pooler",
    ):
        for ours, theirs in zip(
            getattr(student.backbone, name).weights,
            getattr(teacher.backbone, name).weights,
            strict=True,
        ):
            assert np.array_equal(np.asarray(ours), np.asarray(theirs)), name
    for ours, theirs in zip(
        student.classification_head.weights, teacher.classification_head.weights, strict=True
    ):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_student_without_teacher_initialisation_is_not_a_copy():
    teacher = tiny_classifier(num_layers=4, seed=3)
    student = distill.build_student(teacher, distill.Config(initialize_from_teacher=False))
    ours = np.asarray(student.backbone.transformer_blocks[0].weights[0])
    theirs = np.asarray(teacher.backbone.transformer_blocks[0].weights[0])
    assert ours.shape == theirs.shape and not np.array_equal(ours, theirs)


def numpy_mean_vectors(model, x):
    sequence = np.asarray(model.backbone(x, training=False)["sequence_output"], "float64")
    lengths = x["padding_mask"].sum(axis=1)
    return np.stack([sequence[i, :n].mean(axis=0) for i, n in enumerate(lengths)])


def test_cosine_term_uses_the_vectors_the_classifiers_pool():
    teacher = tiny_classifier(num_layers=4, seed=2)
    student = tiny_classifier(num_layers=2, seed=3)
    teacher.pooling = student.pooling = "mean"  # what their heads would read under "mean"
    x = padded_batch(seed=4)
    t_vec, s_vec = numpy_mean_vectors(teacher, x), numpy_mean_vectors(student, x)
    cos = (t_vec * s_vec).sum(-1) / (
        np.linalg.norm(t_vec, axis=-1) * np.linalg.norm(s_vec, axis=-1)
    )
    only_cosine = distiller_loss(teacher, student, x, LABELS, 0.0, 2.0, 1.0)
    hard = numpy_losses(teacher, student, x, LABELS, temperature=2.0)[1]
    np.testing.assert_allclose(only_cosine - hard, (1.0 - cos).mean(), rtol=1e-5, atol=1e-6)


def test_a_mean_pooling_student_trains_without_touching_or_warning_about_the_pooler():
    import warnings

    import keras

    def mean_classifier(num_layers, seed):
        model = tiny_classifier(num_layers, seed)
        return randomized(
            BertClassifier(model.backbone, num_classes=3, pooling="mean", dropout=0.0), seed
        )

    teacher, student = mean_classifier(4, 5), mean_classifier(2, 6)
    model = distill.Distiller(teacher, student, 0.5, 2.0, 0.0)
    pooler = {id(w) for w in student.backbone.pooler.weights}
    assert not pooler & {id(w) for w in model.trainable_variables}
    assert pooler <= {id(w) for w in model.non_trainable_variables}
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np.array(w) for w in student.backbone.pooler.weights]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(padded_batch(seed=7), LABELS, epochs=2, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    for b, w in zip(before, student.backbone.pooler.weights, strict=True):
        np.testing.assert_array_equal(b, np.asarray(w))


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile, examples", [(False, 11), (True, 12)])
def test_distill_on_two_replicas_matches_one_process(jit_compile, examples):
    """The training loop on 2 mirrored replicas (2 logical CPUs, a fresh process; ~30 s) reaches
    the student weights of one process: same data, same start, plain SGD (Adam would cancel a
    loss scaled by 2). Unscaled, each replica's mean counted twice (0.05 off). 11 examples in
    batches of 4: the last batch, 3 rows, splits 1 + 2 over the replicas, so a per-replica mean
    divided by the replicas is not enough (0.016 off); the loss is the replica's sum over the
    global batch's count. Under jit_compile (no all-reduce inside the XLA step; Keras's
    reduction, exact for even splits) 12 examples: the step compiles and matches too."""
    from fresh_process import run_code

    result = run_code(f"""
        import json
        import sys

        from keras_transformer.distribute import split_cpu

        devices = split_cpu(2)  # before TensorFlow starts
        sys.path.insert(0, "tests/workflows")
        import keras
        import numpy as np
        import tensorflow as tf
        from replica_equality import one_vs_two_replicas
        from test_distill_losses import V, tiny_classifier

        from workflows import distill

        rng = np.random.default_rng(0)
        lengths = rng.integers(2, 9, {examples})
        mask = np.arange(8)[None, :] < lengths[:, None]
        ids = np.where(mask, rng.integers(1, V, mask.shape), 0).astype("int32")
        labels = rng.integers(0, 3, {examples}).astype("int32")
        data = tf.data.Dataset.from_tensor_slices(
            ({{"token_ids": ids, "padding_mask": mask.astype("int32")}}, labels)
        ).batch(4)

        def build():
            teacher = tiny_classifier(num_layers=4, seed=0)
            student = tiny_classifier(num_layers=2, seed=1)
            model = distill.Distiller(teacher, student, 0.5, 2.0, 1.0)
            model.compile(
                optimizer=keras.optimizers.SGD(0.1),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                jit_compile={jit_compile},
            )
            return model

        print(json.dumps(one_vs_two_replicas(build, data, devices, lambda m: m.student.weights)))
    """)
    result = json.loads(result)
    assert result["moved"] > 1e-2  # the student trained: a difference would show
    assert result["difference"] < 1e-5, result
