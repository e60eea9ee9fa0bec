"""Running Python in a new process, for tests whose set-up must come before TensorFlow starts
(logical CPU devices, a dtype policy, an environment variable) or that prove what a fresh
process sees.

`run_python` runs a script or `-c` code from the repository root and fails the test with the
tail of both streams when the process does not exit 0; `run_code` runs a snippet and returns
the last line it printed.
"""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(*args, timeout=300, env=None):
    """`python *args` in ROOT with TensorFlow's logs quiet; the finished process (exit code 0)."""
    done = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"exit code {done.returncode}\n--- stdout\n{done.stdout[-2000:]}\n"
        f"--- stderr\n{done.stderr[-4000:]}"
    )
    return done


def run_code(code, timeout=120, env=None):
    """Runs the (indented) snippet `code` in a new process; the last line it printed."""
    done = run_python("-c", textwrap.dedent(code), timeout=timeout, env=env)
    return done.stdout.strip().splitlines()[-1]
