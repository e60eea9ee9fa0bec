"""The workflows' own commands on 2 local workers reach the weights of one process.

The same command as on one machine (`python -m workflows pretrain ...`), started as 2 worker
processes on 127.0.0.1: once from `TF_CONFIG` (what `launch_workers` sets), once from the
`--workers` flag. Same global batch, same seed, dropout 0: the chief's saved model must equal the
one-process model, and only the chief leaves files. Marked slow (about a minute each).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_classifier_workflows import NEGATIVE, POSITIVE, tiny_masked_base

from keras_transformer.training.launcher import free_ports, launch_workers
from workflows import compress, pretrain, transfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow

CORPUS = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
) * 120
TINY = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64}


def flags(settings):
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def weights(path):
    model = keras.saving.load_model(path, compile=False)
    return [np.asarray(w) for w in model.weights]


def relative_difference(a, b):
    scale = max(float(np.abs(w).max()) for w in a)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) / scale


def run_on_two_workers(workflow, settings, tmp_path):
    """Runs `python -m workflows <workflow>` as 2 TF_CONFIG workers into `tmp_path/two`."""
    two = tmp_path / "two"
    command = [sys.executable, "-m", "workflows", workflow, *flags(settings)]
    result = launch_workers(
        [*command, "--output-dir", str(two)],
        num_workers=2,
        timeout=300,
        cwd=ROOT,
        log_dir=str(tmp_path / "logs"),
    )
    assert result.ok, result.summary + "\n" + result.log(0)[-3000:] + result.log(1)[-3000:]
    assert "worker 1 of 2 (cluster from TF_CONFIG)" in result.log(1)
    return two


def assert_same_weights(model_path, two, name):
    """The 2-worker run's saved model is within 1e-4 (relative) of the one-process model's."""
    difference = relative_difference(weights(model_path), weights(two / "model.keras"))
    print(f"{name}, 2 workers vs 1 process: relative weight difference {difference:.2e}")
    assert difference < 1e-4


def assert_only_chief_files(folder):
    left = sorted(name for name in os.listdir(folder) if name.startswith(".") or name == "backup")
    assert left == [], f"temporary or checkpoint files left behind: {left}"


def gpt_settings(tmp_path, **changes):
    """A tiny character-level GPT pretraining on a small corpus (written into `tmp_path`)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    return {
        "corpus": str(corpus),
        **TINY,
        "sequence_length": 32,
        "batch_size": 8,
        "eval_batches": 2,
        "warmup_steps": 1,
        "dropout": 0.0,
        "num_samples": 0,
        "verbose": 0,
        **changes,
    }


def test_pretrain_on_two_workers_matches_one_process(tmp_path):
    settings = gpt_settings(tmp_path, steps=6, eval_interval=3)
    one = pretrain.run(pretrain.Config(output_dir=str(tmp_path / "one"), **settings))

    two = run_on_two_workers("pretrain", settings, tmp_path)
    assert_same_weights(one.model_path, two, "pretrain (GPT)")
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["validation_loss"] == pytest.approx(one.metrics["validation_loss"], rel=1e-4)
    history = json.loads((two / "history.json").read_text())
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    assert_only_chief_files(two)


def test_compress_on_two_workers_matches_one_process(tmp_path):
    """General distillation: a frozen 2-block masked-LM teacher, a 1-block student with a pruned
    vocabulary, every default term (masked-LM soft targets included). Each worker's rows have
    their own padding and masked positions: the terms must still average over the global batch."""
    (tmp_path / "teacher").mkdir()
    text = "\n".join((POSITIVE + NEGATIVE) * 30)
    teacher = tiny_masked_base(tmp_path / "teacher", text, steps=2, eval_interval=2)
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(f"{t} {i % 3}" for i in range(60) for t in POSITIVE), "utf-8")
    settings = {
        "init_from": teacher,
        "corpus": str(corpus),
        "student_layers": 1,
        "sequence_length": 16,
        "batch_size": 4,
        "steps": 6,
        "eval_interval": 3,
        "eval_batches": 2,
        "learning_rate": 3e-3,
        "warmup_steps": 1,
        "similarity_pairs": 20,
        "dropout": 0.0,
        "verbose": 0,
    }
    one = compress.run(compress.Config(output_dir=str(tmp_path / "one"), **settings))

    two = run_on_two_workers("compress", settings, tmp_path)
    assert_same_weights(one.model_path, two, "compress")
    assert (two / "vocab.txt").read_text() == (tmp_path / "one" / "vocab.txt").read_text()
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["validation_loss"] == pytest.approx(one.metrics["validation_loss"], rel=1e-4)
    assert metrics["student_parameters"] == one.metrics["student_parameters"]
    history = json.loads((two / "history.json").read_text())
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    assert_only_chief_files(two)


@pytest.fixture
def base_and_data(tmp_path):
    """A tiny masked-LM run (the frozen base) and a small labeled CSV."""
    words = ["good", "great", "fine", "bad", "awful", "dull", "film", "story", "music", "a"]
    rng = np.random.default_rng(0)
    rows = []
    for i in range(96):
        label = "positive" if i % 2 else "negative"
        mood = words[:3] if label == "positive" else words[3:6]
        text = " ".join([*rng.choice(mood, 2), *rng.choice(words[6:], 3)])
        rows.append(f"{text},{label}")
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r.split(",")[0] for r in rows * 4), encoding="utf-8")
    base = pretrain.run(
        pretrain.Config(
            objective="masked",
            tokens="wordpiece",
            corpus=str(corpus),
            vocabulary_size=60,
            **TINY,
            sequence_length=16,
            batch_size=8,
            steps=2,
            eval_interval=2,
            eval_batches=1,
            dropout=0.0,
            output_dir=str(tmp_path / "base"),
            verbose=0,
        )
    )
    return base.run_dir, str(csv_path)


def test_transfer_on_two_workers_from_the_workers_flag_matches_one_process(base_and_data, tmp_path):
    base_dir, csv_path = base_and_data
    settings = {
        "init_from": base_dir,
        "dataset": csv_path,
        "sequence_length": 16,
        "batch_size": 8,
        "epochs": 2,
        "dropout": 0.0,
        "learning_rate": 1e-2,
        "verbose": 0,
    }
    one = transfer.run(transfer.Config(output_dir=str(tmp_path / "one"), **settings))

    two = tmp_path / "two"
    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "workflows", "transfer", *flags(settings)]
            + ["--output-dir", str(two), "--workers", workers, "--worker-index", str(index)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300)[0])
    finally:
        for process in processes:
            process.kill()
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert "worker 1 of 2 (cluster from --workers)" in outputs[1]

    assert_same_weights(one.model_path, two, "transfer")
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(one.metrics["test_accuracy"], abs=1e-6)
    assert_only_chief_files(two)


def checkpointed_epochs(folder):
    index = folder / "checkpoint"
    if not index.exists():
        return 0
    first = index.read_text().splitlines()[0]  # model_checkpoint_path: "ckpt-3"
    return int(first.split('"')[1].rsplit("-", 1)[1])


def start_workers(command, workers, log_dir):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.makedirs(log_dir, exist_ok=True)
    processes = []
    for index in range(2):
        log = open(os.path.join(log_dir, f"worker-{index}.log"), "w")  # noqa: SIM115
        extra = ["--workers", workers, "--worker-index", str(index)]
        processes.append(
            subprocess.Popen(
                [*command, *extra], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    return processes


def test_a_killed_worker_stops_the_workflow_and_a_rerun_completes_it(tmp_path):
    import signal
    import time

    settings = gpt_settings(tmp_path, steps=160, eval_interval=20, verbose=2)
    run_dir = tmp_path / "two"
    command = [sys.executable, "-m", "workflows", "pretrain", *flags(settings)]
    command += ["--output-dir", str(run_dir)]
    workers = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))

    processes = start_workers(command, workers, tmp_path / "logs-1")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and processes[0].poll() is None:
            if checkpointed_epochs(run_dir / "backup") >= 2:
                break
            time.sleep(0.05)
        assert processes[1].poll() is None, "the run ended before a worker could be killed"
        processes[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        code = processes[0].wait(timeout=120)  # bounded: never a hang
        stopped_after = time.monotonic() - killed_at
    finally:
        for process in processes:
            process.kill()
            process.wait()
    log = (tmp_path / "logs-1" / "worker-0.log").read_text()
    print(f"worker 0 stopped {stopped_after:.1f} s after worker 1 was killed")
    assert code == 1, log[-3000:]
    assert "error: Worker 0 of 2 lost contact with another worker" in log, log[-3000:]
    assert "run the same command again to resume" in log
    assert not (run_dir / "model.keras").exists()
    done = checkpointed_epochs(run_dir / "backup")

    processes = start_workers(command, workers, tmp_path / "logs-2")
    try:
        codes = [process.wait(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    log = (tmp_path / "logs-2" / "worker-0.log").read_text()
    assert codes == [0, 0], log[-3000:]
    assert f"(epoch {done})" in log  # resumed, did not start over
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["loss"]) == 8 - done

    one = pretrain.run(
        pretrain.Config(output_dir=str(tmp_path / "one"), **{**settings, "verbose": 0})
    )
    difference = relative_difference(weights(one.model_path), weights(run_dir / "model.keras"))
    print(f"killed, resumed on 2 workers vs uninterrupted 1 process: {difference:.2e}")
    assert difference < 1e-4
    assert_only_chief_files(run_dir)
