import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from workflows import pretrain

CORPUS = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
) * 40


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return str(path)


def tiny(corpus, output_dir, **kwargs):
    settings = {
        "corpus": corpus,
        "num_layers": 1,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "sequence_length": 32,
        "batch_size": 8,
        "steps": 30,
        "eval_interval": 10,
        "eval_batches": 2,
        "learning_rate": 3e-3,
        "warmup_steps": 2,
        "dropout": 0.0,
        "output_dir": str(output_dir),
        "num_samples": 1,
        "sample_length": 10,
        "prompt": "To be",
        "verbose": 0,
        **kwargs,
    }
    return pretrain.Config(**settings)


def test_char_causal_pretraining_lowers_loss_and_writes_outputs(corpus_file, tmp_path):
    result = pretrain.run(tiny(corpus_file, tmp_path / "run"))
    assert result.steps == 30
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    for name in ("config.json", "model.keras", "tokenizer.json", "metrics.json", "samples.txt"):
        assert os.path.exists(tmp_path / "run" / name), name
    assert result.samples[0].startswith("To be")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 30


def test_pretraining_with_attention_in_chunks_learns_what_plain_attention_learns(
    corpus_file, tmp_path, monkeypatch
):
    from keras_transformer.layers import multi_head_attention

    plain = pretrain.run(tiny(corpus_file, tmp_path / "plain", steps=20))
    traced = []  # the training graph really takes the chunked path (its length is static)
    original = multi_head_attention.chunked_attention
    monkeypatch.setattr(
        multi_head_attention,
        "chunked_attention",
        lambda *args: traced.append(args[0].shape) or original(*args),
    )
    chunked = pretrain.run(
        tiny(corpus_file, tmp_path / "chunked", steps=20, attention_chunk_size=8)
    )
    losses = [
        json.loads((tmp_path / name / "history.json").read_text())["loss"]
        for name in ("plain", "chunked")
    ]
    assert any(tuple(shape[:2]) == (8, 32) for shape in traced), traced  # batch 8 x 32
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    assert chunked.metrics["validation_loss"] == pytest.approx(
        plain.metrics["validation_loss"], rel=1e-4
    )
    model = keras.saving.load_model(tmp_path / "chunked" / "model.keras")
    assert model.backbone.attention_chunk_size == 8
    assert model.backbone.transformer_blocks[0].self_attention.attention_chunk_size == 8


def test_wordpiece_masked_pretraining(corpus_file, tmp_path):
    result = pretrain.run(
        tiny(
            corpus_file,
            tmp_path / "run",
            objective="masked",
            tokens="wordpiece",
            vocabulary_size=200,
            learning_rate=1e-2,
            batch_size=4,
        )
    )
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    # The final evaluation is the last epoch's validation pass again (same weights, same data).
    assert result.metrics["validation_accuracy"] == pytest.approx(
        history["val_accuracy"][-1], rel=1e-5
    )
    assert result.samples == []


def test_bad_config_fails_before_training(corpus_file, tmp_path):
    with pytest.raises(ValueError, match="--tokens wordpiece"):
        pretrain.run(tiny(corpus_file, tmp_path / "a", objective="masked", tokens="char"))
    with pytest.raises(FileNotFoundError, match="neither a built-in corpus"):
        pretrain.run(tiny(str(tmp_path / "missing.txt"), tmp_path / "b"))
    with pytest.raises(ValueError, match="Unknown strategy"):
        pretrain.run(tiny(corpus_file, tmp_path / "c", strategy="gpu-cluster"))
    with pytest.raises(ValueError, match="attention_chunk_size"):
        pretrain.run(tiny(corpus_file, tmp_path / "d", attention_chunk_size=-8))
    assert not os.path.exists(tmp_path / "a" / "model.keras")


def test_command_line_help_and_unknown_setting(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-m", "workflows", "pretrain", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0 and "--sequence-length" in out.stdout
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"stepz": 3}))
    out = subprocess.run(
        [sys.executable, "-m", "workflows", "pretrain", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2 and "Unknown settings for Config: ['stepz']" in out.stderr


def test_killed_run_resumes_from_its_last_evaluation(corpus_file, tmp_path):
    import json as _json
    import signal
    import time

    run_dir = tmp_path / "run"
    config = tiny(corpus_file, run_dir, steps=400, eval_interval=10, num_samples=0)
    settings = tmp_path / "settings.json"
    settings.write_text(_json.dumps(dataclasses_asdict(config)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        [sys.executable, "-m", "workflows", "pretrain", "--config", str(settings)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if checkpointed_epochs(run_dir / "backup") >= 2:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    done_epochs = checkpointed_epochs(run_dir / "backup")
    assert not (run_dir / "model.keras").exists()  # nothing final was written

    result = pretrain.run(dataclasses_replace(config, steps=400))
    history = _json.loads((run_dir / "history.json").read_text())
    assert result.steps == 400
    assert len(history["loss"]) == 40 - done_epochs  # only the epochs left were run
    assert (run_dir / "model.keras").exists()


def checkpointed_epochs(folder):
    """The epoch of the latest checkpoint in `folder` (its `checkpoint` index file), else 0."""
    index = folder / "checkpoint"
    if not index.exists():
        return 0
    for line in index.read_text().splitlines():
        if line.startswith("model_checkpoint_path:"):
            return int(line.split('"')[1].rsplit("-", 1)[1])
    return 0


def dataclasses_asdict(config):
    import dataclasses

    return dataclasses.asdict(config)


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_validation_loss_is_the_mean_over_batches(corpus_file, tmp_path):
    import keras
    import numpy as np

    config = tiny(corpus_file, tmp_path / "run", steps=10, num_samples=0)
    result = pretrain.run(config)
    model = keras.saving.load_model(result.model_path)
    train_texts, validation_texts = pretrain.load_corpus(corpus_file)
    tokenizer = pretrain.build_tokenizer(config, train_texts)
    dataset = pretrain.make_dataset(config, validation_texts, tokenizer, 8, False)
    dataset = pretrain.with_known_cardinality(dataset.take(config.eval_batches).cache())
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    by_hand = np.mean([float(loss(y, model(x), sample_weight=w)) for x, y, w in dataset])
    assert result.metrics["validation_loss"] == pytest.approx(by_hand, rel=1e-4)
    # Bits per character score the same blocks: characters are tokens here (one per target,
    # [EOS] included), so bits per character = the loss in bits.
    bits = result.metrics["validation_bits_per_character"]
    assert bits == pytest.approx(by_hand / np.log(2), rel=1e-4)


def test_steps_not_a_multiple_of_the_interval_trains_exactly_that_many(corpus_file, tmp_path):
    import keras

    # 7 steps, evaluations every 3: intervals of 3, 3 and 1 (not 3 x 3 = 9 steps).
    config = tiny(corpus_file, tmp_path / "run", steps=7, eval_interval=3, num_samples=0)
    result = pretrain.run(config)
    assert result.steps == 7
    model = keras.saving.load_model(result.model_path)
    assert int(model.optimizer.iterations.numpy()) == 7
    # Step k runs at schedule(k - 1): the 7th and last step runs at the end of the decay.
    schedule = model.optimizer._learning_rate
    end = 0.1 * config.learning_rate
    assert float(schedule(6)) == pytest.approx(end, rel=1e-5)
    assert float(schedule(5)) > end * 1.01  # still decaying one step before
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["val_loss"]) == 3  # ceil(7 / 3) evaluations, the last after 1 step
    assert not (tmp_path / "run" / "backup").exists()


class CrashAfter(__import__("keras").callbacks.Callback):
    """Fails the run once the optimizer has taken `steps` steps (a killed process)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            raise RuntimeError("simulated crash")


def test_resumed_run_totals_exactly_the_steps(corpus_file, tmp_path, monkeypatch):
    from workflows import training

    config = tiny(corpus_file, tmp_path / "run", steps=7, eval_interval=3, num_samples=0)

    def crashing_fit(*args, callbacks=(), **kwargs):
        return training.fit(*args, callbacks=[*callbacks, CrashAfter(4)], **kwargs)

    monkeypatch.setattr(pretrain, "fit", crashing_fit)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain.run(config)
    assert checkpointed_epochs(tmp_path / "run" / "backup") == 1  # steps 1-3 are saved
    monkeypatch.undo()

    result = pretrain.run(config)  # resumes after step 3: runs 3 + 1 more steps
    assert result.steps == 7
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["val_loss"]) == 2  # the two evaluations left
    # The per-step loss file continues on the same step axis: 1-3, then 4-7 after the resume.
    curves = json.loads((tmp_path / "run" / "train_loss.json").read_text())
    assert curves["step"] == list(range(1, 8)) and len(curves["loss"]) == 7
    assert curves["epochs"]["step"] == [3, 6, 7]


def test_samples_are_framed_as_the_exported_generate_frames_prompts(tmp_path):
    """A greedy sample is the prompt followed by what the served `generate` returns."""
    import keras
    import tensorflow as tf

    from keras_transformer.models import GPTBackbone, GPTCausalLM
    from keras_transformer.preprocessing import CausalLMPreprocessor
    from keras_transformer.serving.generation import CausalLMModule
    from keras_transformer.text import CharacterTokenizer

    keras.utils.set_random_seed(2)  # a model whose greedy text depends on the start token
    tokenizer = CharacterTokenizer.from_text(CORPUS)
    model = GPTCausalLM(
        GPTBackbone(tokenizer.vocabulary_size(), 1, 2, 16, 32, max_sequence_length=48)
    )
    preprocessor = CausalLMPreprocessor(tokenizer, 32)
    assert preprocessor.start_token_id == tokenizer.token_to_id("[EOS]")
    config = tiny("unused", tmp_path, temperature=0.0, top_k=0, sample_length=12)
    (sample,) = pretrain.generate_samples(model, preprocessor, config)
    served = CausalLMModule(model, preprocessor, max_new_tokens=12)
    scalars = {name: tf.constant(value) for name, value in served.default_scalars().items()}
    answer = served.serve_text(tf.constant(["To be"]), **scalars)["generated_text"][0]
    assert sample == "To be" + answer.numpy().decode("utf-8")
