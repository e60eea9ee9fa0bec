"""The compiled step functions of the training loop: one train or test step over all replicas.

The train step is Keras's own (`keras.Model.train_step`, TensorFlow backend) with one change
that makes N replicas match one device exactly: gradients are summed across replicas *before*
the optimizer sees them. Keras 3's optimizer clips (`global_clipnorm`, `clipnorm`) each
replica's local gradient and sums afterwards, so with clipping on, 2 replicas do not train like
1 device (measured here: Keras's step on 2 mirrored replicas ended 2e-3 away from one device
after 4 steps with `global_clipnorm=1.0`, 6e-3 with 0.1; this step, 2e-7). Here each replica
computes its loss on its slice of the global batch (Keras scales it by 1 / replicas, so the
sum of the replicas' gradients is the gradient of the global-batch mean), the gradients are
all-reduced once, then `optimizer.apply` clips and updates with the summed gradient (its own
all-reduce is switched off while it is traced). A model that overrides `train_step` keeps its
own step, unchanged.

Under `mixed_float16` the compiled optimizer is a `LossScaleOptimizer`: each replica scales its
loss by the dynamic scale, the scaled gradients are summed across replicas, and the optimizer
then unscales them, checks them for inf / NaN and skips the update and halves the scale if any
is not finite, or applies it and doubles the scale every `dynamic_growth_steps` finite steps.
Because it sees the *summed* gradients, every replica takes the same decision. (Keras's own
step hands the optimizer each replica's local gradients, and the optimizer acts on replica 0's
verdict: with it in this loop, an overflow in replica 1's rows only turned the weights to NaN.)

With `model.jit_compile` True (`compile(jit_compile=True)`), each replica's forward and
backward pass is XLA-compiled, as Keras's `one_step_on_data` is, and so is its test step; the
all-reduce and the optimizer stay outside the compiled function. (Inside it, the all-reduce
fails on CPU devices: "`merge_call` called while defining a new graph"; and one compiled
function shared by the replicas reads replica 1's variables from replica 0's device.)

Every function returns the metrics of all replicas: each replica's metric state (Keras keeps
it per replica, summed on read) is summed across every worker in one all-reduce and turned into
results with `metric.stateless_result`, so logs are the global values, identical on every
worker. (Reading the metrics in cross-replica context, as `get_metrics_result()` does, costs
one collective per metric variable.)
"""

import contextlib

import keras
import tensorflow as tf

SUM = tf.distribute.ReduceOp.SUM


def uses_default_train_step(model):
    """True unless the model's class overrides `train_step`."""
    return getattr(type(model), "train_step", None) is getattr(keras.Model, "train_step", None)


@contextlib.contextmanager
def gradients_already_summed(optimizer):
    """While tracing, the optimizer applies the gradients it gets without all-reducing them."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps one
    if not hasattr(type(inner), "_all_reduce_sum_gradients"):
        raise RuntimeError(
            f"This Keras version's optimizer ({type(inner).__name__}, Keras "
            f"{keras.__version__}) has no `_all_reduce_sum_gradients`; the training loop "
            "cannot tell it that gradients are already summed. Pin Keras 3.15 or update "
            "keras_transformer.training.steps."
        )
    inner._all_reduce_sum_gradients = list  # (grad, var) pairs through unchanged
    try:
        yield
    finally:
        del inner._all_reduce_sum_gradients


@contextlib.contextmanager
def _no_change(optimizer):
    yield


def _batch_size(x):
    return tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]


def replica_train_step(model):
    """The per-replica train step (runs inside `strategy.run`)."""
    if not uses_default_train_step(model):
        return model.train_step

    def forward_backward(x, y, sample_weight):
        """The model's outputs and the gradients of this replica's (scaled) loss."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True) if model._call_has_training_arg else model(x)
            # The loss of this replica's rows, already divided by the number of replicas.
            loss = model._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            model._loss_tracker.update_state(
                loss * tf.cast(replicas, loss.dtype), sample_weight=_batch_size(x)
            )
            # Under mixed_float16 the optimizer is a LossScaleOptimizer: the loss is multiplied
            # by its dynamic scale here, and `apply_gradients` divides the summed gradients by
            # it, skips the update if any is not finite and updates the scale.
            loss = model.optimizer.scale_loss(loss)
        return y_pred, tape.gradient(loss, model.trainable_weights)

    def train_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = model.trainable_weights
        if not variables:
            raise ValueError(f"The model {model.name!r} has no trainable weights to train.")
        step = forward_backward
        if getattr(model, "jit_compile", False):
            # XLA compiles the forward and backward pass; the all-reduce and the optimizer
            # stay outside (see the module docstring). Made here, it is one compiled
            # function per replica, placed on that replica's device.
            step = tf.function(forward_backward, jit_compile=True, reduce_retracing=True)
        y_pred, gradients = step(x, y, sample_weight)
        if replicas > 1:
            present = [i for i, g in enumerate(gradients) if g is not None]
            summed = tf.distribute.get_replica_context().all_reduce(
                SUM, [gradients[i] for i in present]
            )
            gradients = list(gradients)
            for i, gradient in zip(present, summed, strict=True):
                gradients[i] = gradient
        # With several replicas this runs inside `gradients_already_summed` (see
        # `make_train_function`): the optimizer clips and applies the summed gradients as is.
        model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    return train_step


def metrics_reader(model, strategy):
    """`read() -> logs`: the global metric results, for use inside a `tf.function`.

    With one replica this is `model.get_metrics_result()`. With several, every metric variable
    is summed across replicas in a single all-reduce (Keras's metric variables are all
    sum-aggregated); a model with other kinds falls back to `get_metrics_result()`.
    """
    metrics = list(model.metrics)
    variables = [v for metric in metrics for v in metric.variables]
    summable = all(getattr(v, "aggregation", "sum") == "sum" for v in variables)
    if strategy.num_replicas_in_sync == 1 or not summable or not variables:
        return model.get_metrics_result

    def summed_locally():
        values = [tf.cast(tf.identity(v.value), tf.float64) for v in variables]  # this replica's
        return tf.distribute.get_replica_context().all_reduce(SUM, values)

    def read():
        per_replica = strategy.run(summed_locally)
        values = [strategy.experimental_local_results(v)[0] for v in per_replica]
        values = [tf.cast(x, v.dtype) for x, v in zip(values, variables, strict=True)]
        logs, start = {}, 0
        for metric in metrics:
            count = len(metric.variables)
            result = metric.stateless_result(values[start : start + count])
            start += count
            if isinstance(result, dict):
                logs.update(result)
            else:
                logs[metric.name] = result
        return logs

    return read


def make_train_function(model, strategy, sync_stop):
    """`train_function(iterator, stop) -> (ran, stop, logs)`: a step unless a worker stopped.

    Args:
        model: compiled Keras model, built under `strategy`.
        strategy: `tf.distribute.Strategy`.
        sync_stop: bool. All-reduce the `stop` flags first (multi-worker), so that a callback
            that stops one worker (a time budget, say) stops them all at the same step.

    The returned function takes a distributed iterator and a bool `stop` (this worker's
    `model.stop_training`), and returns `ran` (False when a worker asked to stop or the data ran
    out), `stop` (whether any worker asked to stop) and the global metric logs.
    """
    step = replica_train_step(model)
    summed = uses_default_train_step(model) and strategy.num_replicas_in_sync > 1
    # Entered around `strategy.run`, not inside the step: local replicas trace in threads.
    optimizer_mode = gradients_already_summed if summed else _no_change
    read_metrics = metrics_reader(model, strategy)

    @tf.function
    def train_function(iterator, stop):
        if sync_stop:
            flags = strategy.run(lambda: tf.cast(stop, tf.float32))
            stop = strategy.reduce(SUM, flags, axis=None) > 0
        optional = iterator.get_next_as_optional()

        def run():
            with optimizer_mode(model.optimizer):
                strategy.run(step, args=(optional.get_value(),))
            return tf.constant(True)

        go = tf.logical_and(tf.logical_not(stop), optional.has_value())
        ran = tf.cond(go, run, lambda: tf.constant(False))
        return ran, stop, read_metrics()

    return train_function


def replica_test_step(model):
    """The per-replica test step: Keras's `test_step`, XLA-compiled if `model.jit_compile`."""
    if not getattr(model, "jit_compile", False):
        return model.test_step

    def test_step(data):  # one compiled function per replica, as in `replica_train_step`
        return tf.function(model.test_step, jit_compile=True, reduce_retracing=True)(data)

    return test_step


def make_test_function(model, strategy):
    """`test_function(iterator) -> (ran, logs)`: one evaluation step (Keras's `test_step`)."""
    read_metrics = metrics_reader(model, strategy)
    step = replica_test_step(model)

    @tf.function
    def test_function(iterator):
        optional = iterator.get_next_as_optional()

        def run():
            strategy.run(step, args=(optional.get_value(),))
            return tf.constant(True)

        ran = tf.cond(optional.has_value(), run, lambda: tf.constant(False))
        return ran, read_metrics()

    return test_function
