"""`get_strategy` names, the cluster it reads, and the batch arithmetic."""

import json

import pytest
import tensorflow as tf

from keras_transformer.distribute import get_strategy, per_replica_batch_size


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
