"""A pytest plugin that turns every skip into a failure: a test whose package or data cannot
load must fail with its reason, never pass as "skipped" (the suite promises 0 skipped).

`tests/conftest.py` imports its hooks; `xfail` and deselection (`-m`, `-k`) are left alone.
"""

import pytest

MESSAGE = (
    "Skipping is not allowed in this suite: what a test needs is installed by "
    '`pip install -e ".[dev]"`, so a test that cannot run has failed. Reason given: '
)


def _reason(longrepr):
    """The reason of a skip report (pytest stores `(path, line, "Skipped: reason")`)."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = MESSAGE + _reason(report.longrepr)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped:  # A module-level `pytest.skip` / `importorskip`.
        report.outcome = "failed"
        report.longrepr = MESSAGE + _reason(report.longrepr)
    return report
