"""The training step XLA-compiles (`jit_compile=True`) on this CPU and gives the uncompiled
loss and gradients; `check_jit_compile` lowers a step to HLO and names an op XLA cannot compile.

Loss and gradients come from one function run as a plain and as an XLA `tf.function`, same
weights and batch, dropout 0 (deterministic). Families covered here: GPT causal LM, BERT
masked LM, Seq2Seq (sparse loss, and the label-smoothed one-hot loss of workflows/seq2seq.py).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
    Seq2SeqBackbone,
    Seq2SeqTransformer,
)
from keras_transformer.training.compilation import check_jit_compile
from workflows.distill import Distiller

SIZE = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}


@pytest.fixture(scope="module")
def gpt_case():
    keras.utils.set_random_seed(0)
    backbone = GPTBackbone(vocabulary_size=61, max_sequence_length=16, dropout=0.0, **SIZE)
    model = GPTCausalLM(backbone)
    model.compile()
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 61, (4, 16)).astype("int32")
    mask = np.arange(16)[None, :] < np.array([[16], [9], [12], [5]])
    x = {"token_ids": tf.constant(ids), "padding_mask": tf.constant(mask)}
    y = tf.constant(np.roll(ids, -1, axis=1))
    return model, (x, y, tf.constant(mask.astype("float32")))


def bert_case():
    keras.utils.set_random_seed(0)
    backbone = BertBackbone(vocabulary_size=61, max_sequence_length=16, dropout=0.0, **SIZE)
    model = BertMaskedLM(backbone)
    model.compile()
    rng = np.random.default_rng(1)
    x = {
        "token_ids": tf.constant(rng.integers(1, 61, (4, 16)).astype("int32")),
        "padding_mask": tf.ones((4, 16), "int32"),
        "mask_positions": tf.constant(rng.integers(0, 16, (4, 3)).astype("int32")),
    }
    y = tf.constant(rng.integers(1, 61, (4, 3)).astype("int32"))
    return model, (x, y, tf.constant([[1.0, 1.0, 0.0]] * 4))


def seq2seq_case(label_smoothing):
    keras.utils.set_random_seed(0)
    backbone = Seq2SeqBackbone(vocabulary_size=61, max_sequence_length=16, dropout=0.0, **SIZE)
    model = Seq2SeqTransformer(backbone)
    rng = np.random.default_rng(2)
    target = rng.integers(1, 61, (4, 10)).astype("int32")
    weights = (np.arange(10)[None, :] < np.array([[10], [6], [8], [3]])).astype("float32")
    x = {
        "encoder_token_ids": tf.constant(rng.integers(1, 61, (4, 12)).astype("int32")),
        "encoder_padding_mask": tf.constant(
            np.arange(12)[None, :] < np.array([[12], [7], [9], [4]])
        ),
        "decoder_token_ids": tf.constant(
            np.pad(target[:, :-1], ((0, 0), (1, 0)), constant_values=1)
        ),
        "decoder_padding_mask": tf.constant(weights > 0),
    }
    if label_smoothing:  # as workflows/seq2seq.compile_model: one-hot labels, smoothed
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
        model.compile(optimizer="adamw", loss=loss)
        y = tf.one_hot(target, 61)
    else:
        model.compile()
        y = tf.constant(target)
    return model, (x, y, tf.constant(weights))


def classifier_case(freeze_backbone):
    model = classifier(0, freeze_backbone)
    model.compile()
    x, y = classifier_batch()
    return model, ({name: tf.constant(value) for name, value in x.items()}, tf.constant(y), None)


FAMILIES = {
    "bert_masked_lm": bert_case,
    "classifier_transfer": lambda: classifier_case(True),
    "classifier_finetune": lambda: classifier_case(False),
    "seq2seq": lambda: seq2seq_case(False),
    "seq2seq_label_smoothed": lambda: seq2seq_case(True),
}


def loss_and_gradients(model):
    def step(x, y, sample_weight):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=logits, sample_weight=sample_weight)
        return loss, tape.gradient(loss, model.trainable_variables)

    return step


def assert_compiled_step_equals_uncompiled(name, model, batch):
    """Loss and gradients of one step, XLA-compiled (proved by its HLO) and not, within 1e-5."""
    step = loss_and_gradients(model)
    xla = tf.function(step, jit_compile=True)
    assert "HloModule" in xla.experimental_get_compiler_ir(*batch)(stage="hlo")
    loss, grads = tf.function(step)(*batch)
    xla_loss, xla_grads = xla(*batch)
    loss_diff = abs(float(loss) - float(xla_loss))
    grad_diff = max(
        float(tf.reduce_max(tf.abs(tf.convert_to_tensor(a) - tf.convert_to_tensor(b))))
        for a, b in zip(grads, xla_grads, strict=True)
    )
    print(
        f"{name}: loss {float(loss):.6f}, max |Δloss| {loss_diff:.1e}, "
        f"max |Δgrad| {grad_diff:.1e} over {len(grads)} variables"
    )
    assert loss_diff < 1e-5
    assert grad_diff < 1e-5


def test_gpt_loss_and_gradients_compiled_equal_uncompiled(gpt_case):
    assert_compiled_step_equals_uncompiled("GPT causal LM", *gpt_case)


def test_check_jit_compile_lowers_a_good_train_step(gpt_case):
    model, batch = gpt_case
    before = [w.numpy().copy() for w in model.trainable_variables]
    hlo = check_jit_compile(model, batch)
    assert hlo.startswith("HloModule")
    after = [w.numpy() for w in model.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), "it ran the step"


class StringHash(keras.layers.Layer):
    """Counts the digits of each value as text: a string op, which XLA has no kernel for."""

    def call(self, inputs):
        text = tf.strings.as_string(inputs)
        return inputs + tf.cast(tf.strings.length(text), inputs.dtype)


def test_check_jit_compile_names_the_op_xla_cannot_compile():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, StringHash()(keras.layers.Dense(2)(inputs)), name="strings")
    model.compile(optimizer="sgd", loss="mse")
    batch = (tf.ones((2, 3)), tf.zeros((2, 2)))
    with pytest.raises(
        ValueError, match=r"no XLA kernel for op AsString\. Run with --jit-compile off"
    ):
        check_jit_compile(model, batch)


def test_check_jit_compile_on_a_callable():
    assert "HloModule" in check_jit_compile(lambda x: x * 2.0, tf.ones((2,)))
    with pytest.raises(ValueError, match="AsString"):
        check_jit_compile(lambda x: tf.strings.as_string(x), tf.ones((2,)))


def test_check_jit_compile_needs_a_compiled_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Call model.compile"):
        check_jit_compile(model, (tf.ones((2, 3)), tf.zeros((2, 2))))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_and_gradients_compiled_equal_uncompiled(family):
    assert_compiled_step_equals_uncompiled(family, *FAMILIES[family]())


def gpt_fit_case():
    keras.utils.set_random_seed(0)
    backbone = GPTBackbone(vocabulary_size=61, max_sequence_length=16, dropout=0.0, **SIZE)
    model = GPTCausalLM(backbone)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 61, (4, 16)).astype("int32")
    mask = np.arange(16)[None, :] < np.array([[16], [9], [12], [5]])
    x = {"token_ids": ids, "padding_mask": mask}
    return model, {}, (x, np.roll(ids, -1, axis=1), mask.astype("float32"))


def classifier(seed, freeze_backbone):
    keras.utils.set_random_seed(seed)
    backbone = BertBackbone(vocabulary_size=61, max_sequence_length=16, dropout=0.0, **SIZE)
    return BertClassifier(
        backbone, num_classes=3, pooling="mean", dropout=0.0, freeze_backbone=freeze_backbone
    )


def classifier_batch():
    rng = np.random.default_rng(3)
    x = {
        "token_ids": rng.integers(1, 61, (4, 16)).astype("int32"),
        "padding_mask": (np.arange(16)[None, :] < np.array([[16], [9], [12], [5]])).astype("int32"),
    }
    return x, np.array([0, 2, 1, 2], "int32")


FIT_FAMILIES = {
    "gpt_causal_lm": gpt_fit_case,
    "classifier_transfer": lambda: (classifier(0, True), {}, classifier_batch()),
    "classifier_finetune": lambda: (classifier(0, False), {}, classifier_batch()),
    "distillation": lambda: (
        Distiller(classifier(1, False), classifier(2, False), 0.5, 2.0, 0.1),
        {"optimizer": "adamw"},
        classifier_batch(),
    ),
}


@pytest.mark.slow  # about 13 s a family here
@pytest.mark.parametrize("family", sorted(FIT_FAMILIES))
def test_fit_step_compiled_ends_at_the_uncompiled_weights(family):
    """One `fit` step with `compile(jit_compile=True)` and False from equal weights.

    Tolerance 1e-6: the gradients agree within about 1e-7 (see above) and one AdamW step
    moves each weight by about the learning rate times sign(gradient), so equal weights
    within 1e-6 hold unless a gradient's sign flips at a value near 0 (then the move differs
    by up to 2 x lr = 2e-3 here): that is what the tolerance would catch.
    """
    ends = {}
    for jit_compile in (False, True):
        model, compile_args, batch = FIT_FAMILIES[family]()
        if not compile_args and hasattr(model, "LEARNING_RATE"):
            model.compile(jit_compile=jit_compile)
        else:
            model.compile(jit_compile=jit_compile, **compile_args)
        assert model.jit_compile is jit_compile
        start = [w.numpy().copy() for w in model.trainable_variables]
        x, y, *weights = batch
        sample_weight = weights[0] if weights else None
        model.fit(x, y, sample_weight=sample_weight, batch_size=4, verbose=0, shuffle=False)
        ends[jit_compile] = [w.numpy() for w in model.trainable_variables]
        moved = max(np.abs(a - b).max() for a, b in zip(start, ends[jit_compile], strict=True))
        assert moved > 1e-5, "the fit step did not train"
    difference = max(np.abs(a - b).max() for a, b in zip(*ends.values(), strict=True))
    print(f"{family} fit step: max |Δweight| compiled vs uncompiled {difference:.1e}")
    assert difference < 1e-6
