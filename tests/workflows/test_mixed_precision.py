"""mixed_bfloat16: the classifier, the seq2seq model and `pretrain --mixed-precision`.

Under the policy, variables stay float32 (the optimizer updates them in full precision) and
the layers compute in bfloat16; `BertClassifier` promises float32 logits, while
`LanguageModelHead` computes its logits in the compute dtype.
"""

import json

import keras
import numpy as np
import pytest

from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    Seq2SeqBackbone,
    Seq2SeqTransformer,
)
from workflows import pretrain

RNG = np.random.default_rng(11)


def dtype_of(tensor):
    return keras.backend.standardize_dtype(tensor.dtype)


def dtypes(model):
    return {str(w.dtype) for w in model.weights}


def fit_one_step(model, x, y, **kwargs):
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.fit(x, y, epochs=1, batch_size=len(y), verbose=0, **kwargs).history["loss"][0]
    changed = [
        not np.array_equal(b, np.array(a))
        for b, a in zip(before, model.trainable_weights, strict=True)
    ]
    return loss, changed


def test_bert_classifier_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    backbone = BertBackbone(
        vocabulary_size=50,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
        dropout=0.1,
    )
    model = BertClassifier(backbone, num_classes=3, pooling="cls")
    assert backbone.transformer_blocks[0].compute_dtype == "bfloat16"
    mask = np.arange(8)[None, :] < np.array([8, 5, 3, 6])[:, None]
    x = {
        "token_ids": np.where(mask, RNG.integers(1, 50, (4, 8)), 0).astype("int32"),
        "padding_mask": mask.astype("int32"),
    }
    assert dtype_of(backbone(x)["sequence_output"]) == "bfloat16"
    assert dtype_of(model(x)) == "float32"  # promised: float32 logits
    loss, changed = fit_one_step(model, x, np.array([0, 1, 2, 1]))
    assert np.isfinite(loss) and loss > 0
    assert all(changed)
    assert dtypes(model) == {"float32"}
    assert str(model.predict(x, verbose=0).dtype) == "float32"


def test_seq2seq_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = Seq2SeqTransformer(
        Seq2SeqBackbone(
            vocabulary_size=30,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            intermediate_dim=32,
            max_sequence_length=16,
            dropout=0.1,
        )
    )
    source = RNG.integers(3, 30, (4, 6))
    x = {
        "encoder_token_ids": source,
        "encoder_padding_mask": np.ones_like(source),
        "decoder_token_ids": np.concatenate([np.ones((4, 1), int), source[:, :-1]], axis=1),
        "decoder_padding_mask": np.ones_like(source),
    }
    logits = model(x)
    # The tied head computes in the compute dtype (documented by `LanguageModelHead`).
    assert dtype_of(logits) == "bfloat16" and logits.shape == (4, 6, 30)
    loss, changed = fit_one_step(model, x, source)
    assert np.isfinite(loss) and loss > 0
    assert all(changed)
    assert dtypes(model) == {"float32"}
    out = model.generate(x, start_token=1, max_new_tokens=4)
    assert out["token_ids"].shape == (4, 5) and (out["token_ids"][:, 0] == 1).all()


def tiny_pretrain(corpus, output_dir, **settings):
    """A pretrain config of one 16-wide block on `corpus`, for a few steps."""
    defaults = {
        "objective": "causal",
        "tokens": "char",
        "num_layers": 1,
        "hidden_dim": 16,
        "num_heads": 2,
        "intermediate_dim": 32,
        "sequence_length": 16,
        "batch_size": 4,
        "eval_interval": 2,
        "eval_batches": 1,
        "warmup_steps": 1,
        "verbose": 0,
    }
    return pretrain.Config(
        **{**defaults, **settings}, corpus=str(corpus), output_dir=str(output_dir)
    )


@pytest.mark.parametrize(
    ("objective", "precision"),
    [("causal", "bfloat16"), ("masked", "bfloat16"), ("causal", "float16")],
)
def test_pretrain_mixed_precision(objective, precision, tmp_path):
    corpus = tmp_path / "corpus.txt"
    lines = [f"the cat sat on mat {i % 7} and the dog ran to the cat {i % 5}" for i in range(300)]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    keras.config.set_dtype_policy("bfloat16")  # not the default: it must be restored, not reset
    result = pretrain.run(
        tiny_pretrain(
            corpus,
            tmp_path / "run",
            objective=objective,
            tokens="char" if objective == "causal" else "wordpiece",
            vocabulary_size=60,
            steps=4,
            mixed_precision=precision,
            num_samples=1,
            sample_length=5,
            prompt="the",
        )
    )
    assert keras.config.dtype_policy().name == "bfloat16"
    keras.config.set_dtype_policy("float32")
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    assert np.isfinite(result.metrics["validation_loss"])
    assert result.steps == 4
    model = keras.saving.load_model(result.model_path)
    block = model.backbone.transformer_blocks[0]
    assert block.dtype_policy.name == f"mixed_{precision}"  # trained and saved under it
    assert dtypes(model) == {"float32"}
    x = {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
    if objective == "masked":
        x["mask_positions"] = np.array([[1, 2], [3, 4]], "int32")
    outputs = np.asarray(keras.ops.cast(model(x), "float32"))
    assert np.isfinite(outputs).all()
    if objective == "causal":
        assert result.samples and result.samples[0].startswith("the")


@pytest.mark.parametrize(("setting", "expected"), [("on", True), ("off", False), ("auto", False)])
def test_pretrain_jit_compile_setting_reaches_compile(setting, expected, tmp_path, monkeypatch):
    # `auto` is off here: this machine has no GPU.
    seen = []
    original = keras.Model.compile

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("jit_compile"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", spy)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"to be or not to be {i % 9}" for i in range(200)), "utf-8")
    result = pretrain.run(
        tiny_pretrain(corpus, tmp_path / "run", steps=2, jit_compile=setting, num_samples=0)
    )
    assert seen and seen[0] is expected
    assert np.isfinite(result.metrics["validation_loss"])


@pytest.mark.parametrize("workflow", ["pretrain", "seq2seq", "transfer"])
def test_bfloat16_on_a_pre_ampere_gpu_fails_before_training(
    workflow, monkeypatch, tmp_path, capsys
):
    # One faked Volta GPU: the check runs in `start`, before any data or model.
    import tensorflow as tf

    from workflows.__main__ import main

    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else real(kind)
    )
    details = {"device_name": "Tesla V100-SXM2-16GB", "compute_capability": (7, 0)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details)
    output_dir = tmp_path / "run"
    argv = [workflow, "--mixed-precision", "bfloat16", "--output-dir", str(output_dir)]
    if workflow == "transfer":
        argv += ["--init-from", str(tmp_path / "no-base")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "compute capability 8.0" in error[0] and "float16" in error[0]
    assert "Tesla V100" in error[0]
    assert not (output_dir / "model.keras").exists()


class Stringify(keras.layers.Layer):
    """A layer XLA cannot compile (`AsString` has no XLA kernel)."""

    def call(self, x):
        import tensorflow as tf

        return x + 0.0 * tf.strings.to_number(tf.strings.as_string(x))


def test_jit_compile_on_fails_before_training_for_a_step_xla_cannot_compile(tmp_path):
    import dataclasses

    import tensorflow as tf

    from workflows import training

    @dataclasses.dataclass(frozen=True)
    class Settings:
        batch_size: int = 4
        max_seconds: float = 0.0
        verbose: int = 0

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(Stringify()(inputs)), name="strings")
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    data = tf.data.Dataset.from_tensor_slices((RNG.normal(size=(8, 3)), np.zeros((8, 1))))
    before = [w.numpy().copy() for w in model.weights]
    place = training.RunPlace(tf.distribute.get_strategy(), str(tmp_path), chief=True)
    with pytest.raises(ValueError, match="no XLA kernel for op AsString.*--jit-compile off"):
        training.fit(model, data.batch(4), Settings(), place, epochs=1)
    assert all((b == a.numpy()).all() for b, a in zip(before, model.weights, strict=True))
    assert not (tmp_path / "history.json").exists() and not (tmp_path / "backup").exists()
