"""Quiet command lines: TensorFlow's C++ log lines are hidden unless the user asks for them.

The tensorflow wheel is a CUDA build: on a machine without a GPU every process logs a
`cuInit` error, and every import logs oneDNN and "Could not find cuda drivers" notes. Our
command lines (`python -m workflows`, the `keras-transformer` script, `python -m
keras_transformer.data`, `python -m keras_transformer.training.launch`) hide them, keeping
Python's own warnings and errors, unless `TF_CPP_MIN_LOG_LEVEL` is set (then its value rules):

- `TF_CPP_MIN_LOG_LEVEL=3` (hide INFO, WARNING and ERROR; FATAL stays) is set before
  TensorFlow is imported: it hides what TensorFlow logs once running, such as the `cuInit`
  error (an ERROR, which level 2 shows);
- the lines logged while the libraries load, before absl logging is initialised (the oneDNN
  and cuda-driver notes), ignore that variable: during `import tensorflow`, file descriptor 2
  goes to a temporary file, and afterwards everything in it is written back to stderr except
  the absl lines below the level (`I...`, `W...`, `E...` records and absl's "All log messages
  before absl::InitializeLog()" warning).

A library user who imports `keras_transformer` from their own program gets none of this:
it only happens when the process is one of the commands above, and this module imports
nothing but the standard library (it runs before TensorFlow loads).
"""

import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "3"
COMMAND_PACKAGES = ("keras_transformer", "workflows")
COMMAND_SCRIPTS = ("keras-transformer",)
# Interpreter options that take a value as the next argument (`python -X importtime -m ...`).
_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")
# An absl record: severity letter, MMDD, time (before absl is initialised, its seconds are
# the Unix time: `I0000 00:00:1796164902.414814`), thread id, file:line] message.
_ABSL_RECORD = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]\s]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def command(argv=None):
    """What the interpreter was asked to run: the `-m` module, or the script's file name."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument == "-m":
            return next(arguments, "")
        if argument.startswith("-m"):
            return argument[2:]
        if argument in _OPTIONS_WITH_VALUE:
            next(arguments, None)
        elif argument == "-c" or not argument.startswith("-"):
            return os.path.basename(argument) if argument != "-c" else ""
    return ""


def is_our_command(argv=None):
    """True when the process runs one of this project's command lines."""
    name = command(argv)
    return name in COMMAND_SCRIPTS or name.split(".")[0] in COMMAND_PACKAGES


def hidden(line, level):
    """True for an absl line that `TF_CPP_MIN_LOG_LEVEL=level` is meant to hide."""
    if line.startswith(_ABSL_PREAMBLE):
        return level >= 1
    match = _ABSL_RECORD.match(line)
    return bool(match) and _SEVERITY[match.group(1)] < level


def quiet_tensorflow_import():
    """Sets the default log level, then imports TensorFlow with its load-time lines filtered.

    Does nothing once TensorFlow is imported. A user-set `TF_CPP_MIN_LOG_LEVEL` is kept, and
    filters the load-time lines as TensorFlow's own logging would (0: nothing hidden).
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)
    try:
        level = int(os.environ[LEVEL_VARIABLE])
    except ValueError:
        level = 0
    if level <= 0:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not hidden(line, level)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def quiet_if_our_command():
    """`quiet_tensorflow_import()` when the process is one of this project's commands."""
    if is_our_command():
        quiet_tensorflow_import()
