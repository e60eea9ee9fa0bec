"""The fixed sinusoidal position encoding of "Attention Is All You Need"."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed position encoding: PE[p, 2i] = sin(p / w^(2i/H)), PE[p, 2i+1] = cos(p / w^(2i/H)).

    No weights; any length works. `w` is `max_wavelength` (10,000 in the original paper). The
    caller adds the result to the token embeddings.

    Args:
        max_wavelength: float. The longest wavelength w. Defaults to `10000`.

    Call arguments:
        inputs: (B, T, H) tensor; only its shape is used. H must be even.
        start_index: int or scalar tensor. Position of the first token. Defaults to `0`.

    Returns:
        (B, T, H) encodings.

    Example:
    >>> x = np.zeros((1, 4, 8), "float32")
    >>> SinusoidalPositionEncoding()(x)[0, 0, :2]   # position 0: sin 0, cos 0
    [0., 1.]
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        if max_wavelength <= 0:
            raise ValueError(
                f"`max_wavelength` must be positive. Received: max_wavelength={max_wavelength}"
            )
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        hidden_dim = shape[-1]
        if isinstance(hidden_dim, int) and hidden_dim % 2:
            raise ValueError(
                "SinusoidalPositionEncoding needs an even hidden size (sin/cos pairs). "
                f"Received: hidden size {hidden_dim}"
            )
        positions = ops.cast(ops.arange(shape[1]) + start_index, "float32")  # (T,)
        pair_index = ops.cast(ops.arange(hidden_dim // 2), "float32")  # (H/2,)
        frequencies = ops.power(
            ops.cast(self.max_wavelength, "float32"), -2.0 * pair_index / hidden_dim
        )
        angles = ops.expand_dims(positions, 1) * ops.expand_dims(frequencies, 0)  # (T, H/2)
        # Interleave: even features sin, odd features cos.
        encoding = ops.reshape(
            ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1), (-1, hidden_dim)
        )
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
