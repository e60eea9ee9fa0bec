"""compress: general (task-agnostic) distillation of a BERT-family encoder, before any task.

DistilBERT's and MiniLM's recipe: a frozen teacher encoder (the pretrained MiniLM by default,
or any BERT-family base: a Hugging Face folder, one of our pretrain or classifier runs) teaches
a smaller student on unlabelled text, once; the student is then a base like any other
(`transfer`, `finetune`, `as-is`, `export` take its run folder as `--init-from` / `--run`).

The student is smaller in every dimension that matters:
- depth: `--student-layers` blocks (default half the teacher's), initialised from every other
  teacher block;
- width (optional): `--student-hidden-dim` narrower than the teacher; a learned projection
  maps its last hidden states to the teacher's width for the hidden-state losses;
- vocabulary (`--prune-vocabulary`, on by default): the WordPiece vocabulary is cut to the
  pieces the distillation corpus uses, the special tokens and every single character (so an
  unseen word still splits into kept pieces), the kept embedding rows are copied, and the
  run's tokenizer is the pruned one: raw text works end to end.

The loss, each term weighted by a setting (0 turns it off), is taken on the last block (the
masked-LM term on the heads' logits):

    cosine_weight * (1 - cos(h_teacher, W h_student))     over real tokens
    + mse_weight * |h_teacher - W h_student|^2 / H        over real tokens
    + sentence_weight * (1 - cos(mean h_teacher, mean W h_student))   mean-pooled, per text
    + attention_weight * KL(A_teacher || A_student)       self-attention, per head and query
    + value_weight * KL(VR_teacher || VR_student)         value relations softmax(V Vᵀ/√d)
    + masked_lm_weight * T² KL(P_teacher || P_student)    masked-LM soft targets softmax(z/T)
                                                          at the masked positions

(`keras_transformer.training.distillation`; padding is ignored everywhere).

Masked-LM soft targets (DistilBERT's main term) need a teacher with a masked-LM head: a
`pretrain --objective masked` run. `--masked-lm-weight` left unset means "on (1.0) when the
teacher has a head, off otherwise", so a pretrain-run teacher gets DistilBERT's recipe and
MiniLM (no head) MiniLM's; asking for it (> 0) of a teacher without a head is refused before
training. With the term on, the student gets a `BertMaskedLM` head too (the teacher's head
copied when the widths match and `--initialize-from-teacher`, its output bias cut to the kept
vocabulary), and every batch is masked as in pretraining (`--mask-rate`, 80/10/10, drawn from
the student's vocabulary): teacher and student read the same corrupted passages for every
term, and the teacher's logits at the masked positions are gathered to the student's kept ids
(both distributions over the same vocabulary) and softened by `--temperature`.

    python -m workflows compress                       # MiniLM -> 3 blocks, pruned vocabulary
    python -m workflows compress --steps 200 --student-layers 2 --corpus my_texts/

Outputs (in --output-dir, default runs/compress-<time>/): config.json, model.keras (the
student BertBackbone: the base `transfer` / `finetune` / `export` read), tokenizer.json and
preprocessor.json (the pruned tokenizer), vocab.txt, base.json (its pooling), masked_lm.keras
(when the masked-LM term was on: the student's `BertMaskedLM`, the same backbone with its
head, for fill-mask), metrics.json (sizes, losses, the masked-LM weight used, agreement of the
student's sentence similarities with the teacher's), history.json, train_loss.json,
tensorboard/. A killed run resumes from its last evaluation when started again with the same
--output-dir.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_transformer import training
from keras_transformer.data import pipelines
from keras_transformer.layers.pooling import pool
from keras_transformer.models import BertBackbone, BertMaskedLM
from keras_transformer.preprocessing import (
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
    save_preprocessor,
)
from keras_transformer.text import WordPieceTokenizer, save_vocabulary
from keras_transformer.text.io import save_tokenizer
from keras_transformer.text.vocabulary_pruning import (
    prune_backbone,
    prune_masked_lm,
    prune_vocabulary,
)
from keras_transformer.training import distillation
from keras_transformer.training.compilation import resolve_jit_compile
from workflows import classify, pretrain
from workflows.config import (
    jit_compile_setting,
    precision_setting,
    setting,
    write_json_atomic,
)
from workflows.distill import initialize_from
from workflows.training import fit, make_optimizer, save_model_atomic, start, write_history

LOSS_TERMS = ("cosine", "mse", "sentence", "attention", "value", "masked_lm")
# MiniLM's reference pairs (its model card): the first pair is the more similar one.
REFERENCE_PAIRS = (
    ("A man is eating food.", "A man is eating a piece of bread."),
    ("A man is riding a horse.", "A man is riding a white horse on an enclosed ground."),
)


@dataclasses.dataclass(frozen=True)
class Config:
    init_from: str = setting(
        "minilm",
        "the teacher: 'minilm', a Hugging Face BERT folder, or a pretrain / classifier run",
    )
    corpus: str = setting(
        "shakespeare+movie_sentiment",
        "unlabelled text: built-in 'shakespeare', 'movie_sentiment', "
        "'shakespeare+movie_sentiment', or a text file or folder",
    )
    student_layers: int | None = setting(None, "student blocks (default: half the teacher's)")
    student_hidden_dim: int | None = setting(
        None, "student width (default: the teacher's; narrower adds a learned projection)"
    )
    student_num_heads: int | None = setting(
        None, "student attention heads (default: the teacher's, scaled with the width)"
    )
    initialize_from_teacher: bool = setting(
        True, "copy the embeddings and every other teacher block (same width only)"
    )
    prune_vocabulary: bool = setting(
        True, "keep only the pieces the corpus uses, the special tokens and single characters"
    )
    cosine_weight: float = setting(1.0, "weight of the last hidden states' cosine loss")
    mse_weight: float = setting(0.0, "weight of the last hidden states' mean squared error")
    attention_weight: float = setting(
        1.0, "weight of the last self-attention distributions' KL (equal head counts)"
    )
    value_weight: float = setting(1.0, "weight of the last block's value-relation KL")
    sentence_weight: float = setting(
        1.0,
        "weight of the mean-pooled sentence vectors' cosine loss (what a mean-pooling sentence "
        "encoder serves; sentence-transformers' distillation term)",
    )
    masked_lm_weight: float | None = setting(
        None,
        "weight of the masked-LM soft targets (DistilBERT's main term); unset: 1.0 when the "
        "teacher has a masked-LM head (a masked pretrain run), else 0; > 0 needs such a teacher",
    )
    temperature: float = setting(2.0, "softmax temperature of the masked-LM soft targets")
    mask_rate: float = setting(
        0.15, "share of tokens masked (80/10/10) when the masked-LM term is on"
    )
    relation_heads: int = setting(0, "heads of the value relations (0: the teacher's head count)")
    sequence_length: int = setting(128, "tokens per passage, [CLS] and [SEP] included")
    batch_size: int = setting(32, "global batch size (split across replicas)")
    steps: int = setting(1500, "training steps")
    max_seconds: float = setting(0.0, "stop training after this many seconds (0: no limit)")
    learning_rate: float = setting(5e-4, "peak learning rate (AdamW)")
    warmup_steps: int = setting(100, "linear warm-up steps before cosine decay")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    clip_norm: float = setting(1.0, "global gradient-norm clipping (0: none)")
    dropout: float = setting(0.0, "the student's dropout while it learns")
    eval_interval: int = setting(250, "steps between evaluations (and resumable checkpoints)")
    eval_batches: int = setting(10, "validation batches per evaluation")
    log_interval: int = setting(10, "steps between TensorBoard training-loss points")
    similarity_pairs: int = setting(
        1000, "validation sentence pairs of the teacher-student similarity agreement"
    )
    mixed_precision: str = precision_setting()
    jit_compile: str = jit_compile_setting()
    strategy: str = setting(
        "auto", "tf.distribute strategy: auto, cpu, one_device, mirrored, multi_worker, tpu"
    )
    seed: int = setting(0, "random seed")
    output_dir: str | None = setting(None, "output folder (reuse one to resume)")
    verbose: int = setting(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line")


@dataclasses.dataclass(frozen=True)
class Result:
    run_dir: str
    model_path: str
    tokenizer_path: str
    steps: int
    seconds: float
    metrics: dict


class GeneralDistiller(keras.Model):
    """Trains `student` (a `BertBackbone`) to match a frozen `teacher`'s last block.

    Batches are the teacher's inputs (`token_ids` in the teacher's vocabulary); with a pruned
    student vocabulary, `student_ids` maps every teacher id to the student's (ids the corpus
    never used map to the student's `[UNK]`).

    With a `"masked_lm"` weight, `teacher_masked_lm` and `student_masked_lm` are the
    `BertMaskedLM`s on `teacher` and `student` (the same backbone objects); batches then also
    hold `mask_positions` (B, P) and `mask_weights` (B, P), and `kept_ids` (the teacher id of
    each student token, or `None` for the same vocabulary) restricts the teacher's logits to
    the student's vocabulary.
    """

    def __init__(
        self,
        teacher,
        student,
        weights,
        relation_heads,
        student_ids=None,
        teacher_masked_lm=None,
        student_masked_lm=None,
        temperature=1.0,
        kept_ids=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.teacher = teacher
        self.student = student
        self.loss_weights = {term: 0.0 for term in LOSS_TERMS} | dict(weights)
        self.relation_heads = relation_heads
        teacher.trainable = False
        self.student_ids = None if student_ids is None else tf.constant(student_ids, tf.int32)
        self.projection = None
        if student.hidden_dim != teacher.hidden_dim:
            self.projection = distillation.HiddenProjection(teacher.hidden_dim, name="projection")
            self.projection.build((None, None, student.hidden_dim))
        self.teacher_masked_lm = self.student_masked_lm = None
        self.temperature = temperature
        self.kept_ids = None if kept_ids is None else tf.constant(kept_ids, tf.int32)
        if self.loss_weights["masked_lm"]:
            if teacher_masked_lm is None or student_masked_lm is None:
                raise ValueError(
                    "The masked-LM term needs `teacher_masked_lm` and `student_masked_lm`."
                )
            if teacher_masked_lm.backbone is not teacher or student_masked_lm.backbone is not (
                student
            ):
                raise ValueError(
                    "`teacher_masked_lm` and `student_masked_lm` must be built on `teacher` "
                    "and `student` themselves."
                )
            teacher_masked_lm.trainable = False
            self.teacher_masked_lm = teacher_masked_lm
            self.student_masked_lm = student_masked_lm
        self.term_trackers = [keras.metrics.Mean(name=f"{term}_loss") for term in LOSS_TERMS]
        self.built = True

    def student_inputs(self, inputs):
        if self.student_ids is None:
            return inputs
        return {**inputs, "token_ids": tf.gather(self.student_ids, inputs["token_ids"])}

    def call(self, inputs, training=None):
        return distillation.encoder_states(
            self.student, self.student_inputs(inputs), training=training
        )

    @property
    def trainable_weights(self):
        # The student's own list without its pooler (no loss reads it), its masked-LM head's
        # own weights (the output projection is the student's tied token embedding), and the
        # projection.
        pooler = {id(v) for v in self.student.pooler.weights}
        weights = [v for v in self.student.trainable_weights if id(v) not in pooler]
        if self.student_masked_lm is not None:
            seen = {id(v) for v in weights}
            head = self.student_masked_lm.masked_lm_head.trainable_weights
            weights += [v for v in head if id(v) not in seen]
        return weights + (self.projection.trainable_weights if self.projection else [])

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_weights(self):
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    def masked_lm_logits(self, inputs, teacher_states, student_states):
        """The teacher's and the student's (B, P, V) logits at `inputs["mask_positions"]`."""
        positions = inputs["mask_positions"]
        teacher_head = self.teacher_masked_lm.masked_lm_head
        student_head = self.student_masked_lm.masked_lm_head
        return (
            teacher_head(teacher_states.sequence_output, positions),
            student_head(student_states.sequence_output, positions),
        )

    def terms(self, inputs, student_states, training=False):
        """`{term: scalar loss}` of every term with a non-zero weight."""
        mask = inputs["padding_mask"]
        teacher_states = distillation.encoder_states(self.teacher, inputs, training=False)
        teacher_hidden = teacher_states.sequence_output
        student_hidden = student_states.sequence_output
        if self.projection is not None:
            student_hidden = self.projection(student_hidden)
        weights = self.loss_weights
        terms = {}
        if weights["cosine"]:
            terms["cosine"] = distillation.hidden_cosine_loss(teacher_hidden, student_hidden, mask)
        if weights["mse"]:
            terms["mse"] = distillation.hidden_mse_loss(teacher_hidden, student_hidden, mask)
        if weights["sentence"]:
            terms["sentence"] = distillation.sentence_cosine_loss(
                teacher_hidden, student_hidden, mask
            )
        if weights["attention"]:
            terms["attention"] = distillation.attention_distribution_loss(
                teacher_states.attention_weights, student_states.attention_weights, mask
            )
        if weights["value"]:
            terms["value"] = distillation.value_relation_loss(
                teacher_states.values, student_states.values, mask, self.relation_heads
            )
        if weights["masked_lm"]:
            teacher_logits, student_logits = self.masked_lm_logits(
                inputs, teacher_states, student_states
            )
            terms["masked_lm"] = distillation.masked_lm_soft_target_loss(
                teacher_logits,
                student_logits,
                self.temperature,
                inputs["mask_weights"],
                self.kept_ids,
            )
        return terms

    def replica_shares(self, inputs, terms):
        """`{term: R * n / N}`: this replica's share of each term's global-batch denominator.

        Every term is a mean over this replica's rows: over its real tokens, its masked
        positions (masked-LM) or its texts (sentence). Weighted by its share (the number n of
        this replica's tokens, positions or texts over the number N in the whole global batch,
        times the R replicas), the replicas' average is the mean over the global batch, as one
        process takes it, however the padding falls on each replica. 1 on one replica, and 1
        under `jit_compile`: each replica's step is then a nested XLA function where no
        all-reduce can run (`merge_call` fails), so the shares are Keras's own rule, exact when
        every replica holds as many real tokens (as `distill.global_batch_size` does).
        """
        context = tf.distribute.get_replica_context()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if context is None or replicas == 1 or self.jit_compile:
            return {term: 1.0 for term in terms}
        tokens = ops.sum(ops.cast(inputs["padding_mask"], "float32"))
        positions = (
            ops.sum(ops.cast(inputs["mask_weights"], "float32")) if "masked_lm" in terms else tokens
        )
        local = ops.stack([tokens, positions])
        totals = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        shares = replicas * local / ops.maximum(totals, 1e-9)
        return {
            term: 1.0 if term == "sentence" else shares[1] if term == "masked_lm" else shares[0]
            for term in terms
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.terms(x, y_pred, training=training)
        shares = self.replica_shares(x, terms)
        total = ops.convert_to_tensor(0.0, "float32")
        for tracker, term in zip(self.term_trackers, LOSS_TERMS, strict=True):
            if term in terms:
                value = terms[term] * shares[term]
                tracker.update_state(value)
                total = total + self.loss_weights[term] * value
        # Keras's convention, which the training loop relies on: each replica's loss is divided
        # by the number of replicas, so that their summed gradients are those of the mean over
        # the global batch (2 workers train as one process; the logged loss is unscaled again).
        return total / tf.distribute.get_strategy().num_replicas_in_sync

    @property
    def metrics(self):
        return [*super().metrics, *self.term_trackers]


def build_student(teacher, config, vocabulary_size):
    """A `BertBackbone` student; with the teacher's width, initialised from every other block."""
    layers = config.student_layers or max(1, teacher.num_layers // 2)
    width = config.student_hidden_dim or teacher.hidden_dim
    if layers > teacher.num_layers:
        raise ValueError(
            f"The student ({layers} blocks) must not be deeper than its teacher "
            f"({teacher.num_layers}): lower --student-layers."
        )
    if width > teacher.hidden_dim:
        raise ValueError(
            f"A student wider than its teacher ({width} > {teacher.hidden_dim}) would not be "
            "smaller: lower --student-hidden-dim."
        )
    heads = config.student_num_heads or max(1, teacher.num_heads * width // teacher.hidden_dim)
    if width % heads:
        raise ValueError(
            f"--student-hidden-dim {width} is not divisible by {heads} heads: give "
            "--student-num-heads that divides it."
        )
    if config.attention_weight and heads != teacher.num_heads:
        raise ValueError(
            f"The attention-distribution loss compares heads one to one, but the student has "
            f"{heads} heads and the teacher {teacher.num_heads}: give --student-num-heads "
            f"{teacher.num_heads}, or --attention-weight 0 (the value relations work with any "
            "head count)."
        )
    arguments = teacher.get_config()
    for key in ("name", "trainable", "dtype"):
        arguments.pop(key, None)
    arguments.update(
        vocabulary_size=vocabulary_size,
        num_layers=layers,
        hidden_dim=width,
        num_heads=heads,
        intermediate_dim=int(teacher.intermediate_dim * width / teacher.hidden_dim),
        dropout=config.dropout,
    )
    student = BertBackbone(**arguments)
    return student, layers, width


def build_student_masked_lm(student, teacher_masked_lm, copy_head, pruned=None):
    """The student's `BertMaskedLM` and its backbone, in the student's vocabulary.

    A `BertMaskedLM` on `student` (still in the teacher's vocabulary); with `copy_head` (same
    width) its head's own weights (transform, norm, output bias) are the teacher's, the output
    projection being the student's tied token embedding. With `pruned`, the model is cut to
    the kept vocabulary (`prune_masked_lm`: kept embedding rows and output-bias entries).
    """
    model = BertMaskedLM(student)
    if copy_head:

        def own_weights(masked_lm):
            tied = id(masked_lm.backbone.token_embedding.embeddings)
            return [w for w in masked_lm.masked_lm_head.weights if id(w) != tied]

        for source, target in zip(own_weights(teacher_masked_lm), own_weights(model), strict=True):
            target.assign(source.numpy())
    if pruned is not None:
        model = prune_masked_lm(model, pruned)
    return model, model.backbone


def resolve_masked_lm_weight(config, base):
    """`--masked-lm-weight`, unset: 1.0 with a teacher's masked-LM head, else 0.

    Raises:
        ValueError: if it is > 0 and the teacher has no masked-LM head.
    """
    if config.masked_lm_weight is None:
        return 1.0 if base.masked_lm is not None else 0.0
    if config.masked_lm_weight > 0 and base.masked_lm is None:
        raise ValueError(
            f"--masked-lm-weight {config.masked_lm_weight} needs a teacher with a masked-LM "
            f"head (a `pretrain --objective masked` run), but {base.description} has none: "
            "give --masked-lm-weight 0 or leave it unset."
        )
    return float(config.masked_lm_weight)


def passages(texts, sequence_length):
    """Texts cut at line breaks into passages of about `sequence_length` WordPiece tokens."""
    return pretrain.split_passages(texts, max_chars=4 * (sequence_length - 2))


def make_dataset(texts, preprocessor, batch_size, seed, training):
    dataset = tf.data.Dataset.from_tensor_slices(texts)
    if training:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_masked_dataset(texts, preprocessor, batch_size, training, teacher_ids=None):
    """Masked batches (80/10/10, as in pretraining) in the teacher's ids.

    `preprocessor` is a `MaskedLMPreprocessor` of the student's tokenizer (its random tokens
    are then student tokens) whose `seed` fixes every batch's masks: the same passages give the
    same batches. `teacher_ids` (the teacher id of each student id; `None`: same vocabulary)
    maps the corrupted ids back to the teacher's vocabulary, as `GeneralDistiller` expects.
    Each batch is the inputs dict plus `mask_weights` (B, P).
    """
    dataset = tf.data.Dataset.from_tensor_slices(texts)
    if training:
        dataset = dataset.shuffle(
            len(texts), seed=preprocessor.seed, reshuffle_each_iteration=True
        ).repeat()
    dataset = pipelines.masked_lm_dataset(
        dataset, preprocessor, None, batch_size, drop_remainder=True
    )
    ids = None if teacher_ids is None else tf.constant(teacher_ids, tf.int32)

    def to_teacher(x, mask_ids, mask_weights):
        token_ids = x["token_ids"] if ids is None else tf.gather(ids, x["token_ids"])
        return {**x, "token_ids": token_ids, "mask_weights": mask_weights}

    return dataset.map(to_teacher, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def sentences(texts, limit, seed):
    """Up to `limit` distinct lines of 4 to 40 words from `texts`, in a seeded order."""
    seen = []
    unique = set()
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if 4 <= len(line.split()) <= 40 and line not in unique:
                unique.add(line)
                seen.append(line)
    order = np.random.default_rng(seed).permutation(len(seen))
    return [seen[i] for i in order[:limit]]


def embed(backbone, preprocessor, texts, pooling, batch_size=64):
    """L2-normalised pooled sentence vectors (N, H) as float32 NumPy."""
    vectors = []
    for start_index in range(0, len(texts), batch_size):
        x = preprocessor(tf.constant(texts[start_index : start_index + batch_size]))
        outputs = backbone(x, training=False)
        pooled = pool(outputs, x["padding_mask"], pooling)
        vectors.append(ops.convert_to_numpy(ops.normalize(ops.cast(pooled, "float32"), axis=-1)))
    return np.concatenate(vectors)


def spearman(a, b):
    """Spearman's rank correlation of two 1-D arrays (average ranks for ties)."""

    def ranks(values):
        values = np.asarray(values, np.float64)
        order = np.argsort(values, kind="stable")
        result = np.empty(len(values))
        result[order] = np.arange(len(values))
        for value in np.unique(values):  # ties share their average rank
            tied = values == value
            result[tied] = result[tied].mean()
        return result

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def similarity_agreement(teacher, teacher_text, student, student_text, pooling, texts, pairs, seed):
    """How well the student's sentence similarities follow the teacher's.

    Returns `{"similarity_spearman": rho over `pairs` random pairs of sentences of `texts`,
    "reference_pairs": [(teacher cos, student cos)], "reference_order_kept": bool}`.
    """
    lines = sentences(texts, 2 * pairs, seed)
    if len(lines) < 4:
        raise ValueError(
            "The validation text has fewer than 4 sentences of 4-40 words: the similarity "
            "agreement needs more text."
        )
    rng = np.random.default_rng(seed + 1)
    first = rng.integers(0, len(lines), pairs)
    second = (first + rng.integers(1, len(lines), pairs)) % len(lines)
    references = [text for pair in REFERENCE_PAIRS for text in pair]
    teacher_vectors = embed(teacher, teacher_text, lines + references, pooling)
    student_vectors = embed(student, student_text, lines + references, pooling)

    def cosines(vectors):
        sampled = np.sum(vectors[first] * vectors[second], axis=-1)
        ref = vectors[len(lines) :]
        return sampled, [float(ref[2 * i] @ ref[2 * i + 1]) for i in range(len(REFERENCE_PAIRS))]

    teacher_sampled, teacher_ref = cosines(teacher_vectors)
    student_sampled, student_ref = cosines(student_vectors)
    return {
        "similarity_spearman": spearman(teacher_sampled, student_sampled),
        "similarity_pairs": int(pairs),
        "reference_pairs": [
            {"texts": list(pair), "teacher_cosine": t, "student_cosine": s}
            for pair, t, s in zip(REFERENCE_PAIRS, teacher_ref, student_ref, strict=True)
        ],
        "reference_order_kept": bool(
            (teacher_ref[0] > teacher_ref[1]) == (student_ref[0] > student_ref[1])
        ),
    }


def check_config(config):
    for name in ("steps", "batch_size", "sequence_length", "eval_interval", "eval_batches"):
        if getattr(config, name) <= 0:
            raise ValueError(
                f"--{name.replace('_', '-')} must be positive; got {getattr(config, name)}."
            )
    # An unset --masked-lm-weight only adds the soft targets to the other terms (when the
    # teacher has a head): a soft-target-only run asks for it explicitly.
    weights = [getattr(config, f"{term}_weight") or 0.0 for term in LOSS_TERMS]
    if any(w < 0 for w in weights) or not any(weights):
        raise ValueError(
            "The loss weights (--cosine-weight, --mse-weight, --sentence-weight, "
            "--attention-weight, --value-weight, --masked-lm-weight) must be >= 0 and at least "
            "one must be positive (an unset --masked-lm-weight does not count: give it "
            "explicitly for masked-LM soft targets alone)."
        )
    if not config.temperature > 0:
        raise ValueError(f"--temperature must be positive; got {config.temperature}.")
    if not 0 < config.mask_rate < 1:
        raise ValueError(f"--mask-rate must be between 0 and 1; got {config.mask_rate}.")
    if config.student_layers is not None and config.student_layers < 1:
        raise ValueError(f"--student-layers must be at least 1; got {config.student_layers}.")


def file_size_mb(path):
    return os.path.getsize(path) / 1e6


def run(config):
    """Distils the teacher into a general student; returns a `Result`."""
    check_config(config)
    train_texts, validation_texts = pretrain.load_corpus(config.corpus, config.seed)
    train_passages = passages(train_texts, config.sequence_length)
    validation_passages = passages(validation_texts, config.sequence_length)
    if len(train_passages) < config.batch_size or len(validation_passages) < config.batch_size:
        raise ValueError(
            f"The corpus {config.corpus!r} makes {len(train_passages)} training and "
            f"{len(validation_passages)} validation passages, fewer than one batch of "
            f"{config.batch_size} each: give more text or a smaller --batch-size."
        )
    place = start(config, "compress")
    with place.setting_up():
        base = classify.load_base(config.init_from)
        teacher = base.backbone
        if not isinstance(base.tokenizer, WordPieceTokenizer):
            raise ValueError(
                f"The teacher {config.init_from!r} has a {type(base.tokenizer).__name__}; "
                "compress distils WordPiece (BERT-family) encoders."
            )
        masked_lm_weight = resolve_masked_lm_weight(config, base)
        teacher_text = ClassifierPreprocessor(base.tokenizer, config.sequence_length)
        student_ids = kept_ids = pruned = None
        tokenizer = base.tokenizer
        vocabulary_size = teacher.vocabulary_size
        if config.prune_vocabulary:
            pruned = prune_vocabulary(base.tokenizer, train_texts + validation_texts)
            tokenizer = pruned.tokenizer()
            vocabulary_size = len(pruned.vocabulary)
            # Teacher ids the corpus never used (none of the corpus's own) map to [UNK].
            unk = tokenizer.oov_token_id
            student_ids = np.where(pruned.old_to_new < 0, unk, pruned.old_to_new).astype("int32")
            kept_ids = pruned.kept_ids.astype("int32")
        student, layers, width = build_student(teacher, config, teacher.vocabulary_size)
        copy_from_teacher = config.initialize_from_teacher and width == teacher.hidden_dim
        if copy_from_teacher:
            initialize_from(student, teacher)
        student_masked_lm = None
        if masked_lm_weight:
            student_masked_lm, student = build_student_masked_lm(
                student, base.masked_lm, copy_from_teacher, pruned
            )
        elif pruned is not None:
            student = prune_backbone(student, pruned)
        relation_heads = config.relation_heads or teacher.num_heads
        weights = {term: getattr(config, f"{term}_weight") for term in LOSS_TERMS}
        weights["masked_lm"] = masked_lm_weight
        distiller = GeneralDistiller(
            teacher,
            student,
            weights,
            relation_heads,
            student_ids,
            teacher_masked_lm=base.masked_lm if masked_lm_weight else None,
            student_masked_lm=student_masked_lm,
            temperature=config.temperature,
            kept_ids=kept_ids,
        )
        distiller.compile(
            optimizer=make_optimizer(
                config.learning_rate,
                config.steps,
                config.warmup_steps,
                config.weight_decay,
                config.clip_norm,
            ),
            jit_compile=resolve_jit_compile(config.jit_compile),
        )
    student_text = ClassifierPreprocessor(tokenizer, config.sequence_length)
    print(
        f"[compress] teacher {base.description}: {teacher.count_params():,} parameters, "
        f"{teacher.num_layers} blocks x {teacher.hidden_dim}, vocabulary "
        f"{teacher.vocabulary_size:,}; student {student.count_params():,} parameters, {layers} "
        f"blocks x {width}, vocabulary {vocabulary_size:,}; {len(train_passages):,} passages"
        + (
            f"; masked-LM soft targets (weight {masked_lm_weight:g}, temperature "
            f"{config.temperature:g})"
            if masked_lm_weight
            else ""
        ),
        flush=True,
    )
    if masked_lm_weight:
        masker = MaskedLMPreprocessor(
            tokenizer,
            config.sequence_length,
            mask_selection_rate=config.mask_rate,
            seed=config.seed,
        )
        train_ds = make_masked_dataset(train_passages, masker, config.batch_size, True, kept_ids)
        validation_ds = make_masked_dataset(
            validation_passages, masker, config.batch_size, False, kept_ids
        )
    else:
        train_ds = make_dataset(train_passages, teacher_text, config.batch_size, config.seed, True)
        validation_ds = make_dataset(
            validation_passages, teacher_text, config.batch_size, config.seed, False
        )
    validation_ds = pretrain.with_known_cardinality(validation_ds.take(config.eval_batches).cache())
    teacher_weights = (base.masked_lm if masked_lm_weight else teacher).weights
    teacher_before = [w.numpy().copy() for w in teacher_weights]
    start_time = time.monotonic()
    history = fit(
        distiller,
        train_ds,
        config,
        place,
        epochs=math.ceil(config.steps / config.eval_interval),
        steps_per_epoch=config.eval_interval,
        validation_data=validation_ds,
        total_steps=config.steps,
        throughput=("tokens", config.batch_size * config.sequence_length),
    )
    seconds = time.monotonic() - start_time
    for before, after in zip(teacher_before, teacher_weights, strict=True):
        if not np.array_equal(before, after.numpy()):
            raise RuntimeError("The teacher's weights changed during distillation.")
    history = write_history(history, place.run_dir, place.chief)
    steps_done = int(distiller.optimizer.iterations.numpy())
    evaluation = training.evaluate(distiller, validation_ds, strategy=place.strategy)
    agreement = similarity_agreement(
        teacher,
        teacher_text,
        student,
        student_text,
        base.pooling,
        validation_texts,
        config.similarity_pairs,
        config.seed,
    )
    metrics = {
        "teacher": base.description,
        "teacher_parameters": int(teacher.count_params()),
        "student_parameters": int(student.count_params()),
        "parameters_saved": 1.0 - student.count_params() / teacher.count_params(),
        "teacher_layers": teacher.num_layers,
        "student_layers": layers,
        "teacher_hidden_dim": teacher.hidden_dim,
        "student_hidden_dim": width,
        "teacher_vocabulary_size": teacher.vocabulary_size,
        "student_vocabulary_size": vocabulary_size,
        "pooling": base.pooling,
        "masked_lm_weight": masked_lm_weight,
        "distillation_seconds": seconds,
        "validation_loss": float(evaluation["loss"]),
        **{
            f"validation_{term}_loss": float(evaluation.get(f"{term}_loss", 0.0))
            for term in LOSS_TERMS
        },
        **agreement,
    }
    model_path = os.path.join(place.run_dir, "model.keras")
    tokenizer_path = os.path.join(place.run_dir, "tokenizer.json")
    if place.chief:
        save_tokenizer(tokenizer, tokenizer_path)
        save_preprocessor(student_text, os.path.join(place.run_dir, "preprocessor.json"))
        save_vocabulary(tokenizer.vocabulary, os.path.join(place.run_dir, "vocab.txt"))
        write_json_atomic(os.path.join(place.run_dir, "base.json"), {"pooling": base.pooling})
        save_model_atomic(student, model_path)
        metrics["student_file_mb"] = file_size_mb(model_path)
        if student_masked_lm is not None:
            masked_lm_path = os.path.join(place.run_dir, "masked_lm.keras")
            save_model_atomic(student_masked_lm, masked_lm_path)
            metrics["student_masked_lm_file_mb"] = file_size_mb(masked_lm_path)
        write_json_atomic(os.path.join(place.run_dir, "metrics.json"), metrics)
    print(
        f"[compress] done: {steps_done} steps in {seconds:.0f} s; student "
        f"{metrics['student_parameters']:,} parameters ({metrics['parameters_saved']:.0%} fewer "
        f"than the teacher's {metrics['teacher_parameters']:,}); similarity Spearman "
        f"{agreement['similarity_spearman']:.3f} over {config.similarity_pairs} pairs; reference "
        f"order {'kept' if agreement['reference_order_kept'] else 'NOT kept'}",
        flush=True,
    )
    return Result(place.run_dir, model_path, tokenizer_path, steps_done, seconds, metrics)
