"""The suite's no-skip rule: a skip of any kind (in a test, a mark, a module-level
`importorskip`) is reported as a failure with its reason; passing tests and xfails are not."""

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

CASES = """
import pytest

def test_passes():
    pass

def test_skips_inside():
    pytest.skip("the data did not load")

@pytest.mark.skip(reason="marked away")
def test_marked_skip():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
"""


def run_pytest(folder):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "skip_guard",
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "--rootdir",
            str(folder),
            str(folder),
        ],
        cwd=folder,
        env={"PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_kind_of_skip_fails_with_its_reason(tmp_path):
    (tmp_path / "test_cases.py").write_text(CASES)
    (tmp_path / "test_module_skip.py").write_text(
        'import pytest\npytest.importorskip("no_such_package_anywhere")\n'
    )
    result = run_pytest(tmp_path)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed, 1 xfailed, 2 errors" in summary, result.stdout
    assert "skipped" not in summary
    assert result.stdout.count("Skipping is not allowed") >= 3, result.stdout
    for reason in ("the data did not load", "marked away", "no_such_package_anywhere"):
        assert reason in result.stdout, reason
