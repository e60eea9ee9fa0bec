"""distill: DistilBERT-style knowledge distillation of a classifier into a smaller student.

The teacher (a classifier run, frozen) labels every training batch with its soft
probabilities; the student (half the teacher's blocks by default, initialised from every other
teacher block, plus the teacher's embeddings and head) learns from

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
           + (1 - alpha) * cross_entropy(labels, student)
           [+ cosine_weight * (1 - cos(teacher pooled vector, student pooled vector))]

Reports the student's accuracy and speed against the teacher's.
"""

import dataclasses
import math
import typing

import keras
import tensorflow as tf
from keras import ops

from keras_transformer.layers.pooling import pool
from keras_transformer.models import BertBackbone, BertClassifier
from keras_transformer.training.compilation import resolve_jit_compile
from workflows import classify
from workflows.config import setting


@dataclasses.dataclass(frozen=True)
class Config(classify.ClassifierConfig):
    workflow: typing.ClassVar[str] = "distill"

    init_from: str = setting("", "the teacher: a classifier run folder (required)")
    student_layers: int | None = setting(None, "student blocks (default: half the teacher's)")
    student_hidden_dim: int | None = setting(None, "student width (default: the teacher's)")
    alpha: float = setting(0.5, "weight of the soft-target loss")
    temperature: float = setting(2.0, "softmax temperature T of the soft targets")
    cosine_weight: float = setting(0.0, "weight of the pooled-vector cosine loss (same width)")
    initialize_from_teacher: bool = setting(True, "copy every other teacher block")
    learning_rate: float = setting(1e-4, "peak learning rate (AdamW)")
    epochs: int = setting(4, "training epochs")

    def unused_settings(self):
        # The student takes its pooling and head dropout from the teacher.
        return (*super().unused_settings(), "pooling", "dropout")


class Distiller(keras.Model):
    """Trains `student` against a frozen `teacher` with the distillation loss."""

    def __init__(self, teacher, student, alpha, temperature, cosine_weight, **kwargs):
        super().__init__(**kwargs)
        self.teacher = teacher
        self.student = student
        self.alpha = alpha
        self.temperature = temperature
        self.cosine_weight = cosine_weight
        teacher.trainable = False
        self.built = True  # both models are built; nothing of its own to create

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def trainable_weights(self):
        # The student's own list: it leaves out a pooler its pooling never reads (Keras would
        # otherwise warn every step that the pooler gets no gradient).
        return self.student.trainable_weights

    @property
    def trainable_variables(self):
        return self.student.trainable_variables

    @property
    def non_trainable_weights(self):
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def non_trainable_variables(self):
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trainable]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        t = self.temperature
        teacher_logits = ops.cast(self.teacher(x, training=False), "float32")
        student_logits = ops.cast(y_pred, "float32")
        teacher_probabilities = ops.softmax(teacher_logits / t, axis=-1)
        kl = ops.sum(
            teacher_probabilities
            * (
                ops.log_softmax(teacher_logits / t, axis=-1)
                - ops.log_softmax(student_logits / t, axis=-1)
            ),
            axis=-1,
        )
        hard = keras.losses.sparse_categorical_crossentropy(y, student_logits, from_logits=True)
        per_example = self.alpha * t * t * kl + (1.0 - self.alpha) * hard
        if self.cosine_weight:  # the vectors each classifier pools (its `pooling`)
            mask = x["padding_mask"]
            teacher_outputs = self.teacher.backbone(x, training=False)
            teacher_vector = pool(teacher_outputs, mask, self.teacher.pooling)
            student_outputs = self.student.backbone(x, training=training)
            student_vector = pool(student_outputs, mask, self.student.pooling)
            cosine = ops.sum(
                ops.normalize(ops.cast(teacher_vector, "float32"), axis=-1)
                * ops.normalize(ops.cast(student_vector, "float32"), axis=-1),
                axis=-1,
            )
            per_example = per_example + self.cosine_weight * (1.0 - cosine)
        return ops.sum(per_example) / global_batch_size(per_example, self.jit_compile)


def global_batch_size(per_example, jit_compile=False):
    """The denominator that makes each replica's loss its share of the global-batch mean.

    Keras's convention, which the training loop relies on: the replicas' gradients are summed,
    so each replica returns `sum over its rows / rows of the whole global batch`, and their sum
    is the mean over the global batch, as one process takes it, even when a last batch splits
    unevenly (1 + 2 rows). One replica: its row count, the plain mean. Under `jit_compile` each
    replica's step is a nested XLA function, where no all-reduce can run (`merge_call` fails):
    there it is Keras's own reduction, the local rows times the replicas, exact when the rows
    split evenly. (The training loop multiplies the logged loss by the replicas again.)
    """
    rows = ops.cast(ops.shape(per_example)[0], "float32")
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    context = tf.distribute.get_replica_context()
    if replicas == 1 or context is None:
        return ops.maximum(rows, 1.0)
    if jit_compile:
        return ops.maximum(rows, 1.0) * replicas
    # A replica may hold no rows of a small last batch; the global batch holds some.
    return ops.maximum(context.all_reduce(tf.distribute.ReduceOp.SUM, rows), 1.0)


def initialize_from(student, teacher):
    """Copies the embeddings, embedding norm, pooler and every other block of `teacher` (a
    `BertBackbone` of the same vocabulary and width) into the `student` backbone."""
    for name in (
        "token_embedding",
        "position_embedding",
        "segment_embedding",
        "embeddings_norm",
        "pooler",
    ):
        getattr(student, name).set_weights(getattr(teacher, name).get_weights())
    step = teacher.num_layers / student.num_layers
    for i, block in enumerate(student.transformer_blocks):
        block.set_weights(teacher.transformer_blocks[int(i * step)].get_weights())


def build_student(teacher, config):
    """The student classifier; with the teacher's width, initialised from every other block."""
    teacher_backbone = teacher.backbone
    layers = config.student_layers or max(1, teacher_backbone.num_layers // 2)
    width = config.student_hidden_dim or teacher_backbone.hidden_dim
    if layers > teacher_backbone.num_layers:
        raise ValueError(
            f"The student ({layers} blocks) must not be deeper than its teacher "
            f"({teacher_backbone.num_layers})."
        )
    if width != teacher_backbone.hidden_dim and (
        config.cosine_weight or config.initialize_from_teacher and config.student_hidden_dim
    ):
        raise ValueError(
            f"A student of width {width} cannot copy or match the teacher's width "
            f"{teacher_backbone.hidden_dim} vectors without a projection, which this workflow "
            "does not add: keep the teacher's width, or set --no-initialize-from-teacher and "
            "--cosine-weight 0."
        )
    arguments = teacher_backbone.get_config()
    arguments.pop("name", None)
    arguments["num_layers"] = layers
    if width != teacher_backbone.hidden_dim:
        ratio = width / teacher_backbone.hidden_dim
        arguments.update(
            hidden_dim=width,
            intermediate_dim=int(teacher_backbone.intermediate_dim * ratio),
            num_heads=max(1, int(teacher_backbone.num_heads * ratio)),
        )
    backbone = BertBackbone.from_config(arguments)
    student = BertClassifier(
        backbone,
        num_classes=teacher.num_classes,
        pooling=teacher.pooling,
        dropout=teacher.dropout,
        hidden_dim=teacher.hidden_dim,
    )
    if config.initialize_from_teacher and width == teacher_backbone.hidden_dim:
        initialize_from(backbone, teacher_backbone)
        student.classification_head.set_weights(teacher.classification_head.get_weights())
    return student


def run(config):
    """Distils; returns a `ClassifierResult` with the student's and the teacher's metrics."""
    if not config.init_from:
        raise ValueError("distill needs a teacher: --init-from <a classifier run folder>.")
    place, splits = classify.prepare(config, "distill")
    with place.setting_up():
        base = classify.load_base(config.init_from)
        if base.classifier is None:
            raise ValueError(
                f"--init-from {config.init_from!r} is not a classifier run; the teacher must "
                "be a trained classifier (a transfer or finetune run)."
            )
        teacher = base.classifier
        student = build_student(teacher, config)
        distiller = Distiller(
            teacher, student, config.alpha, config.temperature, config.cosine_weight
        )
        distiller.compile(
            optimizer=classify.classifier_optimizer(
                config, math.ceil(len(splits.train) / config.batch_size)
            ),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=resolve_jit_compile(config.jit_compile),
        )
    train_ds, validation_ds, test_ds = classify.datasets(config, splits, base, config.batch_size)
    teacher_weights = [w.numpy() for w in teacher.weights[:2]]
    classify.train(distiller, config, train_ds, validation_ds, place)
    for before, after in zip(teacher_weights, teacher.weights[:2], strict=True):
        if not (before == after.numpy()).all():
            raise RuntimeError("The teacher's weights changed during distillation.")
    with place.strategy.scope():
        student.compile()
        teacher.compile()
    metrics = classify.evaluate(student, test_ds, validation_ds, place.strategy)
    teacher_metrics = classify.evaluate(teacher, test_ds, strategy=place.strategy)
    metrics.update(
        {
            "teacher_test_accuracy": teacher_metrics["test_accuracy"],
            "teacher_examples_per_second": teacher_metrics["examples_per_second"],
            "teacher_parameters": int(teacher.count_params()),
            "accuracy_kept": metrics["test_accuracy"] / teacher_metrics["test_accuracy"],
            "speedup": metrics["examples_per_second"] / teacher_metrics["examples_per_second"],
            "student_layers": student.backbone.num_layers,
        }
    )
    return classify.finish(
        student,
        classify.make_preprocessor(config, base),
        splits.label_names,
        place,
        metrics,
        f"distilled from {base.description}",
    )
