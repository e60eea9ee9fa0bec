"""Cluster settings as the platforms give them, turned into one validated `TF_CONFIG`.

Three sources, in this order of precedence:

1. a `--workers host:port,host:port` flag (with `--worker-index`, or this host found in the
   list);
2. the `TF_CONFIG` environment variable (Kubernetes operators, Vertex AI, our local launcher);
3. SageMaker's `SM_HOSTS` / `SM_CURRENT_HOST` (the first host is worker 0, the chief; every host
   listens on port 2222 unless told otherwise).

Worker 0 (or the `chief` task, when the cluster names one) is the chief: it alone writes the
final checkpoints, logs and exports. The others write into `worker_temp_dir(path)`, a private
folder the training loop removes. Everything here is plain Python: reading the cluster never
starts TensorFlow.
"""

import argparse
import dataclasses
import json
import os
import shutil
import socket

SAGEMAKER_PORT = 2222
ROLES = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """Where this process sits in the cluster.

    Attributes:
        workers: list of `"host:port"`, the chief first when the cluster has a `chief` task.
        index: int. This process's position in `workers`.
        task_type: str. `"chief"` or `"worker"`.
        task_index: int. Index within `task_type`.
        source: str. `"--workers"`, `"TF_CONFIG"`, `"SageMaker"` or `"local"` (no cluster).
        has_chief: bool. The cluster names a `chief` task (then `workers[0]`).
    """

    workers: tuple
    index: int
    task_type: str
    task_index: int
    source: str
    has_chief: bool = False

    @property
    def num_workers(self):
        return len(self.workers)

    @property
    def is_chief(self):
        return self.index == 0

    @property
    def is_multi_worker(self):
        return len(self.workers) > 1

    @property
    def peers(self):
        """The other workers' addresses."""
        return [w for i, w in enumerate(self.workers) if i != self.index]

    def tf_config(self):
        """The `TF_CONFIG` dict describing this cluster and task."""
        if self.has_chief:
            cluster = {"chief": [self.workers[0]], "worker": list(self.workers[1:])}
        else:
            cluster = {"worker": list(self.workers)}
        cluster = {role: hosts for role, hosts in cluster.items() if hosts}
        return {"cluster": cluster, "task": {"type": self.task_type, "index": self.task_index}}


LOCAL = ClusterInfo(
    workers=("localhost:0",), index=0, task_type="worker", task_index=0, source="local"
)


def parse_address(address, what="worker address"):
    """Checks one `"host:port"`; returns it stripped. Raises `ValueError` naming the problem."""
    address = str(address).strip()
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"Invalid {what} {address!r}. Expected 'host:port' with a port in 1..65535, e.g. "
            "'10.0.0.2:2222'."
        )
    return address


def parse_workers(text):
    """`"h1:p1,h2:p2"` (or a list) -> a tuple of checked addresses, without duplicates."""
    items = text.split(",") if isinstance(text, str) else list(text)
    workers = tuple(parse_address(item) for item in items if str(item).strip())
    if not workers:
        raise ValueError(
            f"--workers lists no worker. Received: {text!r}. Expected 'host:port,host:port'."
        )
    duplicates = sorted({w for w in workers if workers.count(w) > 1})
    if duplicates:
        raise ValueError(
            f"--workers lists {duplicates} more than once. Every worker needs its own host:port."
        )
    return workers


def parse_tf_config(raw):
    """Validates a `TF_CONFIG` (JSON text or dict) for synchronous multi-worker training.

    Returns:
        `ClusterInfo`.

    Raises:
        ValueError: malformed JSON, a missing `cluster` or `task`, a role other than `chief`
            and `worker` (parameter servers and evaluators are not supported), a bad
            address, a task index outside the cluster, duplicated addresses.
    """
    example = (
        '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if isinstance(raw, str):
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"TF_CONFIG is not valid JSON ({error}). Received: {raw[:200]!r}. "
                f"Expected e.g. {example}."
            ) from error
    else:
        config = raw
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError(
            f"TF_CONFIG needs a 'cluster' object. Received: {config!r}. Expected e.g. {example}."
        )
    cluster = config["cluster"]
    unsupported = sorted(set(cluster) - set(ROLES))
    if unsupported:
        raise ValueError(
            f"TF_CONFIG names the role(s) {unsupported}; synchronous multi-worker training "
            f"uses only {list(ROLES)}. Remove parameter servers and evaluators."
        )
    for role, hosts in cluster.items():
        if not isinstance(hosts, list) or not hosts:
            raise ValueError(
                f"TF_CONFIG cluster[{role!r}] must be a non-empty list of "
                f"'host:port'. Received: {hosts!r}"
            )
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG names {len(cluster['chief'])} chiefs; at most one.")
    workers = tuple(
        parse_address(h, f"TF_CONFIG {role} address")
        for role in ROLES
        for h in cluster.get(role, [])
    )
    if not workers:
        raise ValueError(f"TF_CONFIG names no chief or worker. Expected e.g. {example}.")
    duplicates = sorted({w for w in workers if workers.count(w) > 1})
    if duplicates:
        raise ValueError(f"TF_CONFIG lists {duplicates} more than once.")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(
            f"TF_CONFIG needs a 'task' with 'type' and 'index'. Received: "
            f"task={task!r}. Expected e.g. {example}."
        )
    task_type, task_index = task["type"], task.get("index", 0)
    if task_type not in cluster:
        raise ValueError(
            f"TF_CONFIG task type {task_type!r} is not in the cluster {sorted(cluster)}."
        )
    if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG task index {task_index!r} is outside the {len(cluster[task_type])} "
            f"{task_type} address(es)."
        )
    has_chief = "chief" in cluster
    offset = 1 if has_chief and task_type == "worker" else 0
    return ClusterInfo(workers, offset + task_index, task_type, task_index, "TF_CONFIG", has_chief)


def _local_names():
    names = {"localhost", "127.0.0.1"}
    try:
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        names |= set(socket.gethostbyname_ex(hostname)[2])
    except OSError:
        pass
    return names


def from_workers(workers, worker_index=None):
    """`ClusterInfo` for a `--workers` list; finds this host in it when no index is given."""
    workers = parse_workers(workers)
    if worker_index is None:
        names = _local_names()
        matches = [i for i, w in enumerate(workers) if w.rpartition(":")[0] in names]
        if len(matches) != 1:
            raise ValueError(
                f"Cannot tell which of --workers {','.join(workers)} is this process "
                f"({len(matches)} match this host). Pass --worker-index (0 for the chief)."
            )
        worker_index = matches[0]
    if not isinstance(worker_index, int) or not 0 <= worker_index < len(workers):
        raise ValueError(
            f"--worker-index must be in 0..{len(workers) - 1}. Received: {worker_index!r}"
        )
    return ClusterInfo(workers, worker_index, "worker", worker_index, "--workers")


def from_sagemaker(environ, port=None):
    """`ClusterInfo` from `SM_HOSTS` / `SM_CURRENT_HOST`; `None` when they are not set."""
    if "SM_HOSTS" not in environ:
        return None
    try:
        hosts = json.loads(environ["SM_HOSTS"])
    except json.JSONDecodeError as error:
        raise ValueError(
            f"SM_HOSTS is not a JSON list ({error}). Received: {environ['SM_HOSTS'][:200]!r}"
        ) from error
    current = environ.get("SM_CURRENT_HOST")
    if not isinstance(hosts, list) or not hosts or current not in hosts:
        raise ValueError(
            f"SM_CURRENT_HOST={current!r} is not one of SM_HOSTS={hosts!r}; SageMaker sets "
            "both, so the job's environment is inconsistent."
        )
    port = port or int(environ.get("KT_WORKER_PORT", SAGEMAKER_PORT))
    workers = tuple(parse_address(f"{host}:{port}") for host in hosts)  # algo-1 first
    index = hosts.index(current)
    return ClusterInfo(workers, index, "worker", index, "SageMaker")


def resolve_cluster(workers=None, worker_index=None, environ=None):
    """Reads the cluster from `--workers`, `TF_CONFIG` or SageMaker (in that order).

    Args:
        workers: str or list or None. The `--workers` value.
        worker_index: int or None. The `--worker-index` value.
        environ: mapping. Defaults to `os.environ`.

    Returns:
        `ClusterInfo`; `LOCAL` (one worker) when nothing describes a cluster.
    """
    environ = os.environ if environ is None else environ
    if workers:
        return from_workers(workers, worker_index)
    if environ.get("TF_CONFIG"):
        return parse_tf_config(environ["TF_CONFIG"])
    return from_sagemaker(environ) or LOCAL


def configure_cluster(workers=None, worker_index=None, environ=None):
    """Resolves the cluster and writes it to `TF_CONFIG` (what TensorFlow reads).

    Call it before creating a strategy. Returns the `ClusterInfo`.
    """
    environ = os.environ if environ is None else environ
    info = resolve_cluster(workers, worker_index, environ)
    if info.is_multi_worker:
        environ["TF_CONFIG"] = json.dumps(info.tf_config())
    return info


def add_cluster_arguments(parser):
    """Adds `--workers` and `--worker-index` to an `argparse` parser."""
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--workers",
        default=None,
        help="host:port of every worker, comma-separated, the chief first "
        "(else TF_CONFIG or SageMaker's SM_HOSTS are read)",
    )
    group.add_argument(
        "--worker-index",
        type=int,
        default=None,
        help="this process's position in --workers (default: this host's)",
    )
    return parser


def cluster_from_args(args):
    """`configure_cluster` from parsed `add_cluster_arguments` flags."""
    return configure_cluster(getattr(args, "workers", None), getattr(args, "worker_index", None))


def current_cluster(strategy=None):
    """This process's `ClusterInfo`, from a strategy's cluster resolver or the environment."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.task_type is not None:
        spec = resolver.cluster_spec().as_dict()
        if spec:
            return parse_tf_config(
                {"cluster": spec, "task": {"type": resolver.task_type, "index": resolver.task_id}}
            )
    return resolve_cluster()


def is_chief(strategy=None):
    """True on the process that writes final outputs (worker 0, or the `chief` task)."""
    return current_cluster(strategy).is_chief


def worker_temp_dir(path, strategy=None, cluster=None):
    """Where this worker writes what would go to `path`.

    The chief gets `path` itself; worker i gets `<path>/.worker-<i>-tmp`, a private folder to
    remove with `remove_worker_temp_dir` once written (all workers must still write, because
    saving a distributed checkpoint is a collective step).
    """
    cluster = cluster or current_cluster(strategy)
    if cluster.is_chief:
        return path
    return os.path.join(path, f".worker-{cluster.index}-tmp")


def remove_worker_temp_dir(path, strategy=None, cluster=None):
    """Removes the folder `worker_temp_dir` gave a non-chief worker (nothing on the chief)."""
    cluster = cluster or current_cluster(strategy)
    if not cluster.is_chief:
        shutil.rmtree(worker_temp_dir(path, cluster=cluster), ignore_errors=True)


def sagemaker_paths(environ=None):
    """SageMaker's folders: `model_dir` (SM_MODEL_DIR), `output_data_dir`, and `channels`.

    Returns:
        dict with `"model_dir"` and `"output_data_dir"` (None outside SageMaker) and
        `"channels"`: `{name: folder}` from every `SM_CHANNEL_<NAME>` (name lower-cased).

    Example:
    >>> sagemaker_paths({"SM_MODEL_DIR": "/opt/ml/model",
    ...                  "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training"})["channels"]
    {'training': '/opt/ml/input/data/training'}
    """
    environ = os.environ if environ is None else environ
    channels = {
        key[len("SM_CHANNEL_") :].lower(): value
        for key, value in environ.items()
        if key.startswith("SM_CHANNEL_")
    }
    return {
        "model_dir": environ.get("SM_MODEL_DIR"),
        "output_data_dir": environ.get("SM_OUTPUT_DATA_DIR"),
        "channels": dict(sorted(channels.items())),
    }


def main(argv=None):
    """`python -m keras_transformer.training.cluster [--workers ...]`: prints the cluster."""
    parser = add_cluster_arguments(argparse.ArgumentParser(description=main.__doc__))
    args = parser.parse_args(argv)
    info = resolve_cluster(args.workers, args.worker_index)
    summary = {
        "source": info.source,
        "tf_config": info.tf_config(),
        "is_chief": info.is_chief,
        **sagemaker_paths(),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
