"""A `tf.distribute` strategy from a name, and the batch arithmetic that goes with it.

Names: `auto`, `cpu`, `one_device`, `mirrored`, `multi_worker`, `tpu`.

- `auto`: `multi_worker` when the cluster settings (`TF_CONFIG`, SageMaker's `SM_HOSTS`, or
  `training.configure_cluster`'s `--workers`) name more than one worker, `mirrored` when
  several GPUs are visible, otherwise the default (one device) strategy.
- `cpu`: one CPU device. `one_device`: the first GPU if there is one, else the CPU.
- `mirrored`: synchronous data parallelism over the local devices (all GPUs, or the logical CPU
  devices made with `tf.config.set_logical_device_configuration`).
- `multi_worker`: synchronous data parallelism over several hosts, from the cluster settings;
  created once per process, before any other TensorFlow op runs. Train with
  `keras_transformer.training.fit` (Keras 3's `model.fit` fails under this strategy).
- `tpu`: a TPU system, found by `TPUClusterResolver` (or `tpu_address`).

Build and compile models inside `strategy.scope()`; the global batch is split across replicas.
"""

import tensorflow as tf

from keras_transformer.training.cluster import resolve_cluster
from keras_transformer.training.strategy import multi_worker_strategy

STRATEGIES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")

# TensorFlow allows one `MultiWorkerMirroredStrategy` per process: later calls reuse it.
_MULTI_WORKER = None


def get_strategy(name="auto", devices=None, tpu_address=None, replicas_per_worker=None):
    """Returns the `tf.distribute.Strategy` for a name.

    Args:
        name: str. One of `STRATEGIES`. Defaults to `"auto"`.
        devices: list of device names for `mirrored` (e.g. `["/cpu:0", "/cpu:1"]`). Defaults
            to all local GPUs, or all logical CPUs when there is no GPU.
        tpu_address: str. The TPU to connect to, for `tpu`. Defaults to the environment's.
        replicas_per_worker: int or None. For `multi_worker` on CPU-only hosts: split each
            worker's CPU into this many replicas (see `training.multi_worker_strategy`).

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {STRATEGIES}.")
    if name == "auto":
        if resolve_cluster().is_multi_worker:  # TF_CONFIG, --workers or SageMaker
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
        global _MULTI_WORKER
        if _MULTI_WORKER is None:  # validates the cluster; starts, or fails, in bounded time
            _MULTI_WORKER = multi_worker_strategy(replicas_per_worker=replicas_per_worker)
        return _MULTI_WORKER
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
