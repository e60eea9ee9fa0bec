"""Checks on freshly initialized weights: independent of each other, of the promised spread."""

import itertools
import math

import numpy as np

# Weights that start as constants (biases and layer-norm offsets at 0, layer-norm scales at 1).
CONSTANT_WEIGHTS = ("bias", "gamma", "beta")


def truncated_normal_std(stddev):
    """Std of `keras.initializers.TruncatedNormal(stddev)`: a normal cut at ±2σ (re-drawn).

    Var = σ² (1 - 2·2·φ(2) / (2Φ(2) - 1)): for σ = 0.02 the std is 0.017593.
    """
    pdf = math.exp(-2.0) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))
    return stddev * math.sqrt(1.0 - 4.0 * pdf / (2.0 * cdf - 1.0))


def glorot_uniform_std(shape):
    """Std of `GlorotUniform` for a kernel of `shape`, with Keras' fans.

    Keras takes `fan_in = shape[-2] · r`, `fan_out = shape[-1] · r`, `r = prod(shape[:-2])`
    (also for the 3-D attention kernels); the values are uniform in ±sqrt(6 / (fan_in +
    fan_out)), so their std is sqrt(2 / (fan_in + fan_out)).
    """
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return math.sqrt(2.0 / ((shape[-2] + shape[-1]) * receptive))


def random_weights(layer):
    """`{path: values}` of the weights of `layer` that start random (all but biases and norms)."""
    weights = {}
    for weight in layer.weights:
        if weight.path.split("/")[-1].endswith(CONSTANT_WEIGHTS):
            continue
        weights[weight.path] = np.asarray(weight, dtype="float64")
    return weights


def _views(values):
    """The flat values, and the flat transposes of every 2-D reshape (split at each axis)."""
    yield "as stored", values.ravel()
    for axis in range(1, values.ndim):
        rows = int(np.prod(values.shape[:axis]))
        yield f"transposed after axis {axis}", values.reshape(rows, -1).T.ravel()


def correlation_limit(size):
    """`|r|` two independent samples of `size` stay below: 0.05, or 6 standard errors if larger."""
    return max(0.05, 6.0 / math.sqrt(size))


def assert_independent(weights):
    """No two weights are equal or correlated, as stored, reshaped, transposed or prefixed.

    For every pair, the Pearson correlation of their first n = min(sizes) values (the values
    of one unseeded initializer drawn in two shapes share a prefix), and for equal sizes of
    each one against every 2-D transpose of the other, stays below `correlation_limit(n)`.
    """
    assert len(weights) >= 2, sorted(weights)
    for (path_a, a), (path_b, b) in itertools.combinations(weights.items(), 2):
        n = min(a.size, b.size)
        flat_a, flat_b = a.ravel()[:n], b.ravel()[:n]
        pairs = [("flat prefix", flat_a, flat_b)]
        if a.size == b.size:
            pairs += [(f"{path_b} {how}", flat_a, view) for how, view in _views(b)]
            pairs += [(f"{path_a} {how}", view, flat_b) for how, view in _views(a)]
        for how, x, y in pairs:
            r = np.corrcoef(x, y)[0, 1]
            assert abs(r) < correlation_limit(n), (
                f"{path_a} {a.shape} and {path_b} {b.shape} are correlated ({how}): r={r:.4f}"
            )


def assert_std(weights, expected, bound=None):
    """Each weight's std is `expected` (callable of the shape, or a number), within sampling.

    Tolerance: 3%, or 5 standard errors of a sample std (about 1 / sqrt(2n)) for small weights.
    With `bound`, every value also lies within ±bound (the truncation of a truncated normal).
    """
    assert weights
    for path, values in weights.items():
        target = expected(values.shape) if callable(expected) else expected
        tolerance = max(0.03, 5.0 / math.sqrt(2.0 * values.size))
        std = float(values.std())
        assert abs(std / target - 1.0) < tolerance, (
            f"{path} {values.shape}: std {std:.5f}, expected {target:.5f} (±{tolerance:.1%})"
        )
        assert abs(float(values.mean())) < 5.0 * target / math.sqrt(values.size), path
        if bound is not None:
            assert float(np.abs(values).max()) <= bound * (1 + 1e-6), (path, np.abs(values).max())
