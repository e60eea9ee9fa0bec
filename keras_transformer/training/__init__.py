"""Training on one device or many workers: a Keras-compatible loop, cluster settings, launcher.

- `fit` / `evaluate`: Keras's `model.fit` / `model.evaluate`, also under
  `MultiWorkerMirroredStrategy` (where Keras 3's own fail), with resumable checkpoints.
- `multi_worker_strategy`: the strategy, created in bounded time from the cluster's settings
  (it lives in `keras_transformer.distribute`, with every other strategy; re-exported here).
- `resolve_cluster` / `configure_cluster`: `TF_CONFIG`, SageMaker and `--workers` into one
  validated `TF_CONFIG`; `is_chief`, `worker_temp_dir` for who writes what.
- `check_same_config` / `ConfigMismatchError`: workers started with different settings stop.
- `launch_workers`: N local worker processes on 127.0.0.1 (also `python -m
  keras_transformer.training.launch --workers N -- command ...`).

Which module owns what:
- `loop`: `fit`, `evaluate`, `WorkerLostError`; `steps`: the compiled train and test steps;
  `data`: each replica's rows of every global batch; `callbacks`: chief-only writers and
  `BackupAndRestore`; `checkpoints`: the resumable training state.
- `cluster`: the cluster settings and who is chief (plain Python, no TensorFlow).
- `agreement`: what the workers check and share (config fingerprints, all-gather, broadcast
  from the chief) and this process's watchdog; `watchdog`: the watchdog process (standard
  library only).
- `launcher` / `launch`: local worker processes, from Python and from the command line.
- `strategy`: the old import path of `multi_worker_strategy` and the checks; re-exports only.
- Strategies themselves (`get_strategy`, `multi_worker_strategy`, `split_cpu`,
  `per_replica_batch_size`): `keras_transformer.distribute`.
"""

from keras_transformer.training.agreement import ConfigMismatchError, check_same_config
from keras_transformer.training.cluster import (
    ClusterInfo,
    add_cluster_arguments,
    cluster_from_args,
    configure_cluster,
    is_chief,
    remove_worker_temp_dir,
    resolve_cluster,
    sagemaker_paths,
    worker_temp_dir,
)
from keras_transformer.training.launcher import LaunchResult, launch_workers
from keras_transformer.training.loop import WorkerLostError, evaluate, fit

__all__ = [
    "ClusterInfo",
    "ConfigMismatchError",
    "LaunchResult",
    "WorkerLostError",
    "add_cluster_arguments",
    "check_same_config",
    "cluster_from_args",
    "configure_cluster",
    "evaluate",
    "fit",
    "is_chief",
    "launch_workers",
    "multi_worker_strategy",
    "remove_worker_temp_dir",
    "resolve_cluster",
    "sagemaker_paths",
    "worker_temp_dir",
]


def __getattr__(name):
    # `keras_transformer.distribute` imports this package's `cluster` and `agreement`, so
    # importing it here at once would be circular: it is imported on first use instead.
    if name == "multi_worker_strategy":
        from keras_transformer.distribute import multi_worker_strategy

        return multi_worker_strategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
