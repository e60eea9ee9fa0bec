"""`get_strategy` names, the cluster it reads, CPU splitting, the batch arithmetic, and the
one home of strategies (old import paths, no import cycle)."""

import json
import sys

import pytest
import tensorflow as tf
from fresh_process import run_code

from keras_transformer import distribute
from keras_transformer.distribute import (
    cross_device_ops_for,
    get_strategy,
    nccl_available,
    per_replica_batch_size,
    split_cpu,
    strategy_plan,
)


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


def test_split_cpu_configures_the_devices_without_starting_tensorflow():
    result = run_code("""
        import json
        import tensorflow as tf
        from keras_transformer.distribute import get_strategy, split_cpu

        split_cpu(3)
        names = split_cpu(2)  # still changeable: the runtime has not started
        strategy = tf.distribute.MirroredStrategy(names)
        mirrored = get_strategy("mirrored")  # over the logical CPUs, TensorFlow's all-reduce
        total = mirrored.reduce("SUM", mirrored.run(lambda: tf.constant(1.0)), axis=None)
        print(json.dumps({
            "names": names,
            "replicas": strategy.num_replicas_in_sync,
            "mirrored": [mirrored.num_replicas_in_sync, float(total)],
            "all_reduce": type(mirrored.extended._cross_device_ops).__name__,
            "listed": [d.name for d in tf.config.list_logical_devices("CPU")],
            "again": split_cpu(2),  # the same split once started: nothing to do
        }))
    """)
    result = json.loads(result)
    expected = ["/device:CPU:0", "/device:CPU:1"]
    assert result["names"] == result["listed"] == result["again"] == expected
    assert result["replicas"] == 2
    assert result["mirrored"] == [2, 2.0]
    # What MirroredStrategy picks by itself over CPUs (cross_device_ops=None): unchanged.
    assert result["all_reduce"] == "CollectiveAllReduce"


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
    result = run_code(f"""
        import {first}
        import {then}
        from keras_transformer.training import multi_worker_strategy
        from keras_transformer.training.strategy import check_same_config
        print(multi_worker_strategy.__module__, check_same_config.__module__)
    """)
    assert result == "keras_transformer.distribute keras_transformer.training.agreement"


# === GPUs, faked: the decision is tested without building a strategy over them ===


@pytest.fixture
def no_cluster(monkeypatch):
    for name in ("TF_CONFIG", "SM_HOSTS", distribute.CROSS_DEVICE_OPS_VARIABLE):
        monkeypatch.delenv(name, raising=False)


def fake_gpus(monkeypatch, physical, logical=None):
    """Makes TensorFlow list `physical` physical and `logical` (default: as many) logical GPUs."""
    logical = physical if logical is None else logical
    real_logical, real_physical = tf.config.list_logical_devices, tf.config.list_physical_devices

    def list_logical(device_type=None):
        gpus = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(logical)]
        if device_type == "GPU":
            return gpus
        return real_logical(device_type) + (gpus if device_type is None else [])

    def list_physical(device_type=None):
        gpus = [
            tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(physical)
        ]
        if device_type == "GPU":
            return gpus
        return real_physical(device_type) + (gpus if device_type is None else [])

    monkeypatch.setattr(tf.config, "list_logical_devices", list_logical)
    monkeypatch.setattr(tf.config, "list_physical_devices", list_physical)
    return [f"/device:GPU:{i}" for i in range(logical)]


def test_nccl_is_available_on_a_linux_cuda_build_only(monkeypatch):
    from tensorflow.core.framework import kernel_def_pb2

    expected = sys.platform.startswith("linux") and tf.test.is_built_with_cuda()
    assert nccl_available() is expected
    monkeypatch.setattr(distribute.sys, "platform", "darwin")
    assert nccl_available() is False
    monkeypatch.setattr(distribute.sys, "platform", "linux")
    monkeypatch.setattr(
        distribute.kernels, "get_registered_kernels_for_op", lambda op: kernel_def_pb2.KernelList()
    )
    assert nccl_available() is False


def test_auto_picks_mirrored_over_several_gpus_with_nccl(monkeypatch, no_cluster):
    names = fake_gpus(monkeypatch, 8)
    monkeypatch.setattr(distribute, "nccl_available", lambda: True)
    plan = strategy_plan("auto")
    assert plan.name == "mirrored"
    assert plan.devices == tuple(names)
    assert isinstance(plan.cross_device_ops, tf.distribute.NcclAllReduce)


def test_without_nccl_or_on_virtual_gpus_the_all_reduce_is_hierarchical_copy(
    monkeypatch, no_cluster
):
    names = fake_gpus(monkeypatch, 4)
    monkeypatch.setattr(distribute, "nccl_available", lambda: False)
    plan = strategy_plan("auto")
    assert (plan.name, plan.devices) == ("mirrored", tuple(names))
    assert isinstance(plan.cross_device_ops, tf.distribute.HierarchicalCopyAllReduce)
    # One physical GPU split into two virtual ones: NCCL does not run on them.
    monkeypatch.setattr(distribute, "nccl_available", lambda: True)
    fake_gpus(monkeypatch, 1, logical=2)
    ops = strategy_plan("mirrored").cross_device_ops
    assert isinstance(ops, tf.distribute.HierarchicalCopyAllReduce)


def test_one_gpu_is_one_device_and_auto_keeps_the_default(monkeypatch, no_cluster):
    fake_gpus(monkeypatch, 1)
    assert strategy_plan("one_device") == distribute.StrategyPlan("one_device", ("/device:GPU:0",))
    assert strategy_plan("auto") == distribute.StrategyPlan("default")


def test_cpu_devices_keep_tensorflows_own_all_reduce(monkeypatch, no_cluster):
    monkeypatch.setattr(distribute, "nccl_available", lambda: True)
    assert cross_device_ops_for(["/device:CPU:0", "/device:CPU:1"]) is None
    assert cross_device_ops_for(["/device:GPU:0", "/device:CPU:0"]) is None
    plan = strategy_plan("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert (plan.devices, plan.cross_device_ops) == (("/cpu:0", "/cpu:1"), None)


def test_the_all_reduce_can_be_chosen_by_argument_or_environment(monkeypatch, no_cluster):
    gpus = fake_gpus(monkeypatch, 2)
    monkeypatch.setattr(distribute, "nccl_available", lambda: True)
    choose = cross_device_ops_for
    assert isinstance(choose(gpus, "hierarchical_copy"), tf.distribute.HierarchicalCopyAllReduce)
    assert isinstance(choose(gpus, "reduction_to_one_device"), tf.distribute.ReductionToOneDevice)
    assert choose(gpus, "default") is None
    monkeypatch.setenv(distribute.CROSS_DEVICE_OPS_VARIABLE, "hierarchical_copy")
    ops = strategy_plan("auto").cross_device_ops
    assert isinstance(ops, tf.distribute.HierarchicalCopyAllReduce)
    assert isinstance(choose(gpus, "nccl"), tf.distribute.NcclAllReduce)  # the argument wins
    monkeypatch.setenv(distribute.CROSS_DEVICE_OPS_VARIABLE, "ring")
    with pytest.raises(ValueError, match="Unknown all-reduce KT_CROSS_DEVICE_OPS='ring'"):
        choose(gpus)
    with pytest.raises(ValueError, match="cross_device_ops='nccl' needs GPU devices"):
        choose(["/cpu:0", "/cpu:1"], "nccl")


def test_get_strategy_builds_the_plan_and_the_batch_splits_per_gpu(monkeypatch, no_cluster):
    names = fake_gpus(monkeypatch, 8)
    monkeypatch.setattr(distribute, "nccl_available", lambda: True)
    built = []

    class Recorder:  # a MirroredStrategy over fake GPUs cannot be built here
        def __init__(self, devices=None, cross_device_ops=None):
            built.append((devices, cross_device_ops))
            self.num_replicas_in_sync = len(devices)

    monkeypatch.setattr(tf.distribute, "MirroredStrategy", Recorder)
    strategy = get_strategy("auto")
    [(devices, ops)] = built
    assert devices == names
    assert isinstance(ops, tf.distribute.NcclAllReduce)
    assert per_replica_batch_size(256, strategy) == 32
    with pytest.raises(ValueError, match="100 does not divide evenly over 8 replicas"):
        per_replica_batch_size(100, strategy)


@pytest.mark.parametrize(
    "gpus, nccl, expected", [(2, True, "NCCL"), (2, False, "AUTO"), (0, True, "AUTO")]
)
def test_multi_worker_collectives_use_nccl_on_gpu_workers(monkeypatch, gpus, nccl, expected):
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setattr(distribute, "nccl_available", lambda: nccl)
    options = distribute.communication_options(collective_timeout=30.0)
    assert options.implementation.name == expected
    assert options.timeout_seconds == 30.0


def test_multi_worker_strategy_is_built_with_those_options(monkeypatch, no_cluster):
    from keras_transformer.training.cluster import resolve_cluster

    fake_gpus(monkeypatch, 2)
    monkeypatch.setattr(distribute, "nccl_available", lambda: True)
    built = []

    class Recorder:  # stands in for MultiWorkerMirroredStrategy, which fake GPUs cannot start
        def __init__(self, communication_options=None):
            built.append(communication_options)

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", Recorder)
    distribute.multi_worker_strategy(cluster=resolve_cluster(environ={}))
    [options] = built
    assert options.implementation.name == "NCCL"
