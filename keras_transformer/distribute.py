"""A `tf.distribute` strategy from a name, and the batch arithmetic that goes with it.

Names: `auto`, `cpu`, `one_device`, `mirrored`, `multi_worker`, `tpu`.

- `auto`: `multi_worker` when `TF_CONFIG` names more than one worker, `mirrored` when several
  GPUs are visible, otherwise the default (one device) strategy.
- `cpu`: one CPU device. `one_device`: the first GPU if there is one, else the CPU.
- `mirrored`: synchronous data parallelism over the local devices (all GPUs, or the logical CPU
  devices made with `tf.config.set_logical_device_configuration`).
- `multi_worker`: synchronous data parallelism over several hosts, configured by `TF_CONFIG`.
- `tpu`: a TPU system, found by `TPUClusterResolver` (or `tpu_address`).

Build and compile models inside `strategy.scope()`; the global batch is split across replicas.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")


def _tf_config_workers():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={raw[:200]!r}. "
            'Expected e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}.'
        ) from error
    cluster = config.get("cluster", {})
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def get_strategy(name="auto", devices=None, tpu_address=None):
    """Returns the `tf.distribute.Strategy` for a name.

    Args:
        name: str. One of `STRATEGIES`. Defaults to `"auto"`.
        devices: list of device names for `mirrored` (e.g. `["/cpu:0", "/cpu:1"]`). Defaults
            to all local GPUs, or all logical CPUs when there is no GPU.
        tpu_address: str. The TPU to connect to, for `tpu`. Defaults to the environment's.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {STRATEGIES}.")
    if name == "auto":
        if _tf_config_workers() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            return tf.distribute.get_strategy()
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        _tf_config_workers()  # validates TF_CONFIG
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError, RuntimeError) as error:
        raise RuntimeError(
            f"No TPU could be found ({error}). Run on a TPU VM or pass `tpu_address`, or choose "
            "another strategy."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices (for `mirrored` on a CPU).

    Must run before TensorFlow initialises its devices (before any op runs).
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices
    )
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def per_replica_batch_size(global_batch_size, strategy):
    """The batch each replica sees; the global batch must split evenly across replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size {global_batch_size} does not divide evenly over "
            f"{replicas} replicas. Use a multiple of {replicas}."
        )
    return global_batch_size // replicas
