"""Pieces every workflow shares: run folders, optimizer and schedule, callbacks, atomic saves."""

import datetime
import json
import os
import shutil
import tempfile
import time

import keras

from workflows.config import write_json_atomic


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


def make_optimizer(learning_rate, total_steps, warmup_steps, weight_decay, clip_norm):
    """AdamW with linear warm-up then cosine decay to 10% of the peak, and gradient clipping.

    Biases and layer-norm parameters are excluded from weight decay.
    """
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(total_steps - warmup_steps, 1),
        alpha=0.1,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        global_clipnorm=clip_norm if clip_norm else None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


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


def write_history(history, run_dir):
    """Saves the Keras history as `history.json`; returns the dict."""
    data = {key: [float(v) for v in values] for key, values in history.history.items()}
    write_json_atomic(os.path.join(run_dir, "history.json"), data)
    return data


def clear_folder(path):
    if os.path.isdir(path):
        shutil.rmtree(path)


def dump_json(data):
    return json.dumps(data, indent=2, sort_keys=True, default=str)


class ResumableBackup(keras.callbacks.Callback):
    """Keras' `BackupAndRestore`, made atomic: a killed run never leaves a torn checkpoint.

    After every epoch the weights (optimizer state included) go to a new file through a
    temporary name and a rename, then a small `state.json` naming that file is replaced
    atomically, then older files are removed. At the start of `fit`, the state (if any) is read
    and training continues after the last completed epoch. Keras' own callback rewrites one
    HDF5 file in place, which a kill during the write corrupts (seen here:
    "bad object header version number" on restart). The backup is removed when `fit` ends.
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = backup_dir
        self.state_path = os.path.join(backup_dir, "state.json")

    def on_train_begin(self, logs=None):
        if not os.path.isfile(self.state_path):
            return
        with open(self.state_path, encoding="utf-8") as file:
            state = json.load(file)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        self.model._initial_epoch = state["epoch"]  # what BackupAndRestore sets, too
        print(f"[resume] continuing after epoch {state['epoch']} from {self.backup_dir}")

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        temporary = os.path.join(self.backup_dir, f".tmp-{name}")
        self.model.save_weights(temporary, overwrite=True)
        os.replace(temporary, os.path.join(self.backup_dir, name))
        write_json_atomic(self.state_path, {"epoch": epoch + 1, "weights": name})
        for other in os.listdir(self.backup_dir):
            if other.endswith(".weights.h5") and other != name:
                os.remove(os.path.join(self.backup_dir, other))

    def on_train_end(self, logs=None):
        clear_folder(self.backup_dir)
