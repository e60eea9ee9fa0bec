"""float16 training with dynamic loss scaling, in Keras `fit` and in our loop on 2 replicas.

The runs are `loss_scaling_case.py`, in a subprocess whose CPU is split in 2 logical devices
(the split must come before TensorFlow starts); see its docstring for the models.
"""

import json
import os

import numpy as np
import pytest
from fresh_process import run_python

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss_scaling_case.py")
FLOAT16_ROUNDOFF = 2.0**-11  # float16's unit roundoff (11-bit significand)


def run_case(out, *cases):
    run_python(CASE, out, *cases)
    with open(out) as file:
        return json.load(file)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_case(tmp_path_factory.mktemp("loss-scaling") / "out.json", "underflow", "dynamics")


def _difference(weights_a, weights_b):
    return max(
        float(np.abs(np.array(a) - np.array(b)).max())
        for a, b in zip(weights_a, weights_b, strict=True)
    )


def test_without_loss_scaling_the_float16_gradients_are_exactly_zero(runs):
    underflow = runs["underflow"]
    assert min(underflow["max_gradient_float32"]) > 1e-9  # real, tiny gradients in float32
    assert underflow["max_gradient_float16_unscaled"] == [0.0, 0.0, 0.0, 0.0]
    for where in ("keras", "ours"):
        run = underflow[f"{where}_unscaled"]
        assert run["optimizer"] == "SGD"  # compile(auto_scale_loss=False)
        assert run["weights_moved"] == 0.0, where
        assert len(set(run["loss"])) == 1, where  # the loss never moves


@pytest.mark.parametrize("where", ["keras", "ours"])
def test_loss_scaling_trains_the_underflowing_model(runs, where):
    run = runs["underflow"][f"{where}_scaled"]
    assert run["optimizer"] == "LossScaleOptimizer"  # compile wraps it under mixed_float16
    assert run["replicas"] == (2 if where == "ours" else 1)
    assert run["finite"]
    assert np.isfinite(run["loss"]).all()
    assert run["loss"][-1] < 0.1 * run["loss"][0], run["loss"]  # mean squared error, unscaled
    assert run["weights_moved"] > 0.5


def test_two_replicas_match_keras_fit_on_one_device_under_mixed_float16(runs):
    """Both runs round to float16 differently (each replica's gradient over 4 rows, not 8), so
    they cannot agree exactly. Bound: the difference is below float16's unit roundoff times
    how far the weights moved, and below how far float16 itself moves the float32 result."""
    underflow = runs["underflow"]
    ours, keras_fit = underflow["ours_scaled"], underflow["keras_scaled"]
    difference = _difference(ours["weights"], keras_fit["weights"])
    float16_error = _difference(keras_fit["weights"], underflow["keras_float32"]["weights"])
    print(f"|ours - keras fit| = {difference:.2e}, |float16 - float32| = {float16_error:.2e}")
    assert difference < FLOAT16_ROUNDOFF * keras_fit["weights_moved"]
    assert difference < float16_error
    np.testing.assert_allclose(ours["loss"], keras_fit["loss"], rtol=1e-3)


@pytest.mark.parametrize("where", ["keras", "ours"])
def test_an_overflow_halves_the_scale_and_skips_the_step(runs, where):
    """Step 4's batch holds 1e5 (> 65504) in its second half: replica 1's rows in our loop."""
    steps = runs["dynamics"][where]["steps"]
    assert runs["dynamics"][where]["finite"]
    replicas = 2 if where == "ours" else 1
    for step in steps:  # every replica holds the same scale and weights
        assert len(step["scale"]) == replicas and len(set(step["scale"])) == 1
        assert all(kernel == step["kernel"][0] for kernel in step["kernel"])
    before, overflow, after = steps[2], steps[3], steps[4]
    assert overflow["scale"][0] == before["scale"][0] / 2
    assert overflow["kernel"] == before["kernel"]  # the update was skipped on every replica
    assert overflow["iterations"] == before["iterations"]
    assert after["kernel"] != overflow["kernel"]  # the next finite step trains again
    assert after["iterations"] == overflow["iterations"] + 1


@pytest.mark.parametrize("where", ["keras", "ours"])
def test_the_scale_doubles_after_dynamic_growth_steps_finite_steps(runs, where):
    """initial_scale=1024, dynamic_growth_steps=3; steps 1-3 finite, 4 overflows, 5-7 finite."""
    scales = [step["scale"][0] for step in runs["dynamics"][where]["steps"]]
    assert scales == [1024, 1024, 2048, 1024, 1024, 1024, 2048]


@pytest.mark.slow
def test_a_gpt_trained_on_two_replicas_matches_keras_fit_under_mixed_float16(tmp_path):
    """The tiny GPT of the multi-worker tests (AdamW, global-norm clipping), 4 steps. AdamW
    moves each weight by about the learning rate whatever the gradient's size, so a float16
    rounding that flips a tiny gradient's sign moves a weight by up to 2 x 3e-3; the bound is
    a tenth of how far the weights moved, and the float32 pair must agree within 1e-6."""
    gpt = run_case(tmp_path / "out.json", "gpt")["gpt"]
    assert gpt["mixed_float16_keras_optimizer"] == "LossScaleOptimizer"
    assert gpt["mixed_float16_ours_optimizer"] == "LossScaleOptimizer"
    print({key: value for key, value in gpt.items() if "difference" in key or "moved" in key})
    assert gpt["float32_difference"] < 1e-6
    assert gpt["mixed_float16_difference"] < 0.1 * gpt["mixed_float16_moved"]
    assert gpt["mixed_float16_ours_loss"] == pytest.approx(gpt["mixed_float16_keras_loss"], 1e-4)
