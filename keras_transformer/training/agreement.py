"""What the workers of one job must agree on, and the watchdog that stops one that hangs.

- `check_same_config` all-gathers a fingerprint (`fingerprint`) of each configuration section,
  so workers started with different settings stop at once with `ConfigMismatchError` naming
  what differs.
- `gather_from_workers` all-gathers a few integers per worker (fingerprints, restored steps).
- `broadcast_from_chief` copies the chief's variable values to every worker (used when a worker
  could not read the checkpoint the chief resumed from).
- `process_watchdog` is this process's one `watchdog.Watchdog`: `multi_worker_strategy` arms it
  while the workers join, `fit` and `evaluate` while a step runs.

The strategy itself is made in `keras_transformer.distribute`.
"""

import hashlib
import json

import keras
import tensorflow as tf

from keras_transformer.training.cluster import current_cluster
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
    """Sets every worker's `variables` to the chief's values (one all-reduce).

    Args:
        strategy: the strategy (a collective across all workers runs).
        variables: list of Keras variables or `tf.Variable`s, the same list on every worker.
    """
    # A Keras variable holds a `tf.Variable` in `.value`; a `tf.Variable`'s `.value` is a method.
    tf_vars = [v.value if isinstance(v, keras.Variable) else v for v in variables]

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
