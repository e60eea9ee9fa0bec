"""Dropout that draws 16 random bits per element."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with half the random-number work.

    Keras draws one 32-bit uniform float per element (Philox on CPU, about 5 ns an element here)
    and then compares, casts and multiplies. This layer draws one 32-bit integer per *two*
    elements, views it as two 16-bit integers, and keeps an element where its 16 bits are at
    least `round(rate · 65536)`; kept elements are scaled by `65536 / (65536 - threshold)`, the
    exact inverse of the keep probability, so the output is unbiased. The drop probability is
    `rate` rounded to a multiple of 1/65536 (0.1 → 0.100006). Everything else (config, seed,
    `noise_shape`, inference) is `keras.layers.Dropout`'s; inputs with `noise_shape`, an odd or
    unknown last dimension, or a rate within 1/65536 of 1 use Keras's implementation.

    Args:
        rate: float. Fraction of the elements to drop, in [0, 1).
        noise_shape, seed: as in `keras.layers.Dropout`.

    Call arguments:
        inputs: tensor of any shape.
        training: bool. Dropout runs only in training.

    Returns:
        A tensor of the same shape and dtype.

    Example:
    >>> layer = Dropout(0.1, seed=0)
    >>> layer(np.ones((2, 8), "float32"), training=True).shape
    TensorShape([2, 8])
    """

    def call(self, inputs, training=False):
        width = inputs.shape[-1]
        threshold = int(round(self.rate * 65536))
        if (
            not training
            or self.rate == 0
            or self.noise_shape is not None
            or width is None
            or width % 2
            or threshold >= 65536
        ):
            return super().call(inputs, training=training)
        shape = ops.shape(inputs)
        bits = keras.random.randint(
            (*shape[:-1], width // 2), -(2**31), 2**31 - 1, dtype="int32", seed=self.seed_generator
        )
        keep = ops.view(bits, "uint16") >= ops.cast(threshold, "uint16")  # (..., width)
        scaled = inputs * ops.cast(65536 / (65536 - threshold), inputs.dtype)
        return ops.where(keep, scaled, ops.zeros_like(scaled))
