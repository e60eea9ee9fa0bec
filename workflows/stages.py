"""A small stage runner: skip what is done, redo what changed, say where it stands.

Each stage writes into its own folder under the run folder and marks completion last:

    RUN/NAME/stage.json   {"name", "config_hash", "settings", "seconds", "summary"}

written atomically after the stage's work, so a killed stage has no `stage.json` and runs
again (its workflow resumes from its own checkpoints when the settings are unchanged). A stage
is skipped when `stage.json` exists, its hash matches the stage's settings (and those of the
stages it depends on), and every output it listed still exists. `force` redoes everything.

    runner = StageRunner("runs/main", estimates_total=120.0)
    summary = runner.run(Stage("vocabulary", make_vocab, {"size": 2000}, estimate=5.0))

Progress: one line when a stage starts and one when it ends, with the elapsed time and an
estimate of what is left (the remaining stages' estimates, scaled by how fast the finished
ones went against theirs); while a stage runs, a "still running" line whenever nothing else
was printed for `quiet_seconds` (vocabulary training, loading a model, a long export).
"""

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable

from workflows.config import write_json_atomic

MARKER = "stage.json"
STARTED = "stage.started.json"

# errno values that mean "this folder cannot take our files": say so, and how to resume.
WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


class StageError(OSError):
    """A stage could not write its outputs (read-only folder, full disk, quota)."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a pipeline.

    Attributes:
        name: str. Folder name under the run folder; unique in a pipeline.
        run: callable `(folder) -> dict`. Does the work in `folder` and returns a JSON-able
            summary; paths listed under its `"outputs"` key must exist for a later skip.
        settings: dict. Everything that determines the outputs (hashed).
        estimate: float. Expected seconds, for the ETA.
        depends: tuple of str. Stages whose hashes feed this one's: a change there redoes this.
        always: bool. Run even when done before (cheap stages such as the report).
    """

    name: str
    run: Callable[[str], dict]
    settings: dict
    estimate: float = 10.0
    depends: tuple = ()
    always: bool = False


def config_hash(settings, upstream=()):
    """A short sha256 of the settings (canonical JSON) and the upstream hashes."""
    text = json.dumps(
        {"settings": settings, "upstream": list(upstream)}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def format_seconds(seconds):
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def read_marker(folder):
    path = os.path.join(folder, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None  # a damaged marker means "not done"


class _WatchedStream:
    """A text stream that remembers when it was last written to and whether a line is open."""

    def __init__(self, stream):
        self._stream = stream
        self.last_write = time.monotonic()
        self.line_open = False

    def write(self, text):
        if text:
            self.last_write = time.monotonic()
            self.line_open = not text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def heartbeat(message, quiet_seconds=5.0):
    """Prints `message()` on `sys.stdout` whenever nothing was printed for `quiet_seconds`.

    `sys.stdout` is watched (not replaced in meaning) while the block runs, so Keras progress
    bars and the workflows' own lines count as signs of life; a heartbeat after an unfinished
    progress-bar line starts on a new line.
    """
    original = sys.stdout
    watched = _WatchedStream(original)
    stop = threading.Event()

    def beat():
        while not stop.wait(min(1.0, quiet_seconds)):
            if time.monotonic() - watched.last_write >= quiet_seconds:
                watched.write(("\n" if watched.line_open else "") + message() + "\n")
                watched.flush()

    thread = threading.Thread(target=beat, daemon=True)
    sys.stdout = watched
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.stdout = original


class StageRunner:
    """Runs `Stage`s in order under `root`, skipping the ones already done.

    Args:
        root: str. The run folder.
        force: bool. Redo every stage. Defaults to `False`.
        estimates: dict `{stage name: seconds}` of every planned stage, for the ETA.
        prefix: str. Printed before each progress line. Defaults to `"[main]"`.
        out: file for progress lines. Defaults to `sys.stdout`.
        quiet_seconds: float. Longest silence inside a stage before a "still running" line.
            Defaults to `5`.
    """

    def __init__(
        self, root, force=False, estimates=None, prefix="[main]", out=None, quiet_seconds=5.0
    ):
        self.root = root
        self.force = force
        self.estimates = dict(estimates or {})
        self.prefix = prefix
        self.out = out
        self.quiet_seconds = quiet_seconds
        self.start = time.monotonic()
        self.hashes = {}
        self.summaries = {}
        self.done = []  # names finished (run or skipped)
        self.spent = 0.0  # seconds of the stages actually run
        self.planned = 0.0  # their estimates

    def log(self, message):
        print(f"{self.prefix} {message}", file=self.out or sys.stdout, flush=True)

    def remaining(self, excluding=()):
        """Estimated seconds left: remaining estimates times the observed pace (0.5x..4x)."""
        left = sum(
            seconds
            for name, seconds in self.estimates.items()
            if name not in self.done and name not in excluding
        )
        prior = 30.0  # seconds of "as estimated": one quick stage does not swing the ETA
        factor = (self.spent + prior) / (self.planned + prior)
        return left * min(max(factor, 0.5), 4.0)

    def position(self, name):
        names = list(self.estimates) or [name]
        index = names.index(name) + 1 if name in names else len(self.done) + 1
        return f"{index}/{len(names)}"

    def run(self, stage):
        """Runs (or skips) a stage; returns its summary dict."""
        folder = os.path.join(self.root, stage.name)
        digest = config_hash(stage.settings, [self.hashes.get(d, "") for d in stage.depends])
        self.hashes[stage.name] = digest
        marker = read_marker(folder)
        elapsed = time.monotonic() - self.start
        if (
            not self.force
            and not stage.always
            and marker is not None
            and marker.get("config_hash") == digest
            and all(os.path.exists(p) for p in marker.get("summary", {}).get("outputs", []))
        ):
            self.done.append(stage.name)
            self.summaries[stage.name] = marker["summary"]
            self.log(
                f"{self.position(stage.name)} {stage.name}: done before, skipped "
                f"(elapsed {format_seconds(elapsed)}, ~{format_seconds(self.remaining())} left)"
            )
            return marker["summary"]
        self.log(
            f"{self.position(stage.name)} {stage.name} ... (elapsed {format_seconds(elapsed)}, "
            f"~{format_seconds(self.remaining())} left)"
        )
        self._prepare_folder(folder, digest, stage)
        started = time.monotonic()

        def still_running():
            return (
                f"{self.prefix} {self.position(stage.name)} {stage.name} still running "
                f"({format_seconds(time.monotonic() - started)} so far, elapsed "
                f"{format_seconds(time.monotonic() - self.start)})"
            )

        try:
            with heartbeat(still_running, self.quiet_seconds):
                summary = stage.run(folder) or {}
            seconds = time.monotonic() - started
            summary = {**summary, "seconds": seconds}
            write_json_atomic(
                os.path.join(folder, MARKER),
                {
                    "name": stage.name,
                    "config_hash": digest,
                    "settings": stage.settings,
                    "seconds": seconds,
                    "summary": summary,
                },
            )
        except OSError as error:
            if error.errno in WRITE_ERRORS and not isinstance(error, StageError):
                raise StageError(
                    error.errno,
                    f"Stage {stage.name!r} could not write its outputs ({error.strerror}: "
                    f"{error.filename or folder}). Free some space or choose a writable "
                    "--output-dir / --saved-models-dir, then run the same command again: "
                    "finished stages are kept and skipped.",
                ) from error
            raise
        self.done.append(stage.name)
        self.summaries[stage.name] = summary
        self.spent += seconds
        self.planned += stage.estimate
        elapsed = time.monotonic() - self.start
        self.log(
            f"{self.position(stage.name)} {stage.name} done in {format_seconds(seconds)} "
            f"(elapsed {format_seconds(elapsed)}, ~{format_seconds(self.remaining())} left)"
        )
        return summary

    def _prepare_folder(self, folder, digest, stage):
        """Clears a folder holding another config's (or a forced stage's) partial outputs.

        A folder started with the same settings is kept: its workflow resumes from its own
        checkpoints.
        """
        started_path = os.path.join(folder, STARTED)
        started = None
        if os.path.isfile(started_path):
            try:
                with open(started_path, encoding="utf-8") as file:
                    started = json.load(file).get("config_hash")
            except (OSError, ValueError):
                started = None
        if os.path.isdir(folder) and (self.force or started != digest or stage.always):
            shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)
        write_json_atomic(started_path, {"name": stage.name, "config_hash": digest})
