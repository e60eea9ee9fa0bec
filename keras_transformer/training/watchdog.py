"""A watchdog process: kills this worker, with a clear message, when it stops making progress.

A multi-worker job can block inside TensorFlow's C++ code with the Python interpreter lock held
(e.g. `MultiWorkerMirroredStrategy()` waiting forever for a peer that never starts), so a thread
or a signal handler in the same process never gets to run. The watchdog is therefore a separate,
tiny Python process (standard library only, no TensorFlow) that this process talks to through a
pipe: `arm(seconds, message)` starts a deadline, `kick()` restarts it, `disarm()` stops it. When
a deadline passes, the watchdog prints the message (and which peer addresses do not answer) on
this process's standard error and kills it with SIGKILL. If this process exits first, the pipe
closes and the watchdog exits too.
"""

import json
import os
import subprocess
import sys

_CHILD = r"""
import json, os, select, signal, socket, sys, time

parent = int(sys.argv[1])
deadline = None
seconds = None
message = ""
peers = []


def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except (OSError, ValueError):
        return False


def fire():
    lines = [f"[keras_transformer] watchdog: {message} (no progress for {seconds:g} s)."]
    silent = [p for p in peers if not answers(p)]
    if silent:
        lines.append("[keras_transformer] watchdog: not answering: " + ", ".join(silent) + ".")
    lines.append("[keras_transformer] watchdog: stopping this worker (SIGKILL).")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    try:
        os.kill(parent, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sys.exit(0)


buffer = b""
while True:
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        fire()
    chunk = os.read(sys.stdin.fileno(), 65536)
    if not chunk:  # the worker exited
        sys.exit(0)
    buffer += chunk
    while b"\n" in buffer:
        line, buffer = buffer.split(b"\n", 1)
        command = json.loads(line)
        if command["op"] == "arm":
            seconds, message, peers = command["seconds"], command["message"], command["peers"]
            deadline = time.monotonic() + seconds
        elif command["op"] == "kick" and seconds is not None:
            deadline = time.monotonic() + seconds
        elif command["op"] == "disarm":
            deadline = seconds = None
"""


class Watchdog:
    """Kills this process, with a message, when `kick()` is not called in time.

    Args:
        peers: list of `"host:port"` strings. Addresses to probe when the deadline passes, so
            the message names the peers that do not answer. Defaults to none.

    Example:
    >>> watchdog = Watchdog(peers=["10.0.0.2:2222"])
    >>> watchdog.arm(300, "waiting for the other workers to start")
    >>> ...  # work that might hang
    >>> watchdog.disarm()
    >>> watchdog.close()
    """

    def __init__(self, peers=()):
        self.peers = list(peers)
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-c", _CHILD, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=None,  # this process's standard error: the message lands in the worker's log
            close_fds=True,
        )
        self.armed = False

    def _send(self, **command):
        if self._process is None:
            return
        try:
            self._process.stdin.write(json.dumps(command).encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            self._process = None

    def arm(self, seconds, message):
        """Starts (or restarts) a deadline of `seconds`; `message` says what was awaited."""
        if seconds is None or seconds <= 0:
            return self.disarm()
        self.armed = True
        self._send(op="arm", seconds=float(seconds), message=message, peers=self.peers)

    def kick(self):
        """Restarts the current deadline (after each step)."""
        if self.armed:
            self._send(op="kick")

    def disarm(self):
        """Stops the deadline; the watchdog keeps running, unarmed."""
        if self.armed:
            self.armed = False
            self._send(op="disarm")

    def close(self):
        """Stops the watchdog process."""
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=10)
            self._process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
