"""Worker agreement in one process: fingerprints are stable numbers, one worker agrees with itself.

The multi-worker side (two workers with different settings stop at once; a worker that could
not read the checkpoint gets the chief's values) runs in `test_multi_worker_loop.py`.
"""

import hashlib
import json
import os
import sys

import keras
import pytest
import tensorflow as tf

from keras_transformer.training import agreement
from keras_transformer.training.launcher import launch_workers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_fingerprint_is_a_stable_hash_of_the_sorted_json():
    # By hand: the first 4 bytes of SHA-256 of the sorted JSON text, top bit cleared.
    digest = hashlib.sha256(b'{"a": 1, "b": [2, 3]}').digest()
    expected = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    assert agreement.fingerprint({"b": [2, 3], "a": 1}) == expected
    assert agreement.fingerprint({"a": 1, "b": [2, 4]}) != expected


def test_fingerprint_reads_configs_and_never_memory_addresses():
    assert agreement.fingerprint({"x": object()}) == agreement.fingerprint({"x": object()})
    # Named: Keras numbers unnamed objects of one process (`adam`, `adam_1`, ...).
    slow, fast = keras.optimizers.Adam(1e-3, name="o"), keras.optimizers.Adam(2e-3, name="o")
    assert agreement.fingerprint(slow) == agreement.fingerprint(
        keras.optimizers.Adam(1e-3, name="o")
    )
    assert agreement.fingerprint(slow) != agreement.fingerprint(fast)


def test_one_worker_gathers_its_own_values_and_agrees_with_itself():
    strategy = tf.distribute.get_strategy()
    assert agreement.gather_from_workers(strategy, [3, 4]) == [[3, 4]]
    agreement.check_same_config(strategy, {"model": {"layers": 2}, "training": [1, 2]})
    assert issubclass(agreement.ConfigMismatchError, ValueError)


def test_broadcast_from_chief_on_one_worker_keeps_the_values():
    # Keras variables (model weights) and `tf.Variable`s (the checkpoint's epoch and step).
    strategy = tf.distribute.get_strategy()
    weights = [keras.Variable([1.5, -2.0]), tf.Variable(7, dtype=tf.int64)]
    agreement.broadcast_from_chief(strategy, weights)
    assert weights[0].numpy().tolist() == [1.5, -2.0]
    assert int(weights[1].numpy()) == 7 and weights[1].dtype == tf.int64


@pytest.mark.parametrize("peers", [(), ("127.0.0.1:1",)])
def test_one_watchdog_per_process(peers):
    first = agreement.process_watchdog(peers)
    assert agreement.process_watchdog() is first
    if peers:
        assert first.peers == list(peers)


WORKER = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from keras_transformer.distribute import multi_worker_strategy

strategy = multi_worker_strategy(startup_timeout=120)  # first: before any other op
import keras
import tensorflow as tf
from keras_transformer.training import agreement
from keras_transformer.training.cluster import current_cluster

index = current_cluster(strategy).index
rows = agreement.gather_from_workers(strategy, [index, 10 + index])
with strategy.scope():
    weight = keras.Variable([0.0, 0.0])
    step = tf.Variable(0, dtype=tf.int64)
weight.assign([float(index), -1.0 - index])  # as if each worker restored its own checkpoint
step.assign(5 + index)
agreement.broadcast_from_chief(strategy, [weight, step])
try:
    agreement.check_same_config(strategy, {"model": [1, 2], "learning_rate": index})
    mismatch = None
except agreement.ConfigMismatchError as error:
    mismatch = str(error)
agreement.check_same_config(strategy, {"model": [1, 2]})  # the same: no error
print(json.dumps({"rows": rows, "weight": weight.numpy().tolist(), "step": int(step.numpy()),
                  "mismatch": mismatch}))
"""


@pytest.mark.slow
def test_two_workers_gather_take_the_chiefs_values_and_name_what_differs(tmp_path):
    result = launch_workers(
        [sys.executable, "-c", WORKER], num_workers=2, timeout=240, cwd=ROOT, log_dir=str(tmp_path)
    )
    assert result.ok, result.summary + "\n" + result.log(0)[-3000:]
    for index in range(2):
        report = json.loads(result.log(index).strip().splitlines()[-1])
        assert report["rows"] == [[0, 10], [1, 11]]
        assert report["weight"] == [0.0, -1.0] and report["step"] == 5  # the chief's
        assert "these differ: learning_rate (worker 0: " in report["mismatch"]
        assert "model" not in report["mismatch"]
