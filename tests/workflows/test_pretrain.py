import json
import os
import subprocess
import sys

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
    assert 0.0 <= result.metrics["validation_accuracy"] <= 1.0
    assert result.samples == []


def test_bad_config_fails_before_training(corpus_file, tmp_path):
    with pytest.raises(ValueError, match="--tokens wordpiece"):
        pretrain.run(tiny(corpus_file, tmp_path / "a", objective="masked", tokens="char"))
    with pytest.raises(FileNotFoundError, match="neither a built-in corpus"):
        pretrain.run(tiny(str(tmp_path / "missing.txt"), tmp_path / "b"))
    with pytest.raises(ValueError, match="Unknown strategy"):
        pretrain.run(tiny(corpus_file, tmp_path / "c", strategy="gpu-cluster"))
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
