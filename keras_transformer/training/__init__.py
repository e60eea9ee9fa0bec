"""Training on one device or many workers: a Keras-compatible loop, cluster settings, launcher.

- `fit` / `evaluate`: Keras's `model.fit` / `model.evaluate`, also under
  `MultiWorkerMirroredStrategy` (where Keras 3's own fail), with resumable checkpoints.
- `multi_worker_strategy`: the strategy, created in bounded time from the cluster's settings.
- `resolve_cluster` / `configure_cluster`: `TF_CONFIG`, SageMaker and `--workers` into one
  validated `TF_CONFIG`; `is_chief`, `worker_temp_dir` for who writes what.
- `launch_workers`: N local worker processes on 127.0.0.1 (also `python -m
  keras_transformer.training.launch --workers N -- command ...`).
"""

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
from keras_transformer.training.strategy import (
    ConfigMismatchError,
    check_same_config,
    multi_worker_strategy,
)

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
