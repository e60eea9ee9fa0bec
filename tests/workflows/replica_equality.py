"""One process against 2 mirrored replicas, for the tests that run in a fresh process with 2
logical CPUs (`split_cpu(2)` first, then import this)."""

import numpy as np
import tensorflow as tf

from keras_transformer.training import fit


def one_vs_two_replicas(build, data, devices, weights_of, epochs=2):
    """Trains `build()` (a compiled model, built inside the strategy's scope) on `data` once in
    this process's default strategy and once on a `MirroredStrategy` over `devices`.

    Returns:
        dict: `moved`, the largest change of the one-process run's `weights_of(model)` (a
        difference could only show if it trained), and `difference`, the largest gap between
        the two runs' final weights.
    """

    def trained(strategy):
        with strategy.scope():
            model = build()
        start = [np.array(w) for w in weights_of(model)]
        fit(model, data, epochs=epochs, verbose=0, strategy=strategy)
        end = [np.array(w) for w in weights_of(model)]
        moved = max(float(np.abs(a - b).max()) for a, b in zip(start, end, strict=True))
        return end, moved

    one, moved = trained(tf.distribute.get_strategy())
    two, _ = trained(tf.distribute.MirroredStrategy(devices))
    difference = max(float(np.abs(a - b).max()) for a, b in zip(one, two, strict=True))
    return {"moved": moved, "difference": difference}
