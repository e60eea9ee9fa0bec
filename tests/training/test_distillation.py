"""The general-distillation loss terms against NumPy hand computations, and `encoder_states`
against the backbone's own outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.layers import TransformerEncoderBlock
from keras_transformer.models import BertBackbone
from keras_transformer.training.distillation import (
    EncoderStates,
    GeneralDistillationLoss,
    HiddenProjection,
    attention_distribution_loss,
    encoder_states,
    hidden_cosine_loss,
    hidden_mse_loss,
    masked_lm_soft_target_loss,
    relation_loss,
    value_heads,
    value_relation_loss,
)

RNG = np.random.default_rng(7)
B, T = 2, 4
MASK = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], "int32")  # one padded position: (1, 3)
REAL = MASK.astype(bool)


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


def attention_weights(num_heads):
    """Softmax rows over the real keys, zero at padded keys: (B, N, T, T)."""
    scores = normal(B, num_heads, T, T)
    scores = np.where(REAL[:, None, None, :], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype("float32")


def wild_padding(x, token_axis):
    """`x` with every value at the padded position replaced by a large random one."""
    x = np.array(x, copy=True)
    index = [slice(None)] * x.ndim
    index[0], index[token_axis] = 1, 3
    x[tuple(index)] = 1e3 * RNG.normal(size=x[tuple(index)].shape)
    return x


def wild_attention_padding(w):
    """Weights with the padded query row and the padded key column replaced by wild values."""
    return wild_padding(wild_padding(w, 2), 3)


# === NumPy references: loops over real tokens, written independently of the module ===


def np_cosine(t, s):
    values = [
        1 - t[b, i] @ s[b, i] / (np.linalg.norm(t[b, i]) * np.linalg.norm(s[b, i]))
        for b in range(B)
        for i in range(T)
        if REAL[b, i]
    ]
    return np.mean(values)


def np_mse(t, s):
    return np.mean(
        [np.mean((t[b, i] - s[b, i]) ** 2) for b in range(B) for i in range(T) if REAL[b, i]]
    )


def np_kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


def np_attention_kl(t, s):
    """Mean over real queries of the mean over heads of KL over real keys."""
    per_query = []
    for b in range(B):
        keys = REAL[b]
        for i in range(T):
            if REAL[b, i]:
                heads = [np_kl(t[b, n, i, keys], s[b, n, i, keys]) for n in range(t.shape[1])]
                per_query.append(np.mean(heads))
    return np.mean(per_query)


def np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def np_relations(x, num_heads):
    """(B, T, H) vectors into (B, R, T, T) relations softmax(X Xᵀ/√d) over real keys (padded
    keys and padded query rows left at 1, never read)."""
    d = x.shape[-1] // num_heads
    out = np.ones((B, num_heads, T, T))
    for b in range(B):
        keys = np.flatnonzero(REAL[b])
        for r in range(num_heads):
            head = x[b, :, r * d : (r + 1) * d].astype("float64")
            for i in keys:
                out[b, r, i, keys] = np_softmax(
                    np.array([head[i] @ head[j] for j in keys]) / np.sqrt(d)
                )
    return out


def concat_heads(v):
    """(B, N, T, D) into (B, T, N·D), head after head."""
    return np.concatenate([v[:, n] for n in range(v.shape[1])], axis=-1)


def np_mlm(t, s, temperature, weights):
    total, weight = 0.0, 0.0
    for b in range(t.shape[0]):
        for p in range(t.shape[1]):
            kl = np_kl(np_softmax(t[b, p] / temperature), np_softmax(s[b, p] / temperature))
            total += weights[b, p] * kl
            weight += weights[b, p]
    return temperature**2 * total / weight


# === Hidden-state terms ===


@pytest.mark.parametrize(
    "loss, reference", [(hidden_cosine_loss, np_cosine), (hidden_mse_loss, np_mse)]
)
def test_hidden_losses_match_numpy_and_ignore_padding(loss, reference):
    teacher, student = normal(B, T, 6), normal(B, T, 6)
    value = float(loss(teacher, student, MASK))
    np.testing.assert_allclose(value, reference(teacher, student), rtol=1e-5)
    wild = float(loss(wild_padding(teacher, 1), wild_padding(student, 1), MASK))
    np.testing.assert_allclose(wild, value, rtol=1e-6)
    # Without a mask every position counts, so the padded one changes the value.
    assert abs(float(loss(wild_padding(teacher, 1), student)) - value) > 1e-2


def test_cosine_ignores_scale_and_mse_does_not():
    teacher = normal(B, T, 6)
    assert float(hidden_cosine_loss(teacher, 3.0 * teacher, MASK)) == pytest.approx(0.0, abs=1e-6)
    assert float(hidden_cosine_loss(teacher, -teacher, MASK)) == pytest.approx(2.0, abs=1e-6)
    np.testing.assert_allclose(
        float(hidden_mse_loss(teacher, 3.0 * teacher, MASK)),
        np_mse(teacher, 3.0 * teacher),
        rtol=1e-5,
    )


def test_hidden_losses_need_equal_widths_and_projection_gives_them():
    teacher, student = normal(B, T, 8), normal(B, T, 6)
    for loss in (hidden_cosine_loss, hidden_mse_loss):
        with pytest.raises(ValueError, match="HiddenProjection"):
            loss(teacher, student, MASK)
        with pytest.raises(ValueError, match="same token positions"):
            loss(teacher, normal(B, T + 1, 8), None)
    projection = HiddenProjection(8)
    projected = np.asarray(projection(student))
    kernel, bias = projection.dense.get_weights()
    np.testing.assert_allclose(projected, student @ kernel + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        float(hidden_mse_loss(teacher, projected, MASK)), np_mse(teacher, projected), rtol=1e-5
    )
    clone = HiddenProjection.from_config(projection.get_config())
    assert clone.hidden_dim == 8
    with pytest.raises(ValueError, match="hidden_dim"):
        HiddenProjection(0)


# === Attention distributions ===


def test_attention_distribution_loss_matches_numpy_and_ignores_padding():
    teacher, student = attention_weights(2), attention_weights(2)
    value = float(attention_distribution_loss(teacher, student, MASK))
    np.testing.assert_allclose(value, np_attention_kl(teacher, student), rtol=1e-5)
    wild = attention_distribution_loss(
        wild_attention_padding(teacher), np.abs(wild_attention_padding(student)), MASK
    )
    np.testing.assert_allclose(float(wild), value, rtol=1e-6)


def test_attention_distribution_loss_needs_equal_head_counts():
    with pytest.raises(ValueError, match="relation_loss"):
        attention_distribution_loss(attention_weights(2), attention_weights(3)[:, :3], MASK)
    with pytest.raises(ValueError, match="same token positions"):
        attention_distribution_loss(attention_weights(2), normal(B, 2, T, T + 1), MASK)


# === Relations ===


def np_relation_loss(teacher, student, num_heads):
    t, s = np_relations(teacher, num_heads), np_relations(student, num_heads)
    return np_attention_kl(t, s)


def test_relation_loss_matches_numpy_across_widths_and_head_counts():
    teacher_values = normal(B, 2, T, 4)  # 2 heads of 4: width 8
    student_hidden = normal(B, T, 6)  # a (B, T, H) student of width 6
    student_values = normal(B, 3, T, 2)  # 3 heads of 2: width 6
    for student in (student_hidden, student_values):
        flat = student if student.ndim == 3 else concat_heads(student)
        value = float(relation_loss(teacher_values, student, MASK, num_relation_heads=2))
        expected = np_relation_loss(concat_heads(teacher_values), flat, 2)
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        wild = relation_loss(
            wild_padding(teacher_values, 2), wild_padding(student, student.ndim - 2), MASK, 2
        )
        np.testing.assert_allclose(float(wild), value, rtol=1e-6)


def test_relation_loss_keeping_heads_equals_regrouping_into_as_many():
    teacher, student = normal(B, 2, T, 4), normal(B, 2, T, 3)
    kept = float(value_relation_loss(teacher, student, MASK))
    np.testing.assert_allclose(kept, float(relation_loss(teacher, student, MASK, 2)), rtol=1e-6)
    np.testing.assert_allclose(
        kept, np_relation_loss(concat_heads(teacher), concat_heads(student), 2), rtol=1e-5
    )


def test_relation_loss_errors():
    with pytest.raises(ValueError, match="must divide"):
        relation_loss(normal(B, T, 8), normal(B, T, 6), MASK, num_relation_heads=4)
    with pytest.raises(ValueError, match="Pass `num_relation_heads`"):
        relation_loss(normal(B, T, 8), normal(B, T, 8), MASK)
    with pytest.raises(ValueError, match="keep their heads"):
        value_relation_loss(normal(B, 2, T, 4), normal(B, 3, T, 2), MASK)
    with pytest.raises(ValueError, match="same token positions"):
        relation_loss(normal(B, T, 8), normal(B, T + 1, 8), None, 2)
    with pytest.raises(ValueError, match="positive integer"):
        relation_loss(normal(B, T, 8), normal(B, T, 8), MASK, 0)


# === Masked-LM soft targets ===


def test_masked_lm_soft_target_loss_matches_numpy_and_ignores_padded_positions():
    teacher, student = normal(B, 3, 7), normal(B, 3, 7)
    weights = np.array([[1, 1, 0], [1, 0.5, 1]], "float32")
    value = float(masked_lm_soft_target_loss(teacher, student, 2.0, weights))
    np.testing.assert_allclose(value, np_mlm(teacher, student, 2.0, weights), rtol=1e-5)
    teacher[0, 2] = 1e3 * normal(7)  # a padded mask position
    wild = masked_lm_soft_target_loss(teacher, student, 2.0, weights)
    np.testing.assert_allclose(float(wild), value, rtol=1e-6)


def test_masked_lm_soft_target_loss_gathers_a_pruned_vocabulary():
    teacher, student = normal(B, 3, 9), normal(B, 3, 5)
    kept_ids = [0, 2, 3, 7, 8]
    value = float(masked_lm_soft_target_loss(teacher, student, 1.5, kept_ids=kept_ids))
    expected = np_mlm(teacher[..., kept_ids], student, 1.5, np.ones((B, 3)))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="kept_ids"):
        masked_lm_soft_target_loss(teacher, student)
    with pytest.raises(ValueError, match="one teacher id per student token"):
        masked_lm_soft_target_loss(teacher, student, kept_ids=kept_ids[:4])
    with pytest.raises(ValueError, match="temperature"):
        masked_lm_soft_target_loss(teacher, teacher, temperature=0.0)


# === Properties shared by every term ===


def all_terms():
    """(name, loss of (teacher, student), teacher, student) for each term."""
    return [
        ("cosine", lambda t, s: hidden_cosine_loss(t, s, MASK), normal(B, T, 6), normal(B, T, 6)),
        ("mse", lambda t, s: hidden_mse_loss(t, s, MASK), normal(B, T, 6), normal(B, T, 6)),
        (
            "attention",
            lambda t, s: attention_distribution_loss(t, tf.nn.softmax(s), MASK),
            attention_weights(2),
            normal(B, 2, T, T),
        ),
        (
            "relation",
            lambda t, s: relation_loss(t, s, MASK, 2),
            normal(B, 2, T, 4),
            normal(B, 3, T, 2),
        ),
        (
            "masked_lm",
            lambda t, s: masked_lm_soft_target_loss(t, s, 2.0, MASK[:, :3]),
            normal(B, 3, 7),
            normal(B, 3, 7),
        ),
    ]


@pytest.mark.parametrize("index", range(5), ids=[term[0] for term in all_terms()])
def test_zero_for_identical_inputs_positive_otherwise_float32(index):
    name, loss, teacher, student = all_terms()[index]
    value = loss(teacher, student)
    assert value.dtype == "float32" and value.shape == ()
    assert float(value) > 1e-3
    same = np.log(teacher + 1e-30) if name == "attention" else teacher  # softmax(log w) = w
    assert float(loss(teacher, same)) == pytest.approx(0.0, abs=1e-6)
    # Half-precision inputs give a float32 loss.
    half = loss(tf.cast(teacher, "bfloat16"), tf.cast(student, "bfloat16"))
    assert half.dtype == "float32"


@pytest.mark.parametrize("index", range(5), ids=[term[0] for term in all_terms()])
def test_gradients_reach_the_student_only(index):
    _, loss, teacher, student = all_terms()[index]
    teacher, student = tf.Variable(teacher), tf.Variable(student)
    with tf.GradientTape() as tape:
        value = loss(teacher, student)
    teacher_grad, student_grad = tape.gradient(value, [teacher, student])
    assert teacher_grad is None
    assert np.abs(np.asarray(student_grad)).max() > 1e-4


# === encoder_states ===


def tiny_backbone(num_layers=2):
    """A tiny backbone whose weights are all moved off their initial values (layer norms'
    scales away from 1 and biases away from 0, so a missing or extra norm shows)."""
    backbone = BertBackbone(
        vocabulary_size=30,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
        dropout=0.1,
    )
    for weight in backbone.weights:
        weight.assign(weight + 0.3 * RNG.normal(size=weight.shape))
    return backbone


def tiny_batch():
    ids = np.where(REAL, RNG.integers(1, 30, (B, T)), 0).astype("int32")
    segments = np.array([[0, 0, 1, 1], [0, 1, 1, 0]], "int32")
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": MASK}


def truncated_copy(backbone):
    """A one-block backbone with `backbone`'s embeddings and first block."""
    copy = tiny_backbone(num_layers=1)
    for name in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_norm"):
        getattr(copy, name).set_weights(getattr(backbone, name).get_weights())
    copy.transformer_blocks[0].set_weights(backbone.transformer_blocks[0].get_weights())
    return copy


def np_attention(x, attention):
    """Value heads (B, N, T, D) and masked softmax weights (B, N, T, T) of `attention` on `x`."""
    wq, bq, wk, bk, wv, bv = (np.asarray(w) for w in attention.get_weights()[:6])
    q = np.einsum("bth,hnd->bntd", x, wq) + bq[None, :, None, :]
    k = np.einsum("bth,hnd->bntd", x, wk) + bk[None, :, None, :]
    v = np.einsum("bth,hnd->bntd", x, wv) + bv[None, :, None, :]
    scores = np.einsum("bntd,bnsd->bnts", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(REAL[:, None, None, :], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return v, weights / weights.sum(-1, keepdims=True)


def test_encoder_states_equal_the_backbone_and_an_independent_computation():
    backbone, batch = tiny_backbone(), tiny_batch()
    states = encoder_states(backbone, batch)
    assert isinstance(states, EncoderStates)
    np.testing.assert_allclose(
        np.asarray(states.sequence_output),
        np.asarray(backbone(batch)["sequence_output"]),
        rtol=1e-5,
        atol=1e-6,
    )
    # The last block's input is the output of the same backbone cut after its first block.
    block_input = np.asarray(truncated_copy(backbone)(batch)["sequence_output"])
    values, weights = np_attention(block_input, backbone.transformer_blocks[-1].self_attention)
    np.testing.assert_allclose(np.asarray(states.values), values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(states.attention_weights), weights, rtol=1e-5, atol=1e-6)
    # The first block's states: its output is the truncated backbone's.
    first = encoder_states(backbone, batch, block_index=0)
    np.testing.assert_allclose(np.asarray(first.sequence_output), block_input, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="block_index"):
        encoder_states(backbone, batch, block_index=2)
    with pytest.raises(ValueError, match="padding_mask"):
        encoder_states(backbone, {"token_ids": batch["token_ids"]})


def test_value_heads_of_a_pre_norm_block_read_the_normalized_input():
    block = TransformerEncoderBlock(2, 16, normalize_first=True)
    x = normal(B, T, 8)
    block(x, padding_mask=MASK)
    for weight in block.weights:
        weight.assign(weight + 0.3 * RNG.normal(size=weight.shape))
    gamma, beta = (np.asarray(w) for w in block.attention_norm.get_weights())
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    normalized = (x - mean) / np.sqrt(var + block.layer_norm_epsilon) * gamma + beta
    expected, _ = np_attention(normalized, block.self_attention)
    np.testing.assert_allclose(np.asarray(value_heads(block, x)), expected, rtol=1e-4, atol=1e-5)


def test_encoder_states_use_dropout_only_in_training():
    backbone, batch = tiny_backbone(), tiny_batch()
    a, b = encoder_states(backbone, batch), encoder_states(backbone, batch)
    np.testing.assert_array_equal(np.asarray(a.sequence_output), np.asarray(b.sequence_output))
    trained = encoder_states(backbone, batch, training=True)
    assert np.abs(np.asarray(trained.sequence_output) - np.asarray(a.sequence_output)).max() > 1e-3


def test_encoder_states_under_mixed_precision_equal_the_backbone():
    keras.config.set_dtype_policy("mixed_bfloat16")
    backbone, batch = tiny_backbone(), tiny_batch()
    states = encoder_states(backbone, batch)
    assert states.values.dtype == "bfloat16"
    np.testing.assert_array_equal(
        np.asarray(tf.cast(states.sequence_output, "float32")),
        np.asarray(tf.cast(backbone(batch)["sequence_output"], "float32")),
    )
    loss = GeneralDistillationLoss(hidden_mse=1.0)
    total, _ = loss(states, encoder_states(tiny_backbone(), batch), MASK)
    assert total.dtype == "float32"


# === GeneralDistillationLoss ===


def test_general_loss_is_the_weighted_sum_of_its_terms():
    teacher = EncoderStates(normal(B, T, 8), attention_weights(2), normal(B, 2, T, 4))
    student = EncoderStates(normal(B, T, 6), attention_weights(2), normal(B, 2, T, 3))
    projection = HiddenProjection(8)
    t_logits, s_logits = normal(B, 3, 9), normal(B, 3, 5)
    kept_ids, weights = (0, 1, 4, 5, 8), MASK[:, :3]
    loss = GeneralDistillationLoss(
        hidden_cosine=0.5, hidden_mse=2.0, attention=1.0, value_relation=3.0, masked_lm=0.25,
        temperature=2.0, num_relation_heads=2, kept_ids=kept_ids,
    )  # fmt: skip
    total, terms = loss(teacher, student, MASK, projection, t_logits, s_logits, weights)
    projected = projection(student.sequence_output)
    expected = {
        "hidden_cosine": hidden_cosine_loss(teacher.sequence_output, projected, MASK),
        "hidden_mse": hidden_mse_loss(teacher.sequence_output, projected, MASK),
        "attention": attention_distribution_loss(
            teacher.attention_weights, student.attention_weights, MASK
        ),
        "value_relation": relation_loss(teacher.values, student.values, MASK, 2),
        "masked_lm": masked_lm_soft_target_loss(t_logits, s_logits, 2.0, weights, list(kept_ids)),
    }
    assert sorted(terms) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(float(terms[name]), float(value), rtol=1e-6)
    weighted = sum(getattr(loss, name) * float(value) for name, value in expected.items())
    np.testing.assert_allclose(float(total), weighted, rtol=1e-6)
    # A weight of 0 leaves the term out (and its inputs unread).
    total, terms = GeneralDistillationLoss(value_relation=0.0)(teacher, student, MASK)
    assert list(terms) == ["attention"]
    np.testing.assert_allclose(float(total), float(expected["attention"]), rtol=1e-6)


def test_general_loss_errors():
    with pytest.raises(ValueError, match="At least one"):
        GeneralDistillationLoss(attention=0.0, value_relation=0.0)
    with pytest.raises(ValueError, match="≥ 0"):
        GeneralDistillationLoss(hidden_mse=-1.0)
    states = EncoderStates(normal(B, T, 8), attention_weights(2), normal(B, 2, T, 4))
    with pytest.raises(ValueError, match="teacher_logits"):
        GeneralDistillationLoss(masked_lm=1.0)(states, states, MASK)


def test_a_few_steps_lower_the_loss_and_leave_the_teacher_unchanged():
    teacher = tiny_backbone()
    student = BertBackbone(
        vocabulary_size=30, num_layers=1, num_heads=3, hidden_dim=6, intermediate_dim=12,
        max_sequence_length=8, dropout=0.0,
    )  # fmt: skip
    batch = tiny_batch()
    loss = GeneralDistillationLoss(attention=0.0, value_relation=1.0, num_relation_heads=2)
    teacher_before = [np.asarray(w) for w in teacher.weights]
    optimizer = keras.optimizers.Adam(1e-2)
    losses = []
    for _ in range(15):
        with tf.GradientTape() as tape:
            total, _ = loss(encoder_states(teacher, batch), encoder_states(student, batch), MASK)
        variables = student.trainable_variables
        gradients = tape.gradient(total, variables)
        optimizer.apply(
            [g for g in gradients if g is not None],
            [v for g, v in zip(gradients, variables, strict=True) if g is not None],
        )
        losses.append(float(total))
    assert losses[-1] < 0.5 * losses[0]
    for before, after in zip(teacher_before, teacher.weights, strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))
