"""Pieces every workflow shares: strategy and run folder, optimizer, the fit, atomic saves.

Every workflow trains with `keras_transformer.training.fit` (Keras's `fit`, also under
`MultiWorkerMirroredStrategy`), so one command runs on one CPU, several GPUs or several
workers. On several workers, the chief alone writes the run's files (config, tokenizer, model,
history, metrics, TensorBoard logs and curves); the others train alongside it and write
nothing that stays.
"""

import contextlib
import dataclasses
import datetime
import os
import tempfile
import time

import keras

from keras_transformer import training
from keras_transformer.distribute import get_strategy, per_replica_batch_size
from keras_transformer.models import size_arguments
from keras_transformer.training.cluster import current_cluster
from keras_transformer.training.compilation import check_jit_compile
from keras_transformer.training.optimizers import AdamW
from keras_transformer.training.precision import check_precision, using_precision
from workflows.config import save_config, write_json_atomic
from workflows.curves import DEFAULT_EVERY, TrainingCurves


@dataclasses.dataclass(frozen=True)
class RunPlace:
    """Where a workflow runs: its strategy, its output folder, and whether it writes there.

    Attributes:
        strategy: the `tf.distribute.Strategy`.
        run_dir: str. The output folder (created by the chief only).
        chief: bool. This process writes the run's files (always, on one machine).
    """

    strategy: object
    run_dir: str
    chief: bool
    created: tuple = ()
    precision: str = "float32"

    @contextlib.contextmanager
    def setting_up(self):
        """`strategy.scope()` and the run's precision policy for building its models.

        Models built (not loaded) inside get the `--mixed-precision` dtype policy; a base
        loaded from a file keeps the policy it was saved with. On an error, undoes `start`.

        A run refused before it wrote anything but `config.json` (a bad `--init-from`, a
        dataset that will not load) leaves no folder behind: the config it wrote is removed,
        and the folder too if `start` created it. A folder holding anything else is kept.
        """
        try:
            with self.strategy.scope(), using_precision(self.precision):
                yield
        except BaseException:
            self.discard()
            raise

    def discard(self):
        """Removes what `start` wrote, if nothing else has been written since."""
        if not self.chief or not self.created:
            return
        config_path = os.path.join(self.run_dir, "config.json")
        if not os.path.isdir(self.run_dir) or set(os.listdir(self.run_dir)) - {"config.json"}:
            return
        if "config.json" in self.created and os.path.isfile(config_path):
            os.remove(config_path)
        if "folder" in self.created:
            os.rmdir(self.run_dir)


def start(config, name):
    """Creates the strategy (before any other TensorFlow op), seeds, and the run folder.

    Under several workers `--output-dir` is required (a timestamped default would differ from
    worker to worker); only the chief creates the folder and saves `config.json` there.
    """
    strategy = get_strategy(config.strategy)  # first: a multi-worker strategy must come first
    # Before anything trains: float16 on a TPU or bfloat16 on a pre-Ampere GPU fails here.
    precision = check_precision(getattr(config, "mixed_precision", "float32"), strategy)
    keras.utils.set_random_seed(config.seed)
    per_replica_batch_size(config.batch_size, strategy)  # fails early if it does not divide
    cluster = current_cluster(strategy)
    if cluster.is_multi_worker and config.output_dir is None:
        raise ValueError(
            f"This run has {cluster.num_workers} workers (from {cluster.source}): give every "
            "worker the same --output-dir (shared storage, or the chief's local folder)."
        )
    if not cluster.is_chief:
        return RunPlace(strategy, config.output_dir, chief=False, precision=precision)
    existed = config.output_dir is not None and os.path.isdir(config.output_dir)
    run_dir = new_run_dir(config.output_dir, name)
    had_config = os.path.isfile(os.path.join(run_dir, "config.json"))
    save_config(config, run_dir)
    created = ("folder",) * (not existed) + ("config.json",) * (not had_config)
    return RunPlace(strategy, run_dir, chief=True, created=created, precision=precision)


def fit(
    model,
    dataset,
    config,
    place,
    epochs,
    steps_per_epoch=None,
    validation_data=None,
    callbacks=(),
    total_steps=None,
    throughput=None,
):
    """`keras_transformer.training.fit` with the workflows' resume folder and time budget.

    Checkpoints go to `<run_dir>/backup` after every epoch; a rerun with the same output
    folder resumes after the last one (skipping the batches already trained on), and the folder
    is removed when training completes. With `total_steps`, training stops once the optimizer
    has taken that many steps in all (a resumed run counts the steps before it), so the last
    epoch may be shorter than `steps_per_epoch`; it is still evaluated and checkpointed.

    The chief writes the run's curves (`workflows.curves.TrainingCurves`): TensorBoard logs
    in `<run_dir>/tensorboard` (training loss every `config.log_interval` steps, default 10,
    learning rate, throughput, validation metrics per evaluation) and the per-step loss in
    `<run_dir>/train_loss.json`. `throughput` is `(unit, units_per_step)`, e.g.
    `("tokens", batch_size * sequence_length)`; defaults to `("examples", config.batch_size)`.
    Returns the `History`.
    """
    if getattr(model, "jit_compile", False) and place.strategy.num_replicas_in_sync == 1:
        # `--jit-compile on` (or `auto` on a GPU): a step XLA cannot compile fails here, with
        # the op named, before anything trains. (Under several replicas the loop compiles each
        # replica's forward and backward pass; its first step reports such an op.)
        check_jit_compile(model, next(iter(dataset)))
    callbacks = [
        *callbacks,
        keras.callbacks.BackupAndRestore(os.path.join(place.run_dir, "backup")),
    ]
    if place.chief:
        unit, units_per_step = throughput or ("examples", config.batch_size)
        callbacks.append(
            TrainingCurves(
                place.run_dir,
                every=getattr(config, "log_interval", DEFAULT_EVERY),
                units_per_step=units_per_step,
                unit=unit,
            )
        )
    if total_steps is not None:
        callbacks.append(StepLimit(total_steps))
    if config.max_seconds:
        callbacks.append(TimeBudget(config.max_seconds))
    return training.fit(
        model,
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_data,
        callbacks=callbacks,
        strategy=place.strategy,
        verbose=config.verbose,
        config=dataclasses.asdict(config),
    )


def new_run_dir(output_dir, name):
    """Returns `output_dir` if given (created, resumable), else `runs/<name>-<timestamp>/`."""
    if output_dir is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = os.path.join("runs", f"{name}-{stamp}")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"Cannot create the output folder {output_dir!r} ({error.strerror}). Choose a "
            "writable folder with --output-dir."
        ) from error
    if not os.access(output_dir, os.W_OK):
        raise PermissionError(
            f"The output folder {output_dir!r} is not writable. Choose another with --output-dir."
        )
    return output_dir


def model_size_arguments(config, **fixed):
    """The model arguments of `config.size`, with `fixed` ones (vocabulary, lengths, dropout)
    and the config's `num_layers`, `hidden_dim`, `num_heads`, `intermediate_dim` overrides
    (those set, not None)."""
    overrides = {
        key: getattr(config, key)
        for key in ("num_layers", "hidden_dim", "num_heads", "intermediate_dim")
        if getattr(config, key) is not None
    }
    return size_arguments(config.size, **fixed, **overrides)


def make_optimizer(learning_rate, total_steps, warmup_steps, weight_decay, clip_norm):
    """AdamW with linear warm-up then cosine decay to 10% of the peak, and gradient clipping.

    Step k (1-based) runs at `schedule(k - 1)` (Keras evaluates the schedule at the optimizer's
    iteration count before the update): the warm-up reaches the peak at step
    `warmup_steps + 1` and the decay ends at step `total_steps`, whose rate is 10% of the peak.
    Biases and layer-norm parameters are excluded from weight decay. The update is
    `keras_transformer.training.optimizers.AdamW`: Keras's AdamW in one fused kernel per variable.
    """
    warmup_steps = min(warmup_steps, max(total_steps - 2, 0))  # leave a step of decay
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(total_steps - 1 - warmup_steps, 1),
        alpha=0.1,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        global_clipnorm=clip_norm if clip_norm else None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


class StepLimit(keras.callbacks.Callback):
    """Stops training once the optimizer has taken `steps` steps in all (resumed runs too).

    The loop runs no step after `stop_training` is set (on several workers, all of them stop
    at the same step), then evaluates and checkpoints the epoch as usual.
    """

    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.done = 0

    def on_train_begin(self, logs=None):
        self.done = int(self.model.optimizer.iterations.numpy())  # after a restore
        if self.done >= self.steps:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` have passed (checked after each batch)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if self.seconds and time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def save_model_atomic(model, path):
    """Saves a `.keras` file through a temporary file and a rename: never half-written."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".keras")
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def write_history(history, run_dir, chief=True):
    """Saves the Keras history as `history.json` (on the chief); returns the dict."""
    data = {key: [float(v) for v in values] for key, values in history.history.items()}
    if chief:
        write_json_atomic(os.path.join(run_dir, "history.json"), data)
    return data
