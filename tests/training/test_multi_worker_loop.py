"""Several worker processes on 127.0.0.1: same weights as one process, failures end cleanly.

Every run is `multi_worker_case.py` (a tiny model, dropout 0, a fixed seed), once in a single
process with the default strategy and once as N workers started by `launch_workers`. A
multi-worker run takes 20-40 s on 2 cores, so these tests are marked slow.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from fresh_process import run_python

from keras_transformer.training.launcher import launch_workers

CASE = os.path.join(os.path.dirname(__file__), "multi_worker_case.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow


def run_single(case, out, *extra):
    run_python(CASE, "--case", case, "--out", out, *extra, timeout=240)
    return load(out, 0)


def run_workers(out, *extra, num_workers=2, worker_env=None, timeout=240):
    command = [sys.executable, CASE, "--multi-worker", "--out", str(out), *extra]
    return launch_workers(
        command,
        num_workers=num_workers,
        timeout=timeout,
        grace_seconds=60,
        cwd=ROOT,
        worker_env=worker_env,
        log_dir=str(out) + "-logs",
    )


def load(out, index):
    weights = np.load(os.path.join(out, f"worker-{index}.npz"))
    with open(os.path.join(out, f"worker-{index}.json")) as file:
        report = json.load(file)
    return [weights[key] for key in sorted(weights.files)], report


def relative_difference(weights_a, weights_b):
    scale = max(float(np.abs(w).max()) for w in weights_a)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(weights_a, weights_b, strict=True))
    return worst / scale


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The one-process runs every multi-worker run is compared with."""
    runs = {}
    for case in ("gpt", "transfer"):
        runs[case] = run_single(case, tmp_path_factory.mktemp(f"single-{case}"))
    return runs


def assert_same_training(reference_run, out, num_workers=2, replicas=2):
    expected_weights, expected = reference_run
    first_weights, first = load(out, 0)
    for index in range(1, num_workers):
        weights, _ = load(out, index)
        assert relative_difference(first_weights, weights) == 0.0  # workers agree exactly
    difference = relative_difference(expected_weights, first_weights)
    assert difference < 1e-5, difference
    assert first["replicas"] == replicas
    assert first["iterations"] == expected["iterations"]
    for key, values in expected["history"].items():
        np.testing.assert_allclose(first["history"][key], values, rtol=1e-5, err_msg=key)
    return difference


@pytest.mark.parametrize("case", ["gpt", "transfer"])
def test_two_workers_reach_the_one_process_weights(case, reference, tmp_path):
    result = run_workers(tmp_path / "out", "--case", case)
    assert result.ok, result.summary + "\n" + result.log(0)[-3000:]
    difference = assert_same_training(reference[case], tmp_path / "out")
    print(f"{case}: max |w_2 workers - w_1 process| / max |w| = {difference:.2e}")
    _, report = load(tmp_path / "out", 0)
    if case == "transfer":
        assert not report["frozen_changed"]  # the frozen backbone did not move
        assert report["num_trainable"] == 4  # only the head trained


def test_two_workers_with_two_replicas_each(reference, tmp_path):
    result = run_workers(tmp_path / "out", "--case", "gpt", "--replicas-per-worker", "2")
    assert result.ok, result.summary + "\n" + result.log(0)[-3000:]
    assert_same_training(reference["gpt"], tmp_path / "out", replicas=4)


def test_mirrored_on_one_host_matches_one_device(reference, tmp_path):
    weights, report = run_single("gpt", tmp_path / "out", "--mirrored", "2")
    assert report["replicas"] == 2
    expected_weights, expected = reference["gpt"]
    assert relative_difference(expected_weights, weights) < 1e-5
    np.testing.assert_allclose(report["history"]["loss"], expected["history"]["loss"], 1e-5)


def test_a_killed_worker_ends_the_job_and_a_rerun_resumes(reference, tmp_path):
    checkpoints = str(tmp_path / "checkpoints")
    arguments = ("--case", "gpt", "--checkpoint-dir", checkpoints)
    # Worker 1 crashes before step 6 (epoch 2 of 3; epoch 1 was checkpointed at step 4).
    crash = run_workers(
        tmp_path / "crashed",
        *arguments,
        worker_env=lambda i: {"KT_TEST_DIE_AT_STEP": "6", "KT_TEST_DIE_WORKER": "1"},
    )
    assert crash.returncodes[1] == 17
    assert crash.returncodes[0] not in (0, None) and 0 not in crash.killed  # stopped by itself
    stopped_after = crash.exit_seconds[0] - crash.exit_seconds[1]
    assert stopped_after < 45, crash.summary
    log = crash.log(0)
    assert "WorkerLostError: Worker 0 of 2 lost contact with another worker at epoch 2" in log
    assert "run the same command again to resume" in log
    print(f"worker 0 stopped {stopped_after:.1f} s after worker 1 died: {crash.summary}")

    rerun = run_workers(tmp_path / "resumed", *arguments)
    assert rerun.ok, rerun.summary + "\n" + rerun.log(0)[-3000:]
    assert "Resuming from" in rerun.log(0) and "(epoch 1)" in rerun.log(0)
    weights, report = load(tmp_path / "resumed", 0)
    assert len(report["history"]["loss"]) == 2  # epochs 2 and 3
    expected_weights, expected = reference["gpt"]
    assert relative_difference(expected_weights, weights) < 1e-5
    np.testing.assert_allclose(report["history"]["loss"], expected["history"]["loss"][1:], 1e-5)


def test_workers_started_with_different_settings_stop_at_once(tmp_path):
    result = run_workers(
        tmp_path / "out",
        "--case",
        "transfer",
        worker_env=lambda i: {"KT_TEST_LEARNING_RATE": "0.01" if i == 0 else "0.02"},
    )
    assert result.returncodes == [1, 1], result.summary
    for index in range(2):
        log = result.log(index)
        assert "ConfigMismatchError: The workers were started with different settings" in log
        assert "config (worker 0:" in log


def test_a_worker_whose_peer_never_starts_stops_in_bounded_time(tmp_path):
    from keras_transformer.training.launcher import free_ports

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, CASE, "--multi-worker", "--startup-timeout", "10", "--out", str(tmp_path)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == -9
    assert "was still waiting for the other workers to join the cluster" in done.stderr
    assert f"not answering: {workers[1]}" in done.stderr
    assert elapsed < 60
