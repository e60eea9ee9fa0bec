"""A `MultiWorkerMirroredStrategy` that starts, or fails, in bounded time; checks across workers.

- `multi_worker_strategy` reads the cluster (`cluster.configure_cluster`), creates the strategy
  under a watchdog (a peer that never starts makes TensorFlow wait forever otherwise), runs one
  barrier collective, and can give each worker several replicas (logical CPU devices) to try
  the two-level topology (workers x local devices) on one machine.
- `check_same_config` all-gathers a fingerprint of each configuration section, so workers
  started with different settings stop at once with an error naming what differs.
- `broadcast_from_chief` copies the chief's variable values to every worker (used when a
  worker could not read the checkpoint the chief resumed from).
"""

import hashlib
import json
import os

import tensorflow as tf

from keras_transformer.training.cluster import configure_cluster, current_cluster
from keras_transformer.training.watchdog import Watchdog

_WATCHDOG = None


class ConfigMismatchError(ValueError):
    """The workers of one job were started with different settings."""


def process_watchdog(peers=()):
    """The watchdog process of this worker (one per process, started on first use)."""
    global _WATCHDOG
    if _WATCHDOG is None:
        _WATCHDOG = Watchdog(peers)
    elif peers:
        _WATCHDOG.peers = list(peers)
    return _WATCHDOG


def _split_cpu(count):
    # Not `keras_transformer.distribute.split_cpu`: it lists the logical devices afterwards,
    # which starts TensorFlow's runtime, and the strategy must be created before that.
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot split the CPU into {count} devices: TensorFlow is already initialised "
            f"({error}). Create the strategy first, before any other TensorFlow op runs."
        ) from error


def _create(options, replicas_per_worker):
    if (replicas_per_worker or 1) == 1 or tf.config.list_physical_devices("GPU"):
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    # CPU only: TensorFlow gives each worker one CPU replica. Split the CPU into logical devices
    # and have the strategy use them all (the layout a host with several GPUs would have).
    from tensorflow.python.distribute import collective_all_reduce_strategy as car

    _split_cpu(replicas_per_worker)
    extended = car.CollectiveAllReduceExtended
    original = extended._initialize_local_devices

    def local_cpus(self, cluster_resolver, worker_device):
        return tuple(f"{worker_device}/device:CPU:{i}" for i in range(replicas_per_worker)), "CPU"

    extended._initialize_local_devices = local_cpus
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    finally:
        extended._initialize_local_devices = original


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
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
    strategy = _create(options, replicas_per_worker)
    if cluster.is_multi_worker:
        count = _barrier(strategy)
        if count != strategy.num_replicas_in_sync:
            raise RuntimeError(
                f"The barrier counted {count} replicas, expected {strategy.num_replicas_in_sync}."
            )
    if watchdog:
        watchdog.disarm()
    return strategy


def _barrier(strategy):
    @tf.function
    def count():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    return int(count().numpy())


def fingerprint(value):
    """A stable 31-bit fingerprint of a JSON-able value (objects: by type name)."""

    def default(obj):
        if hasattr(obj, "get_config"):
            try:
                return {type(obj).__name__: obj.get_config()}
            except (NotImplementedError, TypeError):
                pass
        return type(obj).__name__  # never `repr`: it may hold a memory address

    text = json.dumps(value, sort_keys=True, default=default)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def gather_from_workers(strategy, values):
    """All-gathers a list of int32 per worker: returns a list (one per worker) of lists."""
    local = tf.constant([values], tf.int32)  # (1, S)

    @tf.function
    def gather():
        per_replica = strategy.experimental_distribute_values_from_function(lambda _: local)
        return strategy.gather(per_replica, axis=0)  # (R, S)

    rows = gather().numpy().tolist()
    per_worker = len(rows) // max(current_cluster(strategy).num_workers, 1)
    return rows[:: max(per_worker, 1)]  # replicas are numbered worker by worker


def check_same_config(strategy, sections):
    """Stops every worker if any was started with different settings.

    Args:
        strategy: the strategy (a collective across all workers runs).
        sections: dict `{name: JSON-able value}`, e.g. `{"model": model.get_config(),
            "optimizer": ..., "training": {"epochs": 3}}`.

    Raises:
        ConfigMismatchError: naming the sections that differ and the workers that hold them.
    """
    names = list(sections)
    mine = [fingerprint(sections[name]) for name in names]
    rows = gather_from_workers(strategy, mine)
    differ = [name for j, name in enumerate(names) if len({row[j] for row in rows}) > 1]
    if differ:
        detail = "; ".join(
            f"{name} ("
            + ", ".join(f"worker {w}: {row[names.index(name)]:08x}" for w, row in enumerate(rows))
            + ")"
            for name in differ
        )
        raise ConfigMismatchError(
            f"The workers were started with different settings; these differ: {detail}. "
            "Start every worker with the same command, configuration and data."
        )


def broadcast_from_chief(strategy, variables):
    """Sets every worker's `variables` to the chief's values (one all-reduce)."""
    tf_vars = [getattr(v, "value", v) for v in variables]

    @tf.function
    def reduce_from_first_replica():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            values = [tf.cast(tf.identity(v), tf.float64) for v in tf_vars]
            values = [tf.where(first, value, tf.zeros_like(value)) for value in values]
            return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

        return strategy.run(replica_fn)

    reduced = reduce_from_first_replica()
    for variable, value in zip(tf_vars, reduced, strict=True):
        local = strategy.experimental_local_results(value)[0]
        variable.assign(tf.cast(local, variable.dtype))
