"""The runs behind `test_loss_scaling.py`, in one process whose CPU is split in 2 devices.

    python tests/gpu/loss_scaling_case.py OUT.json CASE [CASE ...]   (underflow dynamics gpt)

Every run is under Keras's `mixed_float16` policy (layers compute in float16, variables stay
float32), once with Keras `fit` on one device and once with `keras_transformer.training.fit`
under `MirroredStrategy` over 2 logical CPU devices. Writes one JSON of what the tests check:

- `underflow`: a tiny regression model whose loss is multiplied by 1e-8, so the gradient that
  reaches its float16 layers (about 1e-9) is below float16's smallest subnormal (6e-8): its
  gradients without loss scaling, and training with and without it;
- `dynamics`: a `LossScaleOptimizer(initial_scale=1024, dynamic_growth_steps=3)` over 7
  batches, the 4th of which overflows float16 (inputs of 1e5 > 65504) in its second half only
  (the rows of replica 1): the scale, the weights and the step count after every step, on
  each replica;
- `gpt`: the tiny GPT of `tests/training/multi_worker_case.py` (AdamW with global-norm clipping,
  under loss scaling) after 4 steps, Keras fit on one device against our loop on 2 replicas,
  plus the same pair in float32 to compare with.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "training")]

LOSS_FACTOR = 1e-8
HUGE = 1e5  # above float16's largest finite value, 65504


def _components(variable):
    """The values of a (possibly mirrored) Keras variable, one per replica, as lists."""
    value = variable.value  # the tf.Variable, a MirroredVariable under MirroredStrategy
    return [v.numpy().tolist() for v in getattr(value, "values", (value,))]


def _regression_data(num_rows=64):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(num_rows, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    return x, y


def _regression_model(optimizer, loss, auto_scale_loss=True):
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=optimizer, loss=loss, auto_scale_loss=auto_scale_loss)
    return model


def tiny_loss(y_true, y_pred):
    """The mean squared error times 1e-8 (Keras casts `y_pred` to float32 first)."""
    from keras import ops

    return LOSS_FACTOR * ops.mean(ops.square(y_true - y_pred), axis=-1)


def underflow(strategy):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transformer.training import fit
    from keras_transformer.training.precision import using_precision

    x, y = _regression_data()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True).repeat()
    # SGD on 1e-8 x MSE at 2e6 is SGD on the MSE at 0.02.
    learning_rate = 0.02 / LOSS_FACTOR
    out = {}

    def gradients(precision):
        with using_precision(precision):
            model = _regression_model(keras.optimizers.SGD(learning_rate), tiny_loss, False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tiny_loss(y[:8], tf.cast(model(x[:8]), "float32")))
        grads = tape.gradient(loss, model.trainable_weights)
        return [float(np.abs(g.numpy()).max()) for g in grads]

    out["max_gradient_float32"] = gradients("float32")
    out["max_gradient_float16_unscaled"] = gradients("float16")

    def train(where, auto_scale_loss, precision="float16"):
        scope = strategy.scope() if where == "ours" else tf.distribute.get_strategy().scope()
        with using_precision(precision), scope:
            model = _regression_model(
                keras.optimizers.SGD(learning_rate), tiny_loss, auto_scale_loss
            )
        before = [w.numpy().copy() for w in model.weights]
        if where == "ours":
            history = fit(model, data, epochs=4, steps_per_epoch=8, verbose=0)
        else:
            history = model.fit(data, epochs=4, steps_per_epoch=8, verbose=0)
        moved = max(
            float(np.abs(w.numpy() - b).max()) for w, b in zip(model.weights, before, strict=True)
        )
        return {
            "optimizer": type(model.optimizer).__name__,
            "replicas": strategy.num_replicas_in_sync if where == "ours" else 1,
            "loss": [value / LOSS_FACTOR for value in history.history["loss"]],
            "weights_moved": moved,
            "finite": all(bool(np.isfinite(w.numpy()).all()) for w in model.weights),
            "weights": [w.numpy().tolist() for w in model.weights],
        }

    for where in ("keras", "ours"):
        for scaled in (False, True):
            out[f"{where}_{'scaled' if scaled else 'unscaled'}"] = train(where, scaled)
    out["keras_float32"] = train("keras", False, precision="float32")
    return out


def _record_class():
    import keras

    class Record(keras.callbacks.Callback):
        """After every step: the loss scale and first kernel on each replica, the step count."""

        def __init__(self):
            super().__init__()
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            optimizer = self.model.optimizer
            self.steps.append(
                {
                    "scale": _components(optimizer.dynamic_scale),
                    "iterations": int(optimizer.iterations.numpy()),
                    "kernel": _components(self.model.weights[0]),
                }
            )

    return Record


def dynamics(strategy):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transformer.training import fit
    from keras_transformer.training.precision import using_precision

    Record = _record_class()
    x, y = _regression_data(7 * 8)
    x[3 * 8 + 4 : 4 * 8] = HUGE  # batch 4, its second half: replica 1's rows
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    out = {}
    for where in ("keras", "ours"):
        scope = strategy.scope() if where == "ours" else tf.distribute.get_strategy().scope()
        with using_precision("float16"), scope:
            optimizer = keras.optimizers.LossScaleOptimizer(
                keras.optimizers.SGD(0.01), initial_scale=1024.0, dynamic_growth_steps=3
            )
            model = _regression_model(optimizer, "mse")
        record = Record()
        if where == "ours":
            fit(model, data, epochs=1, callbacks=[record], verbose=0)
        else:
            model.fit(data, epochs=1, callbacks=[record], verbose=0)
        out[where] = {
            "steps": record.steps,
            "finite": all(bool(np.isfinite(w.numpy()).all()) for w in model.weights),
        }
    return out


def gpt(strategy):
    import keras
    import numpy as np
    import tensorflow as tf
    from multi_worker_case import gpt_case, parse_args

    from keras_transformer.training import fit
    from keras_transformer.training.precision import policy_name, using_precision

    out = {}
    for precision in ("float16", "float32"):
        policy = policy_name(precision)  # the keys name the policy: mixed_float16, float32
        weights = {}
        for where in ("keras", "ours"):
            keras.utils.set_random_seed(7)
            scope = strategy.scope() if where == "ours" else tf.distribute.get_strategy().scope()
            with using_precision(precision), scope:
                model, train, _ = gpt_case(parse_args(["--out", "unused"]))
            initial = [w.numpy().copy() for w in model.trainable_weights]
            if where == "ours":
                history = fit(model, train, epochs=1, steps_per_epoch=4, verbose=0)
            else:
                history = model.fit(train, epochs=1, steps_per_epoch=4, verbose=0)
            weights[where] = [w.numpy() for w in model.trainable_weights]
            out[f"{policy}_{where}_loss"] = history.history["loss"][-1]
            out[f"{policy}_{where}_optimizer"] = type(model.optimizer).__name__
            if where == "keras":
                out[f"{policy}_moved"] = max(
                    float(np.abs(a - b).max()) for a, b in zip(weights[where], initial, strict=True)
                )
        out[f"{policy}_difference"] = max(
            float(np.abs(a - b).max())
            for a, b in zip(weights["keras"], weights["ours"], strict=True)
        )
    return out


CASES = {"underflow": underflow, "dynamics": dynamics, "gpt": gpt}


def main(argv):
    from keras_transformer.distribute import split_cpu

    devices = split_cpu(2)  # before any TensorFlow op
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(devices)
    results = {}
    for name in argv[1:]:
        start = time.monotonic()
        results[name] = CASES[name](strategy)
        results[name]["seconds"] = time.monotonic() - start
    with open(argv[0], "w") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
