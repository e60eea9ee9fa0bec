"""Precision checks before training (`check_precision`) and XLA in our training loop."""

import json
import os

import pytest
import tensorflow as tf
from fresh_process import run_python

from keras_transformer.training import precision
from keras_transformer.training.precision import check_precision

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jit_loop_case.py")
GPU = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
TPU = tf.config.PhysicalDevice(name="/physical_device:TPU:0", device_type="TPU")


def _fake_gpus(monkeypatch, capability, name="Tesla V100-SXM2-16GB"):
    details = {"device_name": name}
    if capability is not None:
        details["compute_capability"] = capability
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details)


def test_float16_on_tpus_fails_and_says_use_bfloat16():
    with pytest.raises(ValueError, match="float16 cannot run on TPUs.*Use --mixed-precision bf"):
        check_precision("float16", devices=[TPU])
    tpu_strategy = object.__new__(tf.distribute.TPUStrategy)  # isinstance only; no TPU here
    with pytest.raises(ValueError, match=r"found TPUStrategy\w*\).*bfloat16"):
        check_precision("float16", strategy=tpu_strategy, devices=[])
    assert check_precision("bfloat16", strategy=tpu_strategy, devices=[TPU]) == "bfloat16"


def test_bfloat16_before_ampere_fails_and_says_use_float16(monkeypatch):
    _fake_gpus(monkeypatch, (7, 0))
    with pytest.raises(ValueError, match=r"capability 8.0.*Tesla V100.*has 7\.0.*float16"):
        check_precision("bfloat16", devices=[GPU])
    assert check_precision("float16", devices=[GPU]) == "float16"
    assert check_precision("float32", devices=[GPU]) == "float32"


@pytest.mark.parametrize("capability", [(8, 0), (9, 0), None])
def test_bfloat16_on_ampere_or_an_unknown_gpu_is_allowed(monkeypatch, capability):
    _fake_gpus(monkeypatch, capability, name="NVIDIA A100")
    assert check_precision("bfloat16", devices=[GPU]) == "bfloat16"


def test_the_default_devices_are_this_hosts_gpus(monkeypatch):
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [GPU] if kind == "GPU" else []
    )
    _fake_gpus(monkeypatch, (7, 5), name="Tesla T4")
    with pytest.raises(ValueError, match="Tesla T4"):
        check_precision("bfloat16")


def test_16_bit_on_cpu_is_allowed_with_a_note(capsys):
    assert check_precision("float16", devices=[]) == "float16"
    assert "no GPU or TPU: it trains on the CPU" in capsys.readouterr().out
    assert check_precision(False, devices=[]) == "float32"
    assert capsys.readouterr().out == ""


def test_an_unknown_precision_is_named():
    with pytest.raises(ValueError, match="Unknown precision 'half'"):
        check_precision("half", devices=[])


def test_bfloat16_minimum_is_ampere():
    assert precision.BFLOAT16_MIN_CAPABILITY == (8, 0)


def test_xla_in_our_loop_gives_the_same_weights_on_two_replicas(tmp_path):
    """The tiny GPT, 3 steps on 2 logical CPU replicas, jit_compile off and on."""
    out = tmp_path / "jit.json"
    run_python(CASE, out)
    result = json.loads(out.read_text())
    print(f"max |w_jit - w_plain| = {result['difference']:.2e}")
    assert result["jit_xla"] and not result["plain_xla"]  # the step really is XLA-compiled
    assert result["difference"] < 1e-5
    assert result["jit_loss"] == pytest.approx(result["plain_loss"], rel=1e-5)
    assert result["jit_val_loss"] == pytest.approx(result["plain_val_loss"], rel=1e-5)
