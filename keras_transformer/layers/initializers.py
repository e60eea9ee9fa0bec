"""Initializers: the package default and a clone per weight."""

import keras
import numpy as np

# The standard deviation of values drawn by `TruncatedNormal(stddev=σ)`: Keras draws from a
# normal of standard deviation σ and re-draws values beyond ±2σ, which leaves a standard
# deviation of σ · sqrt(1 - 4 φ(2) / (2 Φ(2) - 1)) = 0.87963 σ (φ, Φ: standard normal density and
# CDF). So the default `TruncatedNormal(stddev=0.02)` gives weights of standard deviation 0.01759,
# all within ±0.04.
TRUNCATED_NORMAL_STD_FACTOR = 0.8796256610342398


def default_initializer():
    """`TruncatedNormal(stddev=0.02)` (BERT, GPT-2): values within ±0.04, std 0.01759."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def clone_initializer(initializer):
    """A new initializer for one weight, so that no two weights get the same values.

    A Keras initializer instance returns the same values at every call when its seed is `None`
    or an integer, so one instance shared by several weights makes them equal (same shape) or
    the same numbers reshaped. Give every `add_weight` and every sub-layer its own clone:

    - unseeded (`seed=None`): a new instance from the config. It draws its own seed from
      Python's `random`, so `keras.utils.set_random_seed` makes a whole build reproducible.
    - integer seed: a new instance whose seed is derived from that seed and the number of clones
      made from this instance so far; the same construction gives the same weights every time,
      and its weights differ from each other.
    - `keras.random.SeedGenerator` seed: the instance itself; the generator advances at every
      call, so weights differ and the sequence is reproducible.
    - anything else that has a config (`"zeros"`, `Constant`, ...): a new instance from it; a
      plain callable is returned as it is.

    Args:
        initializer: an initializer, its name or its serialized config.

    Returns:
        An initializer to pass to exactly one weight (or sub-layer).

    Example:
    >>> shared = keras.initializers.TruncatedNormal(stddev=0.02)
    >>> a = clone_initializer(shared)((4, 4))
    >>> b = clone_initializer(shared)((4, 4))   # different values from `a`
    """
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, dict):  # a serialized SeedGenerator: share it, it advances per call
        return initializer
    if isinstance(seed, int):
        count = getattr(initializer, "_keras_transformer_clones", 0)
        initializer._keras_transformer_clones = count + 1
        state = np.random.SeedSequence([seed % 2**32, count]).generate_state(1)[0]
        config["seed"] = int(state % (2**31 - 1)) + 1
    return type(initializer).from_config(config)
