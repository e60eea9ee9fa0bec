"""Training curves: TensorBoard event files and a per-step training-loss file for every run.

`TrainingCurves` is the callback `workflows.training.fit` adds on the chief. It writes, from
the logs Keras callbacks get (no extra work in the step):

- `<run>/tensorboard/train/`: `loss` (the mean per-step loss since the previous point, every
  `every` steps and at each epoch's end), `learning_rate` (the rate that step ran at),
  `tokens_per_second` or `examples_per_second` (over the same steps, evaluations left out),
  and the epoch's other training metrics (`accuracy`, ...) at each epoch's end;
- `<run>/tensorboard/validation/`: every validation metric (`loss`, `accuracy`, ...) after each
  evaluation. Tags match the train folder's, so TensorBoard draws both on one chart;
- `<run>/train_loss.json`: `{"step": [...], "loss": [...], "epochs": {"step": [...],
  "loss": [...], "val_loss": [...], ...}}`: the loss of every step, and each epoch's logs
  with the global step it ended at (rewritten atomically at each epoch's end).

Steps are global optimizer steps (1-based), so a resumed run continues the same axis: its
file drops the steps after the checkpoint it resumed from, and TensorBoard discards the
events a restart repeats. Scalars are written with `tf.summary.write` and the scalars
plugin's metadata (what `tf.summary.scalar` writes): `tf.summary.scalar` itself, and so
`keras.callbacks.TensorBoard`, fail without the `tensorboard` package, which is not a
dependency.
"""

import json
import os
import time

import keras
import tensorflow as tf

from workflows.config import write_json_atomic

TRAIN_LOSS_FILE = "train_loss.json"
TENSORBOARD_DIR = "tensorboard"
DEFAULT_EVERY = 10

_SCALAR_METADATA = None


def scalar_metadata():
    """The serialized `SummaryMetadata` of a TensorBoard scalar (the `scalars` plugin)."""
    global _SCALAR_METADATA
    if _SCALAR_METADATA is None:
        metadata = tf.compat.v1.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        _SCALAR_METADATA = metadata.SerializeToString()
    return _SCALAR_METADATA


class ScalarWriter:
    """A TensorBoard event-file writer of scalars, one graph call per point.

    Eager `tf.summary.write`s cost about a millisecond each; here a point's scalars are
    written by one `tf.function` of this writer's own (a traced function keeps the writer it
    was traced with, so writers never share one).
    """

    def __init__(self, folder):
        self.writer = tf.summary.create_file_writer(folder)
        # One traced function per set of tags (a step's, an evaluation's): a single function
        # retraced as the sets alternate, and TensorFlow warned of retracing in every run.
        self._functions = {}

    def _write_all(self, values, step):
        with self.writer.as_default():
            for tag, value in values.items():
                tf.summary.write(tag, value, step=step, metadata=scalar_metadata())

    def write(self, values, step):
        """Writes `{tag: float}` at `step` (tensors in: traced once per set of tags)."""
        tensors = {tag: tf.constant(value, tf.float32) for tag, value in sorted(values.items())}
        tags = tuple(tensors)
        if tags not in self._functions:
            # A function of its own (not the bound method, which TensorFlow's retracing count
            # keys on across functions).
            def write_all(values, step):
                self._write_all(values, step)

            self._functions[tags] = tf.function(write_all)
        self._functions[tags](tensors, tf.constant(step, tf.int64))

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()


def learning_rate_reader(optimizer):
    """`rate(step)`: the learning rate optimizer step `step` (1-based) ran at.

    Keras evaluates a schedule at the iteration count before the update, so step k ran at
    `schedule(k - 1)`; a schedule is evaluated as one graph call (its eager ops cost about
    a millisecond).
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer wraps one
    schedule = getattr(inner, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        at = tf.function(lambda step: tf.cast(schedule(step), tf.float32))
        return lambda step: float(at(tf.constant(step - 1, tf.int64)))
    return lambda step: float(keras.ops.convert_to_numpy(inner.learning_rate))


def read_train_loss(run_dir):
    """A run's `train_loss.json` as a dict, or `{}` when it has none."""
    path = os.path.join(run_dir, TRAIN_LOSS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _until(curves, last_step):
    """The entries of a `train_loss.json` dict up to `last_step` (for a resumed run)."""
    steps = curves.get("step", [])
    keep = sum(1 for s in steps if s <= last_step)
    epochs = curves.get("epochs", {})
    kept_epochs = sum(1 for s in epochs.get("step", []) if s <= last_step)
    return {
        "step": steps[:keep],
        "loss": curves.get("loss", [])[:keep],
        "epochs": {key: values[:kept_epochs] for key, values in epochs.items()},
    }


class TrainingCurves(keras.callbacks.Callback):
    """Writes a run's TensorBoard logs and per-step training loss (on the chief only).

    Keras's `loss` log is the running mean over the epoch's batches so far (its tracker is
    reset each epoch), so the loss of batch b is `(b + 1) * mean_b - b * mean_(b-1)`: exact
    when the epoch's batches are the same size (pretraining's always are; a classifier
    epoch's last, smaller batch is weighted by its size in the mean, so its value is close
    but not exact).

    Args:
        run_dir: str. The run folder.
        every: int. Steps between TensorBoard training points. Defaults to `10`.
        units_per_step: int. Tokens (or examples) in one global batch, for the throughput.
        unit: str. `"tokens"` or `"examples"`: names the throughput tag `<unit>_per_second`.
    """

    def __init__(self, run_dir, every=DEFAULT_EVERY, units_per_step=1, unit="examples"):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
            raise ValueError(f"`every` must be a positive integer. Received: every={every!r}")
        self.run_dir = run_dir
        self.every = every
        self.units_per_step = units_per_step
        self.throughput_tag = f"{unit}_per_second"
        self.step = None  # the global step of the last batch, read once from the optimizer
        self.curves = {"step": [], "loss": [], "epochs": {}}
        self.writers = None
        self.learning_rate = None
        self.previous_mean = 0.0
        self.window = []  # the losses since the last TensorBoard point
        self.window_start = None

    def on_train_begin(self, logs=None):
        folder = os.path.join(self.run_dir, TENSORBOARD_DIR)
        self.writers = {
            "train": ScalarWriter(os.path.join(folder, "train")),
            "validation": ScalarWriter(os.path.join(folder, "validation")),
        }
        self.learning_rate = learning_rate_reader(self.model.optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        self.previous_mean = 0.0
        self.window = []
        self.window_start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if self.step is None:  # after a restore (the loop's, or Keras's BackupAndRestore)
            self.step = int(self.model.optimizer.iterations.numpy())
            self.curves = _until(read_train_loss(self.run_dir), self.step - 1)
        else:
            self.step += 1
        mean = float((logs or {}).get("loss", float("nan")))
        loss = (batch + 1) * mean - batch * self.previous_mean
        self.previous_mean = mean
        self.curves["step"].append(self.step)
        self.curves["loss"].append(loss)
        self.window.append(loss)
        if self.step % self.every == 0:
            self._write_train_point()

    def _write_train_point(self):
        seconds = time.monotonic() - self.window_start
        values = {
            "loss": sum(self.window) / len(self.window),
            "learning_rate": self.learning_rate(self.step),
        }
        if seconds > 0:
            values[self.throughput_tag] = len(self.window) * self.units_per_step / seconds
        self.writers["train"].write(values, self.step)
        self.window = []
        self.window_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.step is None:  # no step ran (a restored run that had already finished)
            return
        if self.window:  # the epoch's last steps, since the last point
            self._write_train_point()
        logs = {key: float(value) for key, value in (logs or {}).items()}
        train = {k: v for k, v in logs.items() if not k.startswith("val_") and k != "loss"}
        validation = {k[len("val_") :]: v for k, v in logs.items() if k.startswith("val_")}
        if train:
            self.writers["train"].write(train, self.step)
        if validation:
            self.writers["validation"].write(validation, self.step)
        epochs = self.curves["epochs"]
        previous = len(epochs.get("step", []))
        for key in ("step", *logs):
            epochs.setdefault(key, [None] * previous)  # a metric the earlier epochs lacked
        for key, values in epochs.items():
            values.append(self.step if key == "step" else logs.get(key))
        for writer in self.writers.values():
            writer.flush()
        write_json_atomic(os.path.join(self.run_dir, TRAIN_LOSS_FILE), self.curves)

    def on_train_end(self, logs=None):
        if self.writers:
            for writer in self.writers.values():
                writer.close()
