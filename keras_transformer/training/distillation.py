"""Loss terms of task-agnostic (general) distillation of a `BertBackbone` into a smaller one.

The teacher and the student read the same token positions (the same tokenization; the student's
vocabulary may be a pruned subset of the teacher's). None of the terms needs a masked-LM head
on the teacher except `masked_lm_soft_target_loss`:

- `encoder_states`: one block's output, self-attention weights and per-head value vectors,
  from the backbone's own layers (the last block by default); `value_heads`: a block's value
  vectors.
- `hidden_cosine_loss`, `hidden_mse_loss`: the student's hidden states against the teacher's
  (a narrower student goes through a learned `HiddenProjection` first); `sentence_cosine_loss`:
  the mean-pooled sentence vectors' directions (sentence-transformers' distillation).
- `attention_distribution_loss`: MiniLM's self-attention distribution transfer (equal head
  counts).
- `relation_loss`, `value_relation_loss`: MiniLM's value relation, `softmax(V Vᵀ / √d)`,
  optionally regrouped into `num_relation_heads` relation heads (MiniLM-v2), so any widths
  and head counts work.
- `masked_lm_soft_target_loss`: T² · KL of the softened masked-LM distributions.
- `GeneralDistillationLoss`: a weighted sum of the terms, with each term for logging.

Every term is a float32 scalar, computed in float32 whatever the dtype policy; the teacher's
tensors go through `stop_gradient`, so only the student gets gradients. `padding_mask` (B, T)
is 1/true at real tokens: queries at padding are left out of every mean and keys at padding
out of every distribution.
"""

import dataclasses
import math
from typing import NamedTuple

import keras
from keras import ops

from keras_transformer.layers import default_initializer

# Probabilities are clipped to this before a log, so that an underflowed student weight costs
# a large but finite amount instead of an infinite one.
_TINY = 1e-12


class EncoderStates(NamedTuple):
    """What `encoder_states` returns for one block.

    Attributes:
        sequence_output: (B, T, H) the block's output.
        attention_weights: (B, N, T, T) its self-attention weights (zero at padded keys).
        values: (B, N, T, Dv) its per-head value vectors (the value projection of the
            attention's input).
    """

    sequence_output: object
    attention_weights: object
    values: object


def encoder_states(backbone, inputs, training=False, block_index=-1):
    """Runs a `BertBackbone`'s layers in Python and returns one block's states.

    The embeddings and the blocks up to `block_index` run exactly as in the backbone's
    functional graph (same layers, same order, same masks), so with the default `block_index`
    `sequence_output` equals `backbone(inputs)["sequence_output"]`. The blocks after
    `block_index` and the pooler do not run.

    Args:
        backbone: `BertBackbone` (any model with its `token_embedding`, `position_embedding`,
            `segment_embedding`, `embeddings_norm`, `embeddings_dropout` and
            `transformer_blocks`).
        inputs: dict with `"token_ids"` (B, T), `"padding_mask"` (B, T) and optionally
            `"segment_ids"` (B, T), as for the backbone.
        training: bool. Dropout is active only in training. Defaults to `False` (a teacher).
        block_index: int. The block whose states are returned, counted as a Python index
            into `backbone.transformer_blocks` (MiniLM-v2 distils a large teacher from an
            upper-middle block). Defaults to `-1` (the last).

    Returns:
        `EncoderStates(sequence_output (B, T, H), attention_weights (B, N, T, T),
        values (B, N, T, Dv))`, in the backbone's compute dtype.

    Raises:
        ValueError: if `block_index` names no block, or `"token_ids"` or `"padding_mask"` is
            missing.
    """
    missing = [key for key in ("token_ids", "padding_mask") if key not in inputs]
    if missing:
        raise ValueError(
            f"`inputs` must hold {missing}, as for the backbone. Received keys: {sorted(inputs)}"
        )
    blocks = backbone.transformer_blocks
    if not -len(blocks) <= block_index < len(blocks):
        raise ValueError(
            f"`block_index` must index one of the backbone's {len(blocks)} blocks. Received: "
            f"block_index={block_index}"
        )
    block_index %= len(blocks)
    padding_mask = inputs["padding_mask"]
    x = backbone.token_embedding(inputs["token_ids"])  # (B, T, H)
    x = x + backbone.position_embedding(x)
    x = backbone.segment_embedding(x, inputs.get("segment_ids"))
    x = backbone.embeddings_dropout(backbone.embeddings_norm(x), training=training)
    for block in blocks[:block_index]:
        x = block(x, padding_mask=padding_mask, training=training)
    block = blocks[block_index]
    values = value_heads(block, x)  # (B, N, T, Dv)
    x, weights = block(
        x, padding_mask=padding_mask, training=training, return_attention_scores=True
    )
    return EncoderStates(x, weights, values)


def value_heads(block, inputs):
    """The per-head value vectors that a block's self-attention computes from the block's input.

    Args:
        block: a built `TransformerEncoderBlock`, pre- or post-norm (a pre-norm block's
            attention reads `attention_norm(inputs)`).
        inputs: (B, T, H) tensor, the block's input.

    Returns:
        (B, N, T, Dv) tensor in the block's compute dtype.
    """
    x = inputs
    if block.normalize_first:
        x = block.attention_norm(x)  # pre-norm: the attention reads the normalized input
    attention = block.self_attention
    dtype = attention.compute_dtype
    bias = attention.value_bias
    values = attention._project(
        ops.cast(x, dtype),
        ops.cast(attention.value_kernel, dtype),
        None if bias is None else ops.cast(bias, dtype),
    )  # (B, T, N, Dv)
    return ops.transpose(values, (0, 2, 1, 3))


@keras.saving.register_keras_serializable(package="keras_transformer")
class HiddenProjection(keras.layers.Layer):
    """A learned linear map of the student's hidden states to the teacher's width.

    A `Dense(hidden_dim)` without activation, applied by the caller to the student's
    (B, T, H_student) states before `hidden_mse_loss` or `hidden_cosine_loss` when the student
    is narrower than the teacher. It is trained with the student and thrown away afterwards.

    Args:
        hidden_dim: int. The teacher's width H.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: (B, T, H_student) tensor.

    Returns:
        (B, T, hidden_dim) tensor.

    Example:
    >>> projection = HiddenProjection(teacher.hidden_dim)
    >>> loss = hidden_mse_loss(teacher_h, projection(student_h), padding_mask)
    """

    def __init__(self, hidden_dim, **kwargs):
        if not isinstance(hidden_dim, int) or hidden_dim <= 0:
            raise ValueError(
                f"`hidden_dim` must be a positive integer (the teacher's width). Received: "
                f"hidden_dim={hidden_dim}"
            )
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim

    def build(self, inputs_shape):
        self.dense = keras.layers.Dense(
            self.hidden_dim,
            kernel_initializer=default_initializer(),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.dense.build(inputs_shape)
        self.built = True

    def call(self, inputs):
        return self.dense(inputs)

    def compute_output_shape(self, inputs_shape):
        return (*inputs_shape[:-1], self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}


def _teacher_and_student(teacher, student):
    """float32 tensors; the teacher's without gradient."""
    teacher = ops.stop_gradient(ops.cast(teacher, "float32"))
    return teacher, ops.cast(student, "float32")


def _query_mask(mask, like):
    """The (B, T) float32 mask, all ones when `mask` is None (`like` is a (B, T, ...) tensor)."""
    if mask is None:
        return ops.ones(ops.shape(like)[:2], "float32")
    return ops.cast(mask, "float32")


def _masked_mean(values, weights):
    """Σ w·v / Σ w, and 0 when every weight is 0."""
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), _TINY)


def _check_same(name, teacher, student, axes, advice):
    """Raises `ValueError` if a statically known size on `axes` differs."""
    if len(teacher.shape) != len(student.shape):
        raise ValueError(
            f"{name}: the teacher's and the student's tensors must have the same rank. "
            f"Received: teacher shape {tuple(teacher.shape)}, student shape "
            f"{tuple(student.shape)}."
        )
    for axis in axes:
        t, s = teacher.shape[axis], student.shape[axis]
        if t is not None and s is not None and t != s:
            raise ValueError(
                f"{name}: the teacher's and the student's sizes on axis {axis} must be equal. "
                f"Received: teacher shape {tuple(teacher.shape)}, student shape "
                f"{tuple(student.shape)}. {advice}"
            )


_SAME_POSITIONS = "Teacher and student must read the same batch at the same token positions."
_PROJECT = "Apply a `HiddenProjection(teacher_width)` to the student's states first."


def hidden_cosine_loss(teacher_hidden, student_hidden, padding_mask=None):
    """Mean over real tokens of `1 - cos(h_teacher, h_student)`.

    Args:
        teacher_hidden: (B, T, H) tensor.
        student_hidden: (B, T, H) tensor (projected to the teacher's width if narrower).
        padding_mask: (B, T) bool/int, true at real tokens, or `None` (all real).

    Returns:
        float32 scalar in [0, 2]; 0 when the states point the same way.

    Raises:
        ValueError: if the shapes differ.
    """
    _check_same("hidden_cosine_loss", teacher_hidden, student_hidden, (0, 1), _SAME_POSITIONS)
    _check_same("hidden_cosine_loss", teacher_hidden, student_hidden, (2,), _PROJECT)
    teacher, student = _teacher_and_student(teacher_hidden, student_hidden)
    dot = ops.sum(teacher * student, axis=-1)  # (B, T)
    norms = ops.norm(teacher, axis=-1) * ops.norm(student, axis=-1)
    cosine = dot / ops.maximum(norms, _TINY)
    return _masked_mean(1.0 - cosine, _query_mask(padding_mask, teacher))


def sentence_cosine_loss(teacher_hidden, student_hidden, padding_mask=None):
    """Mean over the batch of `1 - cos(mean(h_teacher), mean(h_student))`, means over real tokens.

    The sentence-embedding term of sentence-transformers' model distillation: the student's
    mean-pooled sentence vector (the vector a mean-pooling sentence encoder such as MiniLM
    serves) should point where the teacher's does, so that the two models' cosine similarities
    between sentences agree. The token-level `hidden_cosine_loss` leaves the tokens' norms free,
    and the norms weigh each token in the mean.

    Args:
        teacher_hidden: (B, T, H) tensor.
        student_hidden: (B, T, H) tensor (projected to the teacher's width if narrower: the
            projection is linear, so pooling first or projecting first gives the same vector).
        padding_mask: (B, T) bool/int, true at real tokens, or `None` (all real).

    Returns:
        float32 scalar in [0, 2]; 0 when every sentence vector points the teacher's way.

    Raises:
        ValueError: if the shapes differ.
    """
    _check_same("sentence_cosine_loss", teacher_hidden, student_hidden, (0, 1), _SAME_POSITIONS)
    _check_same("sentence_cosine_loss", teacher_hidden, student_hidden, (2,), _PROJECT)
    teacher, student = _teacher_and_student(teacher_hidden, student_hidden)
    weights = _query_mask(padding_mask, teacher)[:, :, None]  # (B, T, 1)
    count = ops.maximum(ops.sum(weights, axis=1), 1.0)  # (B, 1)
    teacher = ops.sum(teacher * weights, axis=1) / count  # (B, H)
    student = ops.sum(student * weights, axis=1) / count
    dot = ops.sum(teacher * student, axis=-1)
    norms = ops.norm(teacher, axis=-1) * ops.norm(student, axis=-1)
    return ops.mean(1.0 - dot / ops.maximum(norms, _TINY))


def hidden_mse_loss(teacher_hidden, student_hidden, padding_mask=None):
    """Mean over real tokens of the mean squared difference per feature.

    Args:
        teacher_hidden: (B, T, H) tensor.
        student_hidden: (B, T, H) tensor (projected to the teacher's width if narrower).
        padding_mask: (B, T) bool/int, true at real tokens, or `None` (all real).

    Returns:
        float32 scalar, 0 for equal states.

    Raises:
        ValueError: if the shapes differ.
    """
    _check_same("hidden_mse_loss", teacher_hidden, student_hidden, (0, 1), _SAME_POSITIONS)
    _check_same("hidden_mse_loss", teacher_hidden, student_hidden, (2,), _PROJECT)
    teacher, student = _teacher_and_student(teacher_hidden, student_hidden)
    per_token = ops.mean(ops.square(teacher - student), axis=-1)  # (B, T)
    return _masked_mean(per_token, _query_mask(padding_mask, teacher))


def _row_kl(teacher_probs, student_log_probs, key_mask):
    """KL(teacher || student) of each row (..., T, S) over the real keys: (..., T).

    `key_mask` broadcasts against the rows (1 at real keys).
    """
    teacher_log_probs = ops.log(ops.maximum(teacher_probs, _TINY))
    terms = teacher_probs * (teacher_log_probs - student_log_probs)
    return ops.sum(terms * key_mask, axis=-1)


def _mean_over_heads_and_queries(row_kl, query_mask):
    """(B, N, T) per-head, per-query values into their mean over heads and real queries."""
    return _masked_mean(ops.mean(row_kl, axis=1), query_mask)


def attention_distribution_loss(teacher_weights, student_weights, padding_mask=None):
    """MiniLM's self-attention distribution transfer: KL(teacher || student) per attention row.

    The KL of each head's attention distribution at each real query, over the real keys,
    averaged over heads and real queries. Both models need the same number of heads (head n of
    the student learns head n of the teacher); for different head counts use `relation_loss`
    on the blocks' vectors instead.

    Args:
        teacher_weights: (B, N, T, T) attention weights (rows sum to 1 over real keys).
        student_weights: (B, N, T, T) attention weights.
        padding_mask: (B, T) bool/int, true at real tokens, or `None` (all real).

    Returns:
        float32 scalar ≥ 0; 0 for equal weights.

    Raises:
        ValueError: if the head counts or the sequence shapes differ.
    """
    _check_same(
        "attention_distribution_loss",
        teacher_weights,
        student_weights,
        (1,),
        "Attention distributions can only be matched head by head; for different head "
        "counts use `relation_loss(..., num_relation_heads=...)` on the value vectors.",
    )
    _check_same(
        "attention_distribution_loss", teacher_weights, student_weights, (0, 2, 3), _SAME_POSITIONS
    )
    teacher, student = _teacher_and_student(teacher_weights, student_weights)
    query_mask = _query_mask(padding_mask, teacher[:, 0])  # (B, T)
    key_mask = query_mask[:, None, None, :]  # (B, 1, 1, T)
    student_log_probs = ops.log(ops.maximum(student, _TINY))
    return _mean_over_heads_and_queries(_row_kl(teacher, student_log_probs, key_mask), query_mask)


def _relation_heads(vectors, num_relation_heads, side):
    """(B, T, H) or (B, N, T, D) vectors into (B, R, T, H / R) relation heads.

    4-D vectors are first concatenated head after head (B, T, N·D), as the attention's output
    projection reads them; `num_relation_heads=None` keeps the given heads.
    """
    if len(vectors.shape) not in (3, 4):
        raise ValueError(
            f"relation_loss: the {side}'s vectors must be (B, T, H) or (B, N, T, D). "
            f"Received shape {tuple(vectors.shape)}."
        )
    if num_relation_heads is None:
        if len(vectors.shape) != 4:
            raise ValueError(
                f"relation_loss: with `num_relation_heads=None` the heads are kept as given, so "
                f"the vectors must be (B, N, T, D); the {side}'s are "
                f"{tuple(vectors.shape)}. Pass `num_relation_heads`."
            )
        return vectors
    if len(vectors.shape) == 4:
        vectors = ops.transpose(vectors, (0, 2, 1, 3))  # (B, T, N, D)
        shape = ops.shape(vectors)
        vectors = ops.reshape(vectors, (shape[0], shape[1], vectors.shape[2] * vectors.shape[3]))
    width = vectors.shape[-1]
    if width % num_relation_heads:
        raise ValueError(
            f"relation_loss: `num_relation_heads` must divide the {side}'s width. Received: "
            f"num_relation_heads={num_relation_heads}, width {width} "
            f"({width} % {num_relation_heads} = {width % num_relation_heads}). Pick a divisor "
            "of both widths."
        )
    shape = ops.shape(vectors)
    vectors = ops.reshape(
        vectors, (shape[0], shape[1], num_relation_heads, width // num_relation_heads)
    )
    return ops.transpose(vectors, (0, 2, 1, 3))  # (B, R, T, H / R)


def _relation_log_probs(heads, key_mask):
    """log softmax(X Xᵀ / √d) over the real keys, per head: (B, R, T, T)."""
    scores = ops.einsum("brtd,brsd->brts", heads, heads) / math.sqrt(heads.shape[-1])
    scores = ops.where(key_mask > 0, scores, -1e9)
    return ops.log_softmax(scores, axis=-1)


def relation_loss(teacher_vectors, student_vectors, padding_mask=None, num_relation_heads=None):
    """MiniLM's self-attention relation transfer: KL of `softmax(X Xᵀ / √d)`, teacher || student.

    Each side's vectors are split into relation heads; per head the scaled dot products of
    every real query token with every real key token are turned into a distribution over the
    keys (d is that side's relation head size). The loss is KL(teacher || student) per head and
    real query, averaged over heads and real queries. Because the relations are T × T, the
    teacher and the student may have different widths and head counts (MiniLM-v2's relation
    heads): only the number of relation heads must be common.

    Args:
        teacher_vectors: (B, T, H_t) or (B, N_t, T, D_t) tensor, e.g. the value vectors of a
            teacher block (`EncoderStates.values`).
        student_vectors: (B, T, H_s) or (B, N_s, T, D_s) tensor.
        padding_mask: (B, T) bool/int, true at real tokens, or `None` (all real).
        num_relation_heads: int or None. Regroup each side's vectors (4-D ones concatenated
            head after head) into this many heads; it must divide both widths. `None` keeps
            the given heads (MiniLM-v1): both sides 4-D with the same head count. Defaults to
            `None`.

    Returns:
        float32 scalar ≥ 0; 0 when both sides' relations are equal.

    Raises:
        ValueError: if the batch or the positions differ, `num_relation_heads` does not divide
            a width, or with `num_relation_heads=None` the head counts differ.
    """
    if num_relation_heads is not None and (
        not isinstance(num_relation_heads, int) or num_relation_heads <= 0
    ):
        raise ValueError(
            "`num_relation_heads` must be a positive integer or None. Received: "
            f"num_relation_heads={num_relation_heads}"
        )
    teacher, student = _teacher_and_student(teacher_vectors, student_vectors)
    teacher = _relation_heads(teacher, num_relation_heads, "teacher")
    student = _relation_heads(student, num_relation_heads, "student")
    _check_same("relation_loss", teacher, student, (0, 2), _SAME_POSITIONS)
    _check_same(
        "relation_loss",
        teacher,
        student,
        (1,),
        "With `num_relation_heads=None` both sides keep their heads; pass `num_relation_heads` "
        "(a divisor of both widths) to regroup them.",
    )
    query_mask = _query_mask(padding_mask, teacher[:, 0])  # (B, T)
    key_mask = query_mask[:, None, None, :]  # (B, 1, 1, T)
    teacher_probs = ops.exp(_relation_log_probs(teacher, key_mask))
    student_log_probs = _relation_log_probs(student, key_mask)
    row_kl = _row_kl(teacher_probs, student_log_probs, key_mask)  # (B, R, T)
    return _mean_over_heads_and_queries(row_kl, query_mask)


def value_relation_loss(teacher_values, student_values, padding_mask=None, num_relation_heads=None):
    """MiniLM's value-relation transfer: `relation_loss` on the blocks' value vectors.

    Args:
        teacher_values: (B, N_t, T, D_t) value vectors (`EncoderStates.values`).
        student_values: (B, N_s, T, D_s) value vectors.
        padding_mask: (B, T) bool/int, true at real tokens, or `None` (all real).
        num_relation_heads: int or None. See `relation_loss`; `None` (MiniLM-v1) needs equal
            head counts. Defaults to `None`.

    Returns:
        float32 scalar ≥ 0.

    Raises:
        ValueError: as `relation_loss`.
    """
    return relation_loss(teacher_values, student_values, padding_mask, num_relation_heads)


def masked_lm_soft_target_loss(
    teacher_logits, student_logits, temperature=1.0, weights=None, kept_ids=None
):
    """Soft targets of a teacher's masked-LM head: T² · KL(softmax(z_t / T) || softmax(z_s / T)).

    The KL at each masked position, averaged with `weights` (the masked-LM sample weights:
    0 at padded mask positions). The T² factor keeps the gradient's scale independent of the
    temperature (Hinton et al.).

    A student whose vocabulary was pruned to a subset of the teacher's passes `kept_ids`:
    student id i is teacher id `kept_ids[i]`. The teacher's logits are gathered to those ids,
    so its distribution is renormalised over the kept tokens (the probability it gives the
    pruned tokens is dropped).

    Args:
        teacher_logits: (B, P, V_t) logits at the masked positions.
        student_logits: (B, P, V_s) logits at the same positions.
        temperature: float > 0. Defaults to `1.0`.
        weights: (B, P) weights, or `None` (all 1).
        kept_ids: (V_s,) int teacher ids of the student's vocabulary, or `None` (the same
            vocabulary: V_t == V_s).

    Returns:
        float32 scalar ≥ 0; 0 for equal logits.

    Raises:
        ValueError: if `temperature` is not positive, the vocabularies differ without
            `kept_ids`, or the shapes differ.
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be positive. Received: temperature={temperature}")
    if kept_ids is not None:
        kept_ids = ops.convert_to_tensor(kept_ids, "int32")
        vocabulary = student_logits.shape[-1]
        if None not in (kept_ids.shape[-1], vocabulary) and kept_ids.shape[-1] != vocabulary:
            raise ValueError(
                "`kept_ids` must give one teacher id per student token. Received: "
                f"{kept_ids.shape[-1]} ids for a student vocabulary of {vocabulary}."
            )
        teacher_logits = ops.take(teacher_logits, kept_ids, axis=-1)
    _check_same(
        "masked_lm_soft_target_loss",
        teacher_logits,
        student_logits,
        (-1,),
        "The vocabularies differ: pass `kept_ids`, the teacher id of each student token.",
    )
    _check_same(
        "masked_lm_soft_target_loss", teacher_logits, student_logits, (0, 1), _SAME_POSITIONS
    )
    teacher, student = _teacher_and_student(teacher_logits, student_logits)
    teacher_log_probs = ops.log_softmax(teacher / temperature, axis=-1)
    student_log_probs = ops.log_softmax(student / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    weights = _query_mask(weights, teacher)  # (B, P)
    return temperature**2 * _masked_mean(kl, weights)


@dataclasses.dataclass(frozen=True)
class GeneralDistillationLoss:
    """A weighted sum of the general-distillation terms; a weight of 0 turns a term off.

    Call arguments:
        teacher: `EncoderStates` of the teacher (`encoder_states(teacher_backbone, ...)`).
        student: `EncoderStates` of the student.
        padding_mask: (B, T) bool/int, true at real tokens.
        projection: callable or None. Applied to the student's hidden states before the two
            hidden terms, e.g. a `HiddenProjection` for a narrower student. Defaults to `None`.
        teacher_logits, student_logits: (B, P, V) masked-LM logits, needed only when
            `masked_lm` is not 0.
        mask_weights: (B, P) masked-LM sample weights, or `None`.

    Returns:
        `(total, terms)`: the float32 weighted sum and a dict of each active term's
        unweighted float32 value under its field name (for logging).

    Attributes:
        hidden_cosine: float. Weight of `hidden_cosine_loss`. Defaults to `0.0`.
        hidden_mse: float. Weight of `hidden_mse_loss`. Defaults to `0.0`.
        attention: float. Weight of `attention_distribution_loss`. Defaults to `1.0`.
        value_relation: float. Weight of `value_relation_loss`. Defaults to `1.0`.
        masked_lm: float. Weight of `masked_lm_soft_target_loss`. Defaults to `0.0`.
        temperature: float. Of the masked-LM term. Defaults to `1.0`.
        num_relation_heads: int or None. Of the value-relation term. Defaults to `None`.
        kept_ids: sequence of int or None. Of the masked-LM term. Defaults to `None`.

    The defaults are MiniLM's: attention distributions and value relations of the last block.

    Example:
    >>> loss = GeneralDistillationLoss(attention=1.0, value_relation=1.0)
    >>> teacher = encoder_states(teacher_backbone, batch)
    >>> student = encoder_states(student_backbone, batch, training=True)
    >>> total, terms = loss(teacher, student, batch["padding_mask"])
    """

    hidden_cosine: float = 0.0
    hidden_mse: float = 0.0
    attention: float = 1.0
    value_relation: float = 1.0
    masked_lm: float = 0.0
    temperature: float = 1.0
    num_relation_heads: int | None = None
    kept_ids: tuple | None = None

    TERMS = ("hidden_cosine", "hidden_mse", "attention", "value_relation", "masked_lm")

    def __post_init__(self):
        weights = {name: getattr(self, name) for name in self.TERMS}
        negative = {name: w for name, w in weights.items() if w < 0}
        if negative:
            raise ValueError(f"Loss weights must be ≥ 0. Received: {negative}")
        if not any(weights.values()):
            raise ValueError(f"At least one loss weight must be positive. Received: {weights}")

    def __call__(
        self,
        teacher,
        student,
        padding_mask,
        projection=None,
        teacher_logits=None,
        student_logits=None,
        mask_weights=None,
    ):
        terms = {}
        student_hidden = student.sequence_output
        if projection is not None and (self.hidden_cosine or self.hidden_mse):
            student_hidden = projection(student_hidden)
        if self.hidden_cosine:
            terms["hidden_cosine"] = hidden_cosine_loss(
                teacher.sequence_output, student_hidden, padding_mask
            )
        if self.hidden_mse:
            terms["hidden_mse"] = hidden_mse_loss(
                teacher.sequence_output, student_hidden, padding_mask
            )
        if self.attention:
            terms["attention"] = attention_distribution_loss(
                teacher.attention_weights, student.attention_weights, padding_mask
            )
        if self.value_relation:
            terms["value_relation"] = value_relation_loss(
                teacher.values, student.values, padding_mask, self.num_relation_heads
            )
        if self.masked_lm:
            if teacher_logits is None or student_logits is None:
                raise ValueError(
                    "The masked-LM term (masked_lm > 0) needs `teacher_logits` and "
                    "`student_logits`; pass them or set `masked_lm=0.0`."
                )
            terms["masked_lm"] = masked_lm_soft_target_loss(
                teacher_logits,
                student_logits,
                self.temperature,
                mask_weights,
                None if self.kept_ids is None else list(self.kept_ids),
            )
        total = sum(getattr(self, name) * value for name, value in terms.items())
        return total, terms
