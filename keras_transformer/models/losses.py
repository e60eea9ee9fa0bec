"""Losses averaged over the real tokens of the whole global batch, on any number of replicas."""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class TokenMeanCrossEntropy(keras.losses.Loss):
    """From-logits cross-entropy averaged over the weighted tokens of the global batch.

    The loss is sum(w * loss) / sum(w) over every token of the global batch: padding (weight 0)
    counts in neither sum, so a batch cut to its longest row has the loss of the same batch
    padded further. Keras's `"mean_with_sample_weight"` reduction divides each replica's sum by
    that replica's own weight, which on N replicas averages N per-replica means instead; here
    each replica divides its sum by the weight all-reduced over the replicas, so the sum of the
    replicas' gradients is the gradient of the one-device loss.

    Args:
        label_smoothing: float. With `label_smoothing > 0`, `y_true` is one-hot (B, T, V) and
            the targets are smoothed as in `keras.losses.CategoricalCrossentropy`; with 0,
            `y_true` is the token ids (B, T). Defaults to `0.0`.
        name: str. Defaults to `"token_mean_cross_entropy"`.

    Example:
    >>> model.compile(optimizer="adamw", loss=TokenMeanCrossEntropy())
    """

    def __init__(self, label_smoothing=0.0, name="token_mean_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)  # always a sum here; the mean is taken in `__call__`
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing}"
            )
        super().__init__(name=name, reduction="sum", **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        if self.label_smoothing:
            return keras.losses.categorical_crossentropy(
                y_true, y_pred, from_logits=True, label_smoothing=self.label_smoothing
            )
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

    def __call__(self, y_true, y_pred, sample_weight=None):
        total = super().__call__(y_true, y_pred, sample_weight)  # this replica's sum(w * loss)
        if sample_weight is None:
            count = ops.cast(ops.prod(ops.shape(y_pred)[:-1]), total.dtype)
        else:
            count = ops.cast(ops.sum(sample_weight), total.dtype)
        count = ops.stop_gradient(count)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        return ops.divide_no_nan(total, count)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config["label_smoothing"] = self.label_smoothing
        return config
