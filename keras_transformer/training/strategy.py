"""The old import path of `multi_worker_strategy` and the worker checks; only re-exports.

The code moved: the strategy to `keras_transformer.distribute` (one home for every strategy),
the checks across workers (config fingerprints, all-gather, broadcast from the chief, the
process watchdog) to `keras_transformer.training.agreement`. This module keeps
`from keras_transformer.training.strategy import ...` working for code written before; new code
imports from those two modules (or from `keras_transformer.training`).
"""

from keras_transformer.distribute import multi_worker_strategy
from keras_transformer.training.agreement import (
    ConfigMismatchError,
    broadcast_from_chief,
    check_same_config,
    fingerprint,
    gather_from_workers,
    process_watchdog,
)

__all__ = [
    "ConfigMismatchError",
    "broadcast_from_chief",
    "check_same_config",
    "fingerprint",
    "gather_from_workers",
    "multi_worker_strategy",
    "process_watchdog",
]
