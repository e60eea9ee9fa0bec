"""AdamW whose update is one fused TensorFlow kernel per variable.

Keras's `AdamW.update_step` is written in `keras.ops`: each variable's update is about ten
element-wise ops (subtract, multiply, square, assign_add twice, sqrt, add, divide, assign_sub),
each one a pass over the variable's memory, and its decoupled weight decay three more. On a
CPU the update is memory-bound, so those passes are its cost: for a BERT-mini size model it is
about an eighth of a training step. This `AdamW` computes the same update with TensorFlow's
`ResourceApplyAdam` kernel (moments and variable updated in one pass, in place) and the weight
decay with `ResourceApplyGradientDescent` (`w -= lr · wd · w`, one pass).

The arithmetic is Keras's: with `t` the step, `alpha = lr · sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
`m += (g - m)(1 - beta_1)`, `v += (g² - v)(1 - beta_2)`, `w -= alpha · m / (sqrt(v) + epsilon)`,
the decay `w -= lr · wd · w` applied first, to the same variables (`exclude_from_weight_decay`
works as in Keras). Only the order of floating-point operations inside the kernel differs, so
the weights agree with Keras's `AdamW` to float32 rounding (tested). The optimizer's variables
(iterations, momentums, velocities) are Keras's own: checkpoints and saved models of either
class restore into the other. `amsgrad=True`, or a backend other than TensorFlow, uses Keras's
update unchanged.
"""

import keras
import tensorflow as tf


def _resource(variable):
    """The `tf.Variable` under a Keras variable (in an `extended.update` context, the copy of
    the device being updated)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


@keras.saving.register_keras_serializable(package="keras_transformer")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with each variable's update one fused kernel (same numbers).

    Args:
        Those of `keras.optimizers.AdamW` (`learning_rate`, `weight_decay`, `beta_1`,
        `beta_2`, `epsilon`, `amsgrad`, `clipnorm`, `global_clipnorm`, ...), same defaults.

    Example:
    >>> optimizer = AdamW(1e-3, weight_decay=0.01, global_clipnorm=1.0)
    >>> optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    """

    def _fused(self):
        return keras.backend.backend() == "tensorflow" and not self.amsgrad

    def _adam_scalars(self, dtype):
        """The kernel's scalar inputs in `dtype` but the rate: the same for every variable of one
        step. (The rate comes per replica: under our loop it is a `PerReplica` value here.)"""
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return {
            "beta1_power": tf.pow(beta_1, step),
            "beta2_power": tf.pow(beta_2, step),
            "beta1": beta_1,
            "beta2": beta_2,
            "epsilon": tf.cast(self.epsilon, dtype),
        }

    def _fused_update(self, variable, gradient, learning_rate, scalars):
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_resource(variable).handle,
            m=_resource(self._momentums[index]).handle,
            v=_resource(self._velocities[index]).handle,
            grad=tf.cast(tf.convert_to_tensor(gradient), variable.dtype),  # IndexedSlices: dense
            lr=tf.cast(learning_rate, variable.dtype),
            **scalars,
        )

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused():
            return super().update_step(gradient, variable, learning_rate)
        self._fused_update(variable, gradient, learning_rate, self._adam_scalars(variable.dtype))

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        """Keras's per-variable update loop, with the scalars computed once per dtype."""
        if not self._fused():
            return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        scalars = {}
        for gradient, variable in grads_and_vars:
            dtype = variable.dtype
            if dtype not in scalars:
                scalars[dtype] = self._adam_scalars(dtype)
            distribution.extended.update(
                variable,
                self._fused_update,
                args=(gradient, learning_rate, scalars[dtype]),
                group=False,
            )

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self._fused():
            return super()._apply_weight_decay(variables)
        rate = tf.cast(self.learning_rate, "float32") * self.weight_decay  # once per step

        def decay(variable):
            if self._use_weight_decay(variable):
                tf.raw_ops.ResourceApplyGradientDescent(
                    var=variable.handle,
                    alpha=tf.cast(rate, variable.dtype),
                    delta=tf.identity(variable),
                )

        def decay_all(strategy, variables):
            for variable in variables:
                strategy.extended.update(_resource(variable), decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            decay_all, self._distribution_strategy, variables
        )
