"""`get_strategy` names, the cluster it reads, CPU splitting, the batch arithmetic, and the
one home of strategies (old import paths, no import cycle)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from keras_transformer.distribute import get_strategy, per_replica_batch_size, split_cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match="Unknown strategy 'mirror'"):
        get_strategy("mirror")


def test_auto_without_a_cluster_is_the_default_strategy(monkeypatch):
    for name in ("TF_CONFIG", "SM_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    strategy = get_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def test_auto_reads_the_cluster_and_rejects_a_malformed_one(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"')
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        get_strategy("auto")
    config = {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(ValueError, match="task index 3 is outside the 1 worker"):
        get_strategy("auto")


def test_cpu_strategy_places_variables_on_the_cpu():
    strategy = get_strategy("cpu")
    with strategy.scope():
        variable = tf.Variable(1.0)
    assert "CPU" in variable.device


def test_per_replica_batch_size():
    strategy = tf.distribute.get_strategy()
    assert per_replica_batch_size(32, strategy) == 32

    class TwoReplicas:
        num_replicas_in_sync = 2

    assert per_replica_batch_size(32, TwoReplicas()) == 16
    with pytest.raises(ValueError, match="33 does not divide evenly over 2 replicas"):
        per_replica_batch_size(33, TwoReplicas())


def run_fresh(code):
    """Runs `code` in a new Python process (TensorFlow not started yet); returns its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_split_cpu_configures_the_devices_without_starting_tensorflow():
    result = run_fresh("""
        import json
        import tensorflow as tf
        from keras_transformer.distribute import split_cpu

        split_cpu(3)
        names = split_cpu(2)  # still changeable: the runtime has not started
        strategy = tf.distribute.MirroredStrategy(names)
        print(json.dumps({
            "names": names,
            "replicas": strategy.num_replicas_in_sync,
            "listed": [d.name for d in tf.config.list_logical_devices("CPU")],
            "again": split_cpu(2),  # the same split once started: nothing to do
        }))
    """)
    result = json.loads(result)
    expected = ["/device:CPU:0", "/device:CPU:1"]
    assert result["names"] == result["listed"] == result["again"] == expected
    assert result["replicas"] == 2


def test_split_cpu_after_tensorflow_started_says_what_to_do():
    tf.constant(1.0)  # starts the runtime
    count = len(tf.config.list_logical_devices("CPU")) + 1
    with pytest.raises(RuntimeError, match=f"Cannot split the CPU into {count} devices: Tensor"):
        split_cpu(count)


@pytest.mark.parametrize("count", [0, -2, 2.0, True, "2"])
def test_split_cpu_rejects_a_bad_count(count):
    with pytest.raises(ValueError, match="`num_devices` must be a positive integer"):
        split_cpu(count)


def test_the_old_import_paths_give_the_one_implementation():
    from keras_transformer import distribute, training
    from keras_transformer.training import agreement
    from keras_transformer.training import strategy as old

    assert old.multi_worker_strategy is distribute.multi_worker_strategy
    assert training.multi_worker_strategy is distribute.multi_worker_strategy
    for name in (
        "ConfigMismatchError",
        "broadcast_from_chief",
        "check_same_config",
        "fingerprint",
        "gather_from_workers",
        "process_watchdog",
    ):
        assert getattr(old, name) is getattr(agreement, name), name
    assert training.check_same_config is agreement.check_same_config
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        training.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    "first, then",
    [
        ("keras_transformer.distribute", "keras_transformer.training"),
        ("keras_transformer.training", "keras_transformer.distribute"),
    ],
)
def test_no_import_cycle_between_distribute_and_training(first, then):
    result = run_fresh(f"""
        import {first}
        import {then}
        from keras_transformer.training import multi_worker_strategy
        from keras_transformer.training.strategy import check_same_config
        print(multi_worker_strategy.__module__, check_same_config.__module__)
    """)
    assert result == "keras_transformer.distribute keras_transformer.training.agreement"
