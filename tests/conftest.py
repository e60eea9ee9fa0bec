"""Shared test set-up: quiet TensorFlow, deterministic seeds, a clean dtype policy per test, and
no skips (`skip_guard`: a skipped test fails)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
from skip_guard import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
