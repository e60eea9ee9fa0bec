"""Our command lines hide TensorFlow's C++ log lines unless TF_CPP_MIN_LOG_LEVEL is set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_transformer import _quiet

ROOT = Path(__file__).resolve().parents[2]
LEVEL = "TF_CPP_MIN_LOG_LEVEL"
NOISE = ("oneDNN", "cuInit", "cuda", "absl::InitializeLog")
CORPUS = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind\n" * 80


def noise_in(text):
    return [line for line in text.splitlines() if any(w.lower() in line.lower() for w in NOISE)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command, started together (each imports TensorFlow: about 5 s apiece)."""
    folder = tmp_path_factory.mktemp("quiet")
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    tiny = ["--corpus", str(corpus), "--num-layers", "1", "--hidden-dim", "16", "--num-heads",
            "2", "--intermediate-dim", "32", "--sequence-length", "16", "--batch-size", "4",
            "--steps", "2", "--eval-interval", "2", "--eval-batches", "1", "--num-samples", "0",
            "--verbose", "0", "--output-dir", str(folder / "run")]  # fmt: skip
    python = [sys.executable, "-m"]
    commands = {
        "help": ([*python, "workflows", "pretrain", "--help"], {}),
        "run": ([*python, "workflows", "pretrain", *tiny], {}),
        "bad": ([*python, "workflows", "pretrain", "--steps", "0"], {}),
        "data": ([*python, "keras_transformer.data", "--help"], {}),
        "launch": ([*python, "keras_transformer.training.launch", "--help"], {}),
        "user_level_0": ([*python, "workflows", "pretrain", "--help"], {LEVEL: "0"}),
    }  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k != LEVEL}
    started = {
        name: subprocess.Popen(
            command,
            cwd=ROOT,
            env={**base, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (command, extra) in commands.items()
    }
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("name", ["help", "data", "launch"])
def test_help_of_every_entry_point_has_no_tensorflow_lines(runs, name):
    code, stdout, stderr = runs[name]
    assert code == 0 and "usage:" in stdout
    assert noise_in(stderr) == [], stderr


def test_a_real_run_has_no_tensorflow_lines(runs):
    code, stdout, stderr = runs["run"]
    assert code == 0, stderr
    assert '"steps": 2' in stdout
    assert noise_in(stderr) == [], stderr  # cuInit comes when the devices start: hidden too


def test_python_errors_stay_visible(runs):
    code, _, stderr = runs["bad"]
    assert code == 2
    assert stderr.strip().splitlines() == ["error: `steps` must be positive. Received: 0"]


def test_the_default_yields_to_a_user_set_level(runs):
    assert noise_in(runs["help"][2]) == []  # unset: quiet
    code, _, stderr = runs["user_level_0"]
    assert code == 0
    # Level 0 shows TensorFlow's lines (which of them depends on the machine: oneDNN, cuda).
    assert noise_in(stderr) != []


def test_only_our_commands_are_quieted(runs):
    assert noise_in(runs["help"][2]) == []
    env = {k: v for k, v in os.environ.items() if k != LEVEL}
    script = f"import os, keras_transformer; print(os.environ.get({LEVEL!r}))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.stdout.strip() == "None"  # a library user's process: no setting changed
    assert noise_in(out.stderr) != []  # and TensorFlow logs as it always does


@pytest.mark.parametrize(
    ("argv", "ours"),
    [
        (["python", "-m", "workflows", "pretrain"], True),
        (["python", "-X", "importtime", "-m", "keras_transformer.data"], True),
        (["python", "-mkeras_transformer.training.launch"], True),
        (["/venv/bin/python", "/venv/bin/keras-transformer", "pretrain"], True),
        (["python", "-m", "pytest", "-m", "workflows"], False),
        (["python", "-c", "import workflows"], False),
        (["python", "script.py", "-m", "workflows"], False),
    ],
)
def test_our_commands_are_recognised(argv, ours):
    assert _quiet.is_our_command(argv) is ours


def test_only_absl_lines_below_the_level_are_hidden():
    info = "I0000 00:00:1796164902.414814   26150 port.cc:153] oneDNN custom operations are on."
    error = "E0000 00:00:1796163453.669692   20377 cuda_platform.cc:52] failed call to cuInit"
    fatal = "F0000 00:00:1796163453.669692   20377 logging.cc:1] Check failed"
    assert _quiet.hidden(info, 3) and _quiet.hidden(error, 3)
    assert not _quiet.hidden(fatal, 3)
    assert _quiet.hidden(info, 1) and not _quiet.hidden(error, 1)
    assert not _quiet.hidden(info, 0)
    assert not _quiet.hidden("/x/y.py:3: UserWarning: something", 3)
    assert not _quiet.hidden("Traceback (most recent call last):", 3)
