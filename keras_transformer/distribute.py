"""Every `tf.distribute` strategy from one place, and the batch arithmetic that goes with it.

Names for `get_strategy`: `auto`, `cpu`, `one_device`, `mirrored`, `multi_worker`, `tpu`.

- `auto`: `multi_worker` when the cluster settings (`TF_CONFIG`, SageMaker's `SM_HOSTS`, or
  `training.configure_cluster`'s `--workers`) name more than one worker, `mirrored` when
  several GPUs are visible, otherwise the default (one device) strategy.
- `cpu`: one CPU device. `one_device`: the first GPU if there is one, else the CPU.
- `mirrored`: synchronous data parallelism over the local devices (all GPUs, or the logical CPU
  devices made with `split_cpu`). Its all-reduce comes from `cross_device_ops_for`: NCCL over
  GPUs where this TensorFlow has NCCL's kernel, hierarchical copy over GPUs otherwise,
  TensorFlow's own choice over CPU devices.
- `multi_worker`: synchronous data parallelism over several hosts, from the cluster settings
  (`multi_worker_strategy`, NCCL collectives on GPU workers: `communication_options`);
  created once per process, before any other TensorFlow op runs.
  Train with `keras_transformer.training.fit` (Keras 3's `model.fit` fails under it).
- `tpu`: a TPU system, found by `TPUClusterResolver` (or `tpu_address`).

Build and compile models inside `strategy.scope()`; the global batch is split across replicas
(`per_replica_batch_size`). `strategy_plan` says what `get_strategy` would build (the strategy,
its devices, its all-reduce) without building it.

Who owns what:
- here: making strategies (`get_strategy`, `strategy_plan`, `cross_device_ops_for`,
  `multi_worker_strategy`, `split_cpu`) and `per_replica_batch_size`;
- `keras_transformer.training.cluster`: reading the cluster (`TF_CONFIG`, SageMaker,
  `--workers`), who is chief (plain Python, no TensorFlow);
- `keras_transformer.training.agreement`: what workers check and share once the strategy
  exists (config fingerprints, all-gather, broadcast from the chief) and this process's
  watchdog; `keras_transformer.training.watchdog`: the watchdog process itself;
- `keras_transformer.training` (`fit`, `evaluate`): the loop that trains under any of them.

This module imports `training.cluster` and `training.agreement`; `keras_transformer.training`
never imports it at import time (it re-exports `multi_worker_strategy` lazily), so there is no
import cycle. `keras_transformer.training.strategy`, the old home of `multi_worker_strategy`,
only re-exports.
"""

import dataclasses
import json
import os
import sys

import tensorflow as tf
from tensorflow.python.framework import kernels

from keras_transformer.training.agreement import process_watchdog
from keras_transformer.training.cluster import configure_cluster, resolve_cluster

STRATEGIES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")

# The all-reduce of `mirrored` (`cross_device_ops_for`); `KT_CROSS_DEVICE_OPS` overrides `auto`.
CROSS_DEVICE_OPS = ("auto", "nccl", "hierarchical_copy", "reduction_to_one_device", "default")
CROSS_DEVICE_OPS_VARIABLE = "KT_CROSS_DEVICE_OPS"

# TensorFlow allows one `MultiWorkerMirroredStrategy` per process: later calls reuse it.
_MULTI_WORKER = None


@dataclasses.dataclass(frozen=True)
class StrategyPlan:
    """What `get_strategy` builds for a name, decided without building it.

    Args:
        name: str. The strategy: `"default"` (TensorFlow's default, one device), `"cpu"`,
            `"one_device"`, `"mirrored"`, `"multi_worker"` or `"tpu"` (`"auto"` resolved).
        devices: tuple of str. The devices of `one_device` and `mirrored`; empty otherwise.
        cross_device_ops: `tf.distribute.CrossDeviceOps` or None. The all-reduce of
            `mirrored`; None lets TensorFlow choose (a collective all-reduce).
    """

    name: str
    devices: tuple = ()
    cross_device_ops: object = None


def strategy_plan(name="auto", devices=None, cross_device_ops=None):
    """Decides the strategy `get_strategy(name, devices)` builds, without building it.

    Reads the cluster settings and the visible devices (`tf.config.list_logical_devices`),
    which starts TensorFlow's runtime unless the name is `multi_worker` or `auto` resolves to it.

    Args:
        name: str. One of `STRATEGIES`. Defaults to `"auto"`.
        devices: list of device names for `mirrored`. Defaults to all local GPUs, or all
            logical CPUs when there is no GPU.
        cross_device_ops: str or None. One of `CROSS_DEVICE_OPS`, for `mirrored`. Defaults to
            `KT_CROSS_DEVICE_OPS`, else `"auto"` (see `cross_device_ops_for`).

    Returns:
        `StrategyPlan`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {STRATEGIES}.")
    if name == "auto":
        if resolve_cluster().is_multi_worker:  # TF_CONFIG, --workers or SageMaker
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            return StrategyPlan("default")
    if name == "cpu":
        return StrategyPlan("cpu", ("/cpu:0",))
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return StrategyPlan("one_device", (gpus[0].name if gpus else "/cpu:0",))
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        devices = tuple(devices)
        return StrategyPlan("mirrored", devices, cross_device_ops_for(devices, cross_device_ops))
    return StrategyPlan(name)


def get_strategy(
    name="auto", devices=None, tpu_address=None, replicas_per_worker=None, cross_device_ops=None
):
    """Returns the `tf.distribute.Strategy` for a name.

    Args:
        name: str. One of `STRATEGIES`. Defaults to `"auto"`.
        devices: list of device names for `mirrored` (e.g. `["/cpu:0", "/cpu:1"]`). Defaults
            to all local GPUs, or all logical CPUs when there is no GPU.
        tpu_address: str. The TPU to connect to, for `tpu`. Defaults to the environment's.
        replicas_per_worker: int or None. For `multi_worker` on CPU-only hosts: split each
            worker's CPU into this many replicas (see `multi_worker_strategy`).
        cross_device_ops: str or None. The all-reduce of `mirrored`, one of
            `CROSS_DEVICE_OPS`. Defaults to `KT_CROSS_DEVICE_OPS`, else `"auto"`.

    Returns:
        A `tf.distribute.Strategy`.
    """
    plan = strategy_plan(name, devices, cross_device_ops)
    if plan.name == "default":
        return tf.distribute.get_strategy()
    if plan.name in ("cpu", "one_device"):
        return tf.distribute.OneDeviceStrategy(plan.devices[0])
    if plan.name == "mirrored":
        return tf.distribute.MirroredStrategy(
            list(plan.devices), cross_device_ops=plan.cross_device_ops
        )
    if plan.name == "multi_worker":
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


def nccl_available():
    """Whether NCCL can all-reduce here: Linux, and this TensorFlow registers NCCL's GPU kernel.

    The pip `tensorflow` wheel for Linux is built with CUDA and NCCL and registers the
    `NcclAllReduce` kernel even on a machine without GPUs; builds for macOS and Windows do not.
    Whether the GPUs can talk over NCCL is up to the driver: this only says TensorFlow can ask.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        registered = kernels.get_registered_kernels_for_op("NcclAllReduce")
    except Exception:  # noqa: BLE001 (an op unknown to this build)
        return False
    return any(kernel.device_type == "GPU" for kernel in registered.kernel)


def _is_gpu(device):
    return "GPU" in device.upper().rsplit("/", 1)[-1]


def cross_device_ops_for(devices, choice=None):
    """The all-reduce for a `MirroredStrategy` over `devices`.

    With `choice` `"auto"`:
    - all devices GPUs: `tf.distribute.NcclAllReduce` when `nccl_available()` and the GPUs are
      physical ones (NCCL does not run on virtual GPUs made with
      `tf.config.set_logical_device_configuration`), else `tf.distribute.HierarchicalCopyAllReduce`;
    - any CPU device (the logical CPUs of `split_cpu`, or CPUs mixed with GPUs): None, so that
      TensorFlow keeps its own choice (a collective all-reduce over CPUs; reduction to one
      device when CPUs and GPUs mix).

    Under XLA (`jit_compile`) with all devices GPUs, `MirroredStrategy` itself replaces the
    choice by its collective all-reduce (which uses NCCL on physical GPUs) and logs a warning.

    Args:
        devices: sequence of str. The strategy's devices (`"/gpu:0"`, `"/device:CPU:1"`, ...).
        choice: str or None. One of `CROSS_DEVICE_OPS`: `nccl`, `hierarchical_copy`,
            `reduction_to_one_device` force one; `default` leaves it to TensorFlow. Defaults to
            the `KT_CROSS_DEVICE_OPS` environment variable, else `"auto"`.

    Returns:
        A `tf.distribute.CrossDeviceOps`, or None (TensorFlow's own choice).

    Raises:
        ValueError: an unknown choice, or `nccl` without NCCL or over non-GPU devices.
    """
    source = "cross_device_ops"
    if choice is None:
        choice = os.environ.get(CROSS_DEVICE_OPS_VARIABLE) or "auto"
        source = CROSS_DEVICE_OPS_VARIABLE
    if choice not in CROSS_DEVICE_OPS:
        raise ValueError(
            f"Unknown all-reduce {source}={choice!r}. Expected one of {CROSS_DEVICE_OPS}."
        )
    all_gpus = bool(devices) and all(_is_gpu(d) for d in devices)
    if choice == "auto":
        if not all_gpus:
            return None
        physical = len(tf.config.list_physical_devices("GPU"))
        virtual = len(tf.config.list_logical_devices("GPU")) != physical
        choice = "nccl" if nccl_available() and not virtual else "hierarchical_copy"
    if choice == "nccl" and not (all_gpus and nccl_available()):
        raise ValueError(
            f"{source}='nccl' needs GPU devices and a TensorFlow with NCCL (Linux). Received: "
            f"devices={list(devices)}, NCCL available: {nccl_available()}. Use "
            "'hierarchical_copy' or 'auto'."
        )
    return {
        "nccl": lambda: tf.distribute.NcclAllReduce(),
        "hierarchical_copy": lambda: tf.distribute.HierarchicalCopyAllReduce(),
        "reduction_to_one_device": lambda: tf.distribute.ReductionToOneDevice(),
        "default": lambda: None,
    }[choice]()


def multi_worker_strategy(
    cluster=None, startup_timeout=300.0, collective_timeout=None, replicas_per_worker=None
):
    """Creates a `MultiWorkerMirroredStrategy` for this cluster, in bounded time.

    Must run before any other TensorFlow op in the process (TensorFlow fixes its devices and
    its cluster on the first op). Every worker calls it with the same arguments.

    Args:
        cluster: `ClusterInfo` or None. Defaults to `configure_cluster()` (`TF_CONFIG`,
            SageMaker, ...), which also writes `TF_CONFIG`.
        startup_timeout: float. Seconds to wait for every worker to join; past it this worker
            is stopped with a message naming the workers that do not answer. `None`: wait
            forever. Defaults to `300`.
        collective_timeout: float or None. Per-collective timeout (`CommunicationOptions`).
            Defaults to `None`: a dead peer is detected by TensorFlow's heartbeats (about 10 s
            here) and a hung one by `fit`'s step watchdog.
        replicas_per_worker: int or None. On a CPU-only host, split the CPU into this many
            logical devices and run one replica on each. Ignored when GPUs are present (every
            local GPU is a replica). Defaults to one replica per worker.

    Returns:
        `tf.distribute.MultiWorkerMirroredStrategy` with `num_replicas_in_sync` = workers x
        local replicas.
    """
    if cluster is None:
        cluster = configure_cluster()
    elif cluster.is_multi_worker:
        os.environ["TF_CONFIG"] = json.dumps(cluster.tf_config())  # what TensorFlow reads
    watchdog = process_watchdog(cluster.peers) if cluster.is_multi_worker else None
    if watchdog:
        watchdog.arm(
            startup_timeout,
            f"worker {cluster.index} of {cluster.num_workers} ({cluster.workers[cluster.index]}) "
            "was still waiting for the other workers to join the cluster; check that every "
            "worker was started, with the same worker list, and that the ports are open",
        )
    strategy = _create(communication_options(collective_timeout), replicas_per_worker)
    if cluster.is_multi_worker:
        count = _barrier(strategy)
        if count != strategy.num_replicas_in_sync:
            raise RuntimeError(
                f"The barrier counted {count} replicas, expected {strategy.num_replicas_in_sync}."
            )
    if watchdog:
        watchdog.disarm()
    return strategy


def communication_options(collective_timeout=None):
    """The collectives' settings of `multi_worker_strategy`: NCCL on GPU workers.

    NCCL when this host has physical GPUs and `nccl_available()`; otherwise TensorFlow's `AUTO`
    (CPU workers all-reduce over gRPC). Reads only the physical devices, so TensorFlow's runtime
    is not started.

    Args:
        collective_timeout: float or None. Seconds before a collective gives up; None: never.

    Returns:
        `tf.distribute.experimental.CommunicationOptions`.
    """
    implementations = tf.distribute.experimental.CommunicationImplementation
    gpu_workers = bool(tf.config.list_physical_devices("GPU")) and nccl_available()
    return tf.distribute.experimental.CommunicationOptions(
        implementation=implementations.NCCL if gpu_workers else implementations.AUTO,
        timeout_seconds=collective_timeout,
    )


def _create(options, replicas_per_worker):
    if (replicas_per_worker or 1) == 1 or tf.config.list_physical_devices("GPU"):
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    # CPU only: TensorFlow gives each worker one CPU replica. Split the CPU into logical devices
    # and have the strategy use them all (the layout a host with several GPUs would have).
    from tensorflow.python.distribute import collective_all_reduce_strategy as car

    split_cpu(replicas_per_worker)  # configures only: the strategy starts the runtime
    extended = car.CollectiveAllReduceExtended
    original = extended._initialize_local_devices

    def local_cpus(self, cluster_resolver, worker_device):
        return tuple(f"{worker_device}/device:CPU:{i}" for i in range(replicas_per_worker)), "CPU"

    extended._initialize_local_devices = local_cpus
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    finally:
        extended._initialize_local_devices = original


def _barrier(strategy):
    @tf.function
    def count():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    return int(count().numpy())


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices, one replica each.

    For `mirrored` on a host without GPUs (`tf.distribute.MirroredStrategy(split_cpu(2))`), and
    for `multi_worker_strategy(replicas_per_worker=k)`. It only configures the devices: it does
    not start TensorFlow's runtime, so a `MultiWorkerMirroredStrategy` can still be created
    after it. Must run before TensorFlow initialises its devices (before any op runs); calling
    it again later with the same count does nothing.

    Args:
        num_devices: int. Logical CPU devices to make, at least 1.

    Returns:
        list of str, the devices' names (`"/device:CPU:0"`, ...).

    Raises:
        ValueError: `num_devices` is not a positive integer.
        RuntimeError: TensorFlow's devices are already initialised, with another split.
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(
            f"`num_devices` must be a positive integer. Received: num_devices={num_devices!r}"
        )
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot split the CPU into {num_devices} devices: TensorFlow is already initialised "
            f"({error}). Call `split_cpu` (or create the strategy) first, before any other "
            "TensorFlow op runs."
        ) from error
    # The names TensorFlow will give them; listing them would start the runtime.
    return [f"/device:CPU:{i}" for i in range(num_devices)]


def per_replica_batch_size(global_batch_size, strategy):
    """The batch each replica sees; the global batch must split evenly across replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size {global_batch_size} does not divide evenly over "
            f"{replicas} replicas. Use a multiple of {replicas}."
        )
    return global_batch_size // replicas
