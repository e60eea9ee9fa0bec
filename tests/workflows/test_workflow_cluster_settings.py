"""How the workflows' command reads cluster settings: flags, SageMaker, and what it refuses."""

import json
import os
import subprocess
import sys

import pytest

from keras_transformer.training.launcher import launch_workers
from workflows import main_job, pretrain, transfer
from workflows.config import sagemaker_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_command(*args, env=None):
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "SM_HOSTS")}
    environ.update(env or {}, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "workflows", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_malformed_workers_flag_is_a_clear_error():
    out = run_command("pretrain", "--workers", "127.0.0.1:2222,nohost", "--worker-index", "0")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error:" in out.stderr and "'nohost'" in out.stderr and "host:port" in out.stderr


def test_cluster_flags_belong_to_the_training_workflows_only():
    assert run_command("transfer", "--help").stdout.count("--workers") >= 1
    out = run_command("export", "--workers", "127.0.0.1:2222")
    assert out.returncode == 2 and "unrecognized arguments: --workers" in out.stderr


def test_sagemaker_defaults(tmp_path):
    channel = tmp_path / "training"
    channel.mkdir()
    (channel / "reviews.csv").write_text("text,label\ngood,positive\n")
    environ = {"SM_MODEL_DIR": str(tmp_path / "model"), "SM_CHANNEL_TRAINING": str(channel)}
    assert sagemaker_defaults(pretrain.Config, environ) == {
        "output_dir": str(tmp_path / "model"),
        "corpus": str(channel),
    }
    assert sagemaker_defaults(transfer.Config, environ)["dataset"] == str(channel / "reviews.csv")
    (channel / "more.tsv").write_text("text\tlabel\n")
    with pytest.raises(ValueError, match="holds 2 CSV/TSV files"):
        sagemaker_defaults(transfer.Config, environ)
    assert sagemaker_defaults(pretrain.Config, {}) == {}


def test_sagemaker_model_dir_becomes_the_output_folder(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200, encoding="utf-8")
    out = run_command(
        "pretrain",
        "--corpus", str(corpus), "--num-layers", "1", "--hidden-dim", "16", "--num-heads", "2",
        "--intermediate-dim", "32", "--sequence-length", "16", "--batch-size", "4",
        "--steps", "2", "--eval-interval", "2", "--eval-batches", "1", "--num-samples", "0",
        "--verbose", "0",
        env={"SM_MODEL_DIR": str(tmp_path / "model")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SageMaker: --output-dir" in out.stdout
    assert json.loads(out.stdout[out.stdout.index("{") :])["run_dir"] == str(tmp_path / "model")
    assert (tmp_path / "model" / "model.keras").is_file()


def test_the_main_job_refuses_a_cluster(tmp_path, monkeypatch):
    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker"}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(ValueError, match="runs in one process, but TF_CONFIG describes 2"):
        main_job.run(main_job.Config(output_dir=str(tmp_path / "main")))
    assert not (tmp_path / "main").exists()


@pytest.mark.slow
def test_workers_without_an_output_folder_stop_with_a_clear_error(tmp_path):
    result = launch_workers(
        [sys.executable, "-m", "workflows", "pretrain", "--corpus", "shakespeare"],
        num_workers=2,
        timeout=120,
        cwd=ROOT,
        log_dir=str(tmp_path / "logs"),
    )
    assert result.returncodes == [2, 2], result.summary
    for index in range(2):
        assert "give every worker the same --output-dir" in result.log(index)
