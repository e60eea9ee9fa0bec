"""Start N worker processes on 127.0.0.1, each with its own `TF_CONFIG`, and watch them.

For trying multi-worker training on one machine (and for the tests): every worker runs the same
command; worker i gets `TF_CONFIG = {"cluster": {"worker": [127.0.0.1:<free port> x N]},
"task": {"type": "worker", "index": i}}`. Their output (stdout and stderr together) goes to
`<log_dir>/worker-<i>.log` and, prefixed with `[worker i]`, to this process's output if
`echo=True`.

When a worker fails (non-zero exit), the others get `grace_seconds` to notice by themselves (a
multi-worker job stops within about 10 s of losing a peer, with a clear error), then are
killed; past `timeout` seconds every worker is killed. TensorFlow catches SIGTERM (its
preemption notifier), so stopping means SIGKILL.
"""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


@dataclasses.dataclass
class LaunchResult:
    """What happened to the workers of one launch.

    Attributes:
        returncodes: list of int, one per worker (negative: killed by that signal).
        log_paths: list of str, one log file per worker.
        seconds: float. Wall time of the whole launch.
        exit_seconds: list of float, when each worker exited (seconds after the launch).
        timed_out: bool. The launch hit its `timeout` and killed the workers.
        killed: list of int. Workers the launcher killed (after another failed, or timeout).
        summary: str. One line per worker, for people.
    """

    returncodes: list
    log_paths: list
    seconds: float
    exit_seconds: list
    timed_out: bool
    killed: list
    summary: str

    @property
    def ok(self):
        return all(code == 0 for code in self.returncodes)

    def log(self, index):
        """The text of worker `index`'s log."""
        with open(self.log_paths[index], encoding="utf-8", errors="replace") as file:
            return file.read()


def free_ports(count, host="127.0.0.1"):
    """`count` distinct TCP ports free on `host` right now (held open until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(num_workers, host="127.0.0.1", ports=None):
    """The `TF_CONFIG` of each of `num_workers` workers on `host` (free ports by default)."""
    ports = ports or free_ports(num_workers, host)
    workers = [f"{host}:{port}" for port in ports]
    return [
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        for i in range(num_workers)
    ]


def _describe(code):
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"exited with code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"exited with code {code}"
    return f"exited with code {code}"


def _last_error_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = [line.strip() for line in file.read().splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if "Error" in line or "watchdog" in line or "error" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""


def _pump(stream, log_path, prefix, echo):
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            log.write(line)
            log.flush()
            if echo:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()
    stream.close()


def launch_workers(
    command,
    num_workers=2,
    timeout=600.0,
    grace_seconds=30.0,
    log_dir=None,
    env=None,
    worker_env=None,
    cwd=None,
    echo=False,
    pin_cores=False,
):
    """Runs `command` as `num_workers` local workers; returns a `LaunchResult`.

    Args:
        command: list of str. The command every worker runs (e.g. `[sys.executable, "-m",
            "workflows", "pretrain", ...]`).
        num_workers: int. Defaults to `2`.
        timeout: float. Seconds before every worker still running is killed. Defaults to `600`.
        grace_seconds: float. After a worker fails, seconds the others get to stop by
            themselves before they are killed. Defaults to `30`.
        log_dir: str or None. Where `worker-<i>.log` go. Defaults to a new temporary folder.
        env: dict or None. Environment of every worker. Defaults to `os.environ`.
        worker_env: function `index -> dict` or None. Extra variables for one worker (e.g.
            to make worker 1 fail on purpose).
        cwd: str or None. Working folder of the workers.
        echo: bool. Also print the workers' output, prefixed `[worker i]`. Defaults to False.
        pin_cores: bool. Pin worker i to CPU core i (mod the cores this process may use), and
            give it one intra-op thread: an honest "one core per worker" measurement.

    Returns:
        `LaunchResult`.
    """
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"`num_workers` must be a positive integer. Received: {num_workers!r}")
    if not command:
        raise ValueError("`command` is empty; give the command every worker runs.")
    log_dir = log_dir or tempfile.mkdtemp(prefix="keras_transformer-launch-")
    os.makedirs(log_dir, exist_ok=True)
    configs = local_tf_configs(num_workers)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    start = time.monotonic()
    processes, pumps, log_paths = [], [], []
    for index, config in enumerate(configs):
        worker_environ = dict(os.environ if env is None else env)
        worker_environ["TF_CONFIG"] = json.dumps(config)
        worker_environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        worker_environ.setdefault("PYTHONUNBUFFERED", "1")
        preexec = None
        if pin_cores and cores:
            core = cores[index % len(cores)]
            worker_environ["TF_NUM_INTRAOP_THREADS"] = "1"
            worker_environ["TF_NUM_INTEROP_THREADS"] = "1"
            preexec = lambda core=core: os.sched_setaffinity(0, {core})  # noqa: E731
        if worker_env:
            worker_environ.update(worker_env(index))
        log_path = os.path.join(log_dir, f"worker-{index}.log")
        process = subprocess.Popen(
            list(command),
            env=worker_environ,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec,
        )
        pump = threading.Thread(
            target=_pump, args=(process.stdout, log_path, f"[worker {index}] ", echo), daemon=True
        )
        pump.start()
        processes.append(process)
        pumps.append(pump)
        log_paths.append(log_path)

    killed, timed_out, failed_at = [], False, None
    exit_seconds = [None] * num_workers
    while [p.poll() for p in processes].count(None):  # poll every worker, every time
        now = time.monotonic()
        for index, process in enumerate(processes):
            if process.returncode is not None and exit_seconds[index] is None:
                exit_seconds[index] = now - start
        if now - start > timeout:
            timed_out = True
            break
        if failed_at is None and any(p.returncode not in (None, 0) for p in processes):
            failed_at = now
        if failed_at is not None and now - failed_at > grace_seconds:
            break
        time.sleep(0.1)
    for index, process in enumerate(processes):
        if process.poll() is None:
            process.kill()
            process.wait()
            killed.append(index)
        if exit_seconds[index] is None:
            exit_seconds[index] = time.monotonic() - start
    for pump in pumps:
        pump.join(timeout=10)
    seconds = time.monotonic() - start
    codes = [p.returncode for p in processes]
    lines = []
    for index, code in enumerate(codes):
        line = f"worker {index} {_describe(code)} after {exit_seconds[index]:.1f} s"
        if index in killed:
            reason = "timeout" if timed_out else "another worker failed"
            line += f" (killed by the launcher: {reason})"
        if code != 0:
            last = _last_error_line(log_paths[index])
            if last:
                line += f": {last}"
        lines.append(line)
    if timed_out:
        lines.insert(0, f"timed out after {timeout:g} s")
    summary = "\n".join(lines)
    return LaunchResult(codes, log_paths, seconds, exit_seconds, timed_out, killed, summary)
