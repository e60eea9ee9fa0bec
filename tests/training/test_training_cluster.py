"""Cluster settings: TF_CONFIG, SageMaker, --workers; who is chief; bad input named clearly."""

import argparse
import json
import os

import pytest

from keras_transformer.training import cluster as cl


def tf_config(workers, index=0, task_type="worker", chief=None):
    spec = {"worker": workers}
    if chief:
        spec["chief"] = chief
    return json.dumps({"cluster": spec, "task": {"type": task_type, "index": index}})


def test_tf_config_is_read_and_worker_zero_is_chief():
    info = cl.parse_tf_config(tf_config(["a:1", "b:2"], index=1))
    assert info.workers == ("a:1", "b:2")
    assert (info.index, info.num_workers, info.is_chief) == (1, 2, False)
    assert info.peers == ["a:1"]
    assert info.tf_config() == json.loads(tf_config(["a:1", "b:2"], index=1))


def test_an_explicit_chief_comes_first():
    raw = tf_config(["w:1"], index=0, chief=["c:1"])
    info = cl.parse_tf_config(raw)
    assert info.workers == ("c:1", "w:1")
    assert info.index == 1 and not info.is_chief
    assert info.tf_config() == json.loads(raw)  # the same cluster and task back
    chief = cl.parse_tf_config(tf_config(["w:1"], index=0, task_type="chief", chief=["c:1"]))
    assert chief.is_chief and chief.tf_config()["cluster"] == {"chief": ["c:1"], "worker": ["w:1"]}


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster'"),
        ('{"cluster": {"worker": ["a:1"]}}', "needs a 'task'"),
        (tf_config(["a:1", "b:2"], index=2), "task index 2 is outside"),
        (tf_config(["a:1"], task_type="chief"), "task type 'chief' is not in the cluster"),
        (tf_config(["a:1", "a:1"]), "more than once"),
        (tf_config(["a"]), "Invalid TF_CONFIG worker address 'a'"),
        (tf_config(["a:99999"]), "port in 1..65535"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["p:1"]}, "task": {"type": "worker"}}', "'ps'"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
    ],
)
def test_malformed_tf_config_fails_with_a_clear_message(raw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        cl.parse_tf_config(raw)


def test_workers_flag():
    info = cl.from_workers("10.0.0.1:2222, 10.0.0.2:2222", worker_index=1)
    assert info.workers == ("10.0.0.1:2222", "10.0.0.2:2222")
    assert info.index == 1 and info.source == "--workers"
    with pytest.raises(ValueError, match="more than once"):
        cl.from_workers("h:1,h:1", 0)
    with pytest.raises(ValueError, match="--worker-index must be in 0..1"):
        cl.from_workers("h:1,g:1", 2)
    with pytest.raises(ValueError, match="Cannot tell which"):
        cl.from_workers("127.0.0.1:1,127.0.0.1:2")  # both are this host
    assert cl.from_workers("127.0.0.1:1,unknown-host.invalid:2").index == 0  # found by name


def test_sagemaker_environment():
    environ = {"SM_HOSTS": '["algo-1", "algo-2", "algo-10"]', "SM_CURRENT_HOST": "algo-10"}
    info = cl.resolve_cluster(environ=environ)
    assert info.source == "SageMaker"
    assert info.workers == ("algo-1:2222", "algo-2:2222", "algo-10:2222")  # SageMaker's order
    assert info.index == 2 and not info.is_chief
    with pytest.raises(ValueError, match="not one of SM_HOSTS"):
        cl.resolve_cluster(environ={"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-3"})
    with pytest.raises(ValueError, match="SM_HOSTS is not a JSON list"):
        cl.resolve_cluster(environ={"SM_HOSTS": "algo-1", "SM_CURRENT_HOST": "algo-1"})


def test_sagemaker_paths():
    paths = cl.sagemaker_paths(
        {
            "SM_MODEL_DIR": "/opt/ml/model",
            "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training",
            "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
        }
    )
    assert paths["model_dir"] == "/opt/ml/model"
    assert paths["channels"] == {
        "training": "/opt/ml/input/data/training",
        "validation": "/opt/ml/input/data/validation",
    }
    assert cl.sagemaker_paths({})["model_dir"] is None


def test_precedence_and_configure_writes_tf_config():
    environ = {
        "TF_CONFIG": tf_config(["t:1", "t:2"], 1),
        "SM_HOSTS": '["algo-1", "algo-2"]',
        "SM_CURRENT_HOST": "algo-1",
    }
    assert cl.resolve_cluster(environ=environ).source == "TF_CONFIG"
    info = cl.configure_cluster("f:1,f:2", 0, environ=environ)
    assert info.source == "--workers"
    assert json.loads(environ["TF_CONFIG"])["cluster"]["worker"] == ["f:1", "f:2"]
    assert cl.resolve_cluster(environ={}) is cl.LOCAL
    assert cl.LOCAL.is_chief and not cl.LOCAL.is_multi_worker


def test_the_command_prints_the_cluster(capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cl.main(["--workers", "a:1,b:1", "--worker-index", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["source"] == "--workers" and printed["is_chief"] is False
    assert printed["tf_config"]["task"] == {"type": "worker", "index": 1}
    assert "TF_CONFIG" not in os.environ  # printing changes nothing


def test_argparse_flags():
    parser = cl.add_cluster_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--workers", "a:1,b:1", "--worker-index", "1"])
    assert (args.workers, args.worker_index) == ("a:1,b:1", 1)


def test_worker_temp_dir_only_for_non_chiefs(tmp_path):
    chief = cl.parse_tf_config(tf_config(["a:1", "b:1"], 0))
    other = cl.parse_tf_config(tf_config(["a:1", "b:1"], 1))
    assert cl.worker_temp_dir(str(tmp_path), cluster=chief) == str(tmp_path)
    temporary = cl.worker_temp_dir(str(tmp_path), cluster=other)
    assert temporary.startswith(str(tmp_path)) and "worker-1" in temporary
    (tmp_path / ".worker-1-tmp").mkdir()
    cl.remove_worker_temp_dir(str(tmp_path), cluster=other)
    assert not (tmp_path / ".worker-1-tmp").exists()
    cl.remove_worker_temp_dir(str(tmp_path), cluster=chief)
    assert tmp_path.exists()


def test_multi_worker_strategy_rejects_a_malformed_tf_config_before_starting(monkeypatch):
    from keras_transformer.training import multi_worker_strategy

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": ')
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        multi_worker_strategy()
