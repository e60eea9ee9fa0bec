"""`fit` and `evaluate`: Keras's training loop, written so it also runs on several workers.

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras issue 20585: "Attempt to
convert a value (PerReplica...) with an unsupported type"). This loop keeps what users rely on
from `fit` — the compiled optimizer, loss and metrics, the callbacks (progress bar, History,
ModelCheckpoint, TensorBoard, EarlyStopping, CSVLogger, `model.stop_training`), validation with
`val_` logs, a `History` back — and adds what several workers need:

- every worker takes its rows of each global batch (`data.distribute_dataset`), so N workers
  reach the weights one process reaches with the same global batch and seed;
- gradients are summed across replicas before clipping (`steps`), as on one device;
- the chief alone writes final files: on the other workers, ModelCheckpoint, TensorBoard and
  CSVLogger write into a private temporary folder that is removed at the end;
- workers check at start that they were given the same settings (`check_same_config`);
- checkpoints (model, optimizer, epoch, step) in `checkpoint_dir` make a rerun resume where the
  last epoch ended, skipping the batches already trained on; a `BackupAndRestore` callback is
  taken as the checkpoint folder;
- a lost worker ends the job with `WorkerLostError` in bounded time (TensorFlow's heartbeats,
  plus a watchdog process that stops a worker whose step hangs).

It runs under the default, one-device, `mirrored` and `multi_worker` strategies, so a workflow
has one code path and one set of numbers, whatever the cluster; under a `TPUStrategy` it hands
over to Keras's `model.fit` (which supports TPUs; not run here, there is no TPU).
"""

import shutil
import tempfile
import weakref

import keras
import tensorflow as tf

from keras_transformer.training import steps as steps_lib
from keras_transformer.training.agreement import check_same_config, process_watchdog
from keras_transformer.training.callbacks import redirect_writers, split_backup_and_restore
from keras_transformer.training.checkpoints import TrainingCheckpoint
from keras_transformer.training.cluster import current_cluster
from keras_transformer.training.data import distribute_dataset

# The errors a collective raises when a peer dies or stops answering.
PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)
# Words that mark the informative line of a collective's error message.
_TELLING = ("aborted by", "unhealthy", "Connection", "connect", "Deadline", "timed out")


class WorkerLostError(RuntimeError):
    """Another worker died or stopped answering; the job stopped and can be run again."""


def _check_arguments(model, epochs, steps_per_epoch, validation_steps):
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise ValueError(
            f"The model {model.name!r} is not compiled. Call `model.compile(...)` inside "
            "`strategy.scope()` before `fit`."
        )
    for name, value, allow_none in (
        ("epochs", epochs, False),
        ("steps_per_epoch", steps_per_epoch, True),
        ("validation_steps", validation_steps, True),
    ):
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _element_spec(dataset, strategy):
    """The element spec of a dataset, or of what a `dataset_fn(input_context)` returns."""
    if isinstance(dataset, tf.data.Dataset):
        return dataset.element_spec
    context = tf.distribute.InputContext(1, 0, strategy.num_replicas_in_sync)
    return dataset(context).element_spec


def _build(model, strategy, dataset):
    """Creates the model's, metrics' and optimizer's variables (under `strategy`)."""
    spec = _element_spec(dataset, strategy)
    with strategy.scope():
        if spec is not None and hasattr(model, "_symbolic_build"):
            model._symbolic_build(data_batch=spec)  # what `fit` does; specs suffice
        elif not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)


def _configuration(model, strategy, epochs, steps_per_epoch, dataset, config):
    """What every worker must agree on, by section (compared as fingerprints at start)."""
    try:
        architecture = model.to_json()
    except NotImplementedError:  # a subclassed model without `get_config`: its variables
        architecture = [(v.path, tuple(v.shape), str(v.dtype)) for v in model.weights]
    return {
        "model": architecture,
        "optimizer": keras.saving.serialize_keras_object(model.optimizer),
        "loss": keras.saving.serialize_keras_object(getattr(model, "loss", None)),
        "training": {"epochs": epochs, "steps_per_epoch": steps_per_epoch},
        "data": str(_element_spec(dataset, strategy)),
        "config": config,
    }


# model -> (strategy, optimizer, compiled loss, compiled metrics, test function).
_TEST_FUNCTIONS = weakref.WeakKeyDictionary()


def _test_function(model, strategy):
    """The model's compiled test step, made once per compile and strategy (as Keras keeps its
    `model.test_function`): every `evaluate` after the first reuses its traces."""
    key = (
        strategy,
        model.optimizer,
        getattr(model, "_compile_loss", None),
        getattr(model, "_compile_metrics", None),
    )
    cached = _TEST_FUNCTIONS.get(model)
    if cached is None or any(a is not b for a, b in zip(cached[:-1], key, strict=True)):
        cached = (*key, steps_lib.make_test_function(model, strategy))
        _TEST_FUNCTIONS[model] = cached
    return cached[-1]


def _pythonify(logs):
    out = {}
    for key, value in dict(logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


class _Loop:
    """The state one `fit` or `evaluate` shares: model, strategy, cluster, watchdog."""

    def __init__(self, model, strategy, step_timeout):
        self.model = model
        self.strategy = strategy
        self.cluster = current_cluster(strategy)
        self.multi_worker = self.cluster.is_multi_worker
        self.watchdog = process_watchdog(self.cluster.peers) if self.multi_worker else None
        self.step_timeout = step_timeout
        self.checkpoint = None
        self.epoch = self.batch = 0

    @property
    def name(self):
        return f"worker {self.cluster.index} of {self.cluster.num_workers}"

    def lost_worker(self, error):
        """The `WorkerLostError` for a collective's error: where, why, how to resume."""
        if self.checkpoint is not None and self.checkpoint.latest:
            resume = (
                f"The last checkpoint is {self.checkpoint.latest!r}; run the same command "
                "again to resume."
            )
        else:
            resume = "No checkpoint was written yet; run the same command again to start over."
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        telling = [line for line in lines if any(word in line for word in _TELLING)]
        reason = (telling or lines or [""])[0][:300]
        return WorkerLostError(
            f"{self.name[0].upper()}{self.name[1:]} lost contact with another worker at epoch "
            f"{self.epoch + 1}, step {self.batch} ({type(error).__name__}: {reason}). The job "
            f"stopped. {resume}"
        )

    def any_worker_stopped(self):
        """After an epoch: did a callback on any worker set `stop_training`? (All agree.)"""
        if self.multi_worker:
            flag = tf.constant(float(bool(self.model.stop_training)))
            self.model.stop_training = bool(self._any_stopped(flag))
        return bool(self.model.stop_training)

    @tf.function
    def _any_stopped(self, flag):
        flags = self.strategy.run(lambda: tf.identity(flag))
        return self.strategy.reduce(steps_lib.SUM, flags, axis=None) > 0

    def evaluate(self, test_function, data, steps, callbacks):
        """Runs the test steps over `data` (a distributed dataset); returns the logs."""
        model = self.model
        callbacks.on_test_begin()
        model.reset_metrics()
        logs, batch, iterator = {}, 0, iter(data)
        while steps is None or batch < steps:
            callbacks.on_test_batch_begin(batch)
            ran, step_logs = test_function(iterator)
            if self.watchdog:
                self.watchdog.kick()
            if not bool(ran):
                break
            logs = step_logs
            callbacks.on_test_batch_end(batch, logs)
            batch += 1
        logs = _pythonify(logs)
        callbacks.on_test_end(logs)
        return logs

    def train(
        self,
        train_data,
        epochs,
        steps_per_epoch,
        validation,
        validation_steps,
        callbacks,
        initial_epoch,
        step,
    ):
        """Keras `fit`'s epoch loop over distributed datasets; returns the `History`."""
        model = self.model
        train_function = steps_lib.make_train_function(
            model, self.strategy, sync_stop=self.multi_worker
        )
        test_function = None
        if validation is not None:
            test_function = _test_function(model, self.strategy)
        iterator = iter(train_data) if steps_per_epoch else None
        model.stop_training = False
        callbacks.on_train_begin()
        training_logs = None
        first_step = True
        for epoch in range(initial_epoch, epochs):
            self.epoch = epoch
            model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            if not steps_per_epoch:
                iterator = iter(train_data)
            logs = {}
            self.batch = 0
            while steps_per_epoch is None or self.batch < steps_per_epoch:
                callbacks.on_train_batch_begin(self.batch)
                ran, stop, step_logs = train_function(
                    iterator, tf.constant(bool(model.stop_training))
                )
                if self.watchdog and first_step:
                    self.watchdog.arm(self.step_timeout, f"{self.name}: a training step hung")
                    first_step = False
                elif self.watchdog:
                    self.watchdog.kick()
                if bool(stop):  # this worker's callbacks asked, or another worker's
                    model.stop_training = True
                    break
                if not bool(ran):  # the data ran out
                    if steps_per_epoch:
                        print(
                            f"[keras_transformer] the training data ran out after {step} "
                            "steps; stopping (repeat the dataset, or lower steps_per_epoch x "
                            "epochs).",
                            flush=True,
                        )
                        model.stop_training = True
                    break
                logs = step_logs
                step += 1
                callbacks.on_train_batch_end(self.batch, logs)
                self.batch += 1
                if model.stop_training and not self.multi_worker:
                    break
            epoch_logs = _pythonify(logs)
            if validation is not None:
                val_logs = self.evaluate(test_function, validation, validation_steps, callbacks)
                epoch_logs.update({f"val_{key}": value for key, value in val_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if self.checkpoint is not None:
                self.checkpoint.save(epoch + 1, step)
            if self.any_worker_stopped():
                break
        if hasattr(model.optimizer, "finalize_variable_values"):
            model.optimizer.finalize_variable_values(model.trainable_weights)
        callbacks.on_train_end(logs=training_logs)
        return model.history


def _keras_fit(model, dataset, callbacks, checkpoint_dir, delete_at_end, **kwargs):
    """Under a `TPUStrategy`: Keras's own `fit` (which supports TPUs)."""
    if checkpoint_dir:
        backup = keras.callbacks.BackupAndRestore(checkpoint_dir, delete_checkpoint=delete_at_end)
        callbacks = [*callbacks, backup]
    return model.fit(dataset, callbacks=callbacks, **kwargs)


def fit(
    model,
    dataset,
    epochs=1,
    steps_per_epoch=None,
    validation_data=None,
    validation_steps=None,
    callbacks=None,
    strategy=None,
    verbose=1,
    checkpoint_dir=None,
    initial_epoch=0,
    config=None,
    startup_timeout=300.0,
    step_timeout=600.0,
):
    """Trains `model` like `model.fit`, on one device or many workers.

    Args:
        model: a Keras model built and compiled inside `strategy.scope()`.
        dataset: `tf.data.Dataset` of *global* batches `(x, y)` or `(x, y, sample_weight)`,
            exactly what `model.fit` would take on one machine (each worker keeps its rows of
            every batch); or a function `input_context -> tf.data.Dataset` of per-replica
            batches, to shard by file.
        epochs: int. Defaults to `1`.
        steps_per_epoch: int or None. Steps per epoch over one iterator that runs across
            epochs (as `model.fit` does); `None`: each epoch reads `dataset` to its end.
        validation_data: `tf.data.Dataset` of global batches, or None. Evaluated after every
            epoch; its metrics are logged with a `val_` prefix.
        validation_steps: int or None. Defaults to the whole validation dataset.
        callbacks: list of `keras.callbacks.Callback`. A `BackupAndRestore` is replaced by
            checkpoints in its `backup_dir` (unless `checkpoint_dir` is given), removed when
            training completes if its `delete_checkpoint` is True (its default).
        strategy: `tf.distribute.Strategy`. Defaults to the one the model was built under.
        verbose: int. 0 silent, 1 progress bar, 2 one line per epoch (chief only).
        checkpoint_dir: str or None. Checkpoint after every epoch and resume from the latest
            one. Defaults to no checkpoints.
        initial_epoch: int. First epoch (a restored checkpoint may start later).
        config: JSON-able or None. The run's settings, compared across workers at start.
        startup_timeout: float. Seconds allowed, in multi-worker runs, for the configuration
            check and the first step (tracing included). Defaults to `300`.
        step_timeout: float or None. Seconds any later step may take before the watchdog stops
            this worker (a hung peer). Defaults to `600`; `None` disables it.

    Returns:
        `keras.callbacks.History` (also `model.history`).

    Raises:
        WorkerLostError: another worker died or hung; run again to resume from the checkpoint.
        ConfigMismatchError: workers were started with different settings.

    Example:
    >>> with strategy.scope():
    ...     model = GPTCausalLM(GPTBackbone.from_size("tiny", vocabulary_size=100))
    ...     model.compile()
    >>> history = fit(model, train_ds, epochs=3, steps_per_epoch=100,
    ...               validation_data=val_ds, checkpoint_dir="runs/x/checkpoints")
    """
    _check_arguments(model, epochs, steps_per_epoch, validation_steps)
    strategy = strategy or model.distribute_strategy
    callbacks, checkpoint_dir, delete_at_end = split_backup_and_restore(callbacks, checkpoint_dir)
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return _keras_fit(
            model,
            dataset,
            callbacks,
            checkpoint_dir,
            delete_at_end,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            validation_steps=validation_steps,
            verbose=verbose,
            initial_epoch=initial_epoch,
        )
    loop = _Loop(model, strategy, step_timeout)
    cluster = loop.cluster
    temp_dir = None
    if not cluster.is_chief:  # its files go to a private folder, removed at the end
        temp_dir = tempfile.mkdtemp(prefix=f"keras_transformer-worker{cluster.index}-")
        redirect_writers(callbacks, temp_dir)
        verbose = 0
    try:
        if loop.watchdog:
            loop.watchdog.arm(startup_timeout, f"{loop.name} did not finish its start-up")
            sections = _configuration(model, strategy, epochs, steps_per_epoch, dataset, config)
            check_same_config(strategy, sections)
        _build(model, strategy, dataset)
        skip = 0
        if checkpoint_dir:
            loop.checkpoint = TrainingCheckpoint(model, checkpoint_dir, cluster, strategy)
            restored_epoch, restored_step = loop.checkpoint.restore()
            if restored_epoch:
                initial_epoch = max(initial_epoch, restored_epoch)
                skip = restored_step if steps_per_epoch else 0
                if cluster.is_chief and verbose:
                    print(f"Resuming from {loop.checkpoint.latest} (epoch {restored_epoch}).")
        callback_list = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
            model=model,
        )
        validation = distribute_dataset(validation_data, strategy) if validation_data else None
        try:
            history = loop.train(
                distribute_dataset(dataset, strategy, skip_batches=skip),
                epochs,
                steps_per_epoch,
                validation,
                validation_steps,
                callback_list,
                initial_epoch,
                skip,
            )
        except PEER_ERRORS as error:
            if not loop.multi_worker:
                raise
            raise loop.lost_worker(error) from error
        if delete_at_end and cluster.is_chief:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return history
    finally:
        if loop.watchdog:
            loop.watchdog.disarm()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def evaluate(
    model, dataset, steps=None, strategy=None, callbacks=None, verbose=0, step_timeout=600.0
):
    """Evaluates like `model.evaluate(..., return_dict=True)`, on one device or many workers.

    Args:
        model: a compiled Keras model built inside `strategy.scope()`.
        dataset: `tf.data.Dataset` of global batches.
        steps: int or None. Defaults to the whole dataset.
        strategy: `tf.distribute.Strategy`. Defaults to the model's.
        callbacks: list of `keras.callbacks.Callback`.
        verbose: int. 0 silent, 1 progress bar (chief only).
        step_timeout: float or None. In multi-worker runs, seconds a step may take before the
            watchdog stops this worker. Defaults to `600`.

    Returns:
        dict of metric name -> float, the same on every worker.
    """
    strategy = strategy or model.distribute_strategy
    loop = _Loop(model, strategy, step_timeout)
    _build(model, strategy, dataset)
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_progbar=bool(verbose) and loop.cluster.is_chief,
        verbose=verbose,
        epochs=1,
        steps=steps,
        model=model,
    )
    test_function = _test_function(model, strategy)
    if loop.watchdog:
        loop.watchdog.arm(step_timeout, f"{loop.name}: an evaluation step hung")
    try:
        data = distribute_dataset(dataset, strategy)
        return loop.evaluate(test_function, data, steps, callback_list)
    except PEER_ERRORS as error:
        if not loop.multi_worker:
            raise
        raise loop.lost_worker(error) from error
    finally:
        if loop.watchdog:
            loop.watchdog.disarm()
