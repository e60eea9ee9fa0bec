"""Learned position embedding."""

import keras
from keras import ops

from keras_transformer.layers.initializers import clone_initializer, default_initializer


def check_sequence_length(length, max_sequence_length):
    """Raises `ValueError` if a static sequence length exceeds the maximum."""
    if isinstance(length, int) and length > max_sequence_length:
        raise ValueError(
            f"The sequence is longer than the model allows: length {length} > "
            f"max_sequence_length={max_sequence_length}. Truncate the inputs, or build the "
            "model with a larger `max_sequence_length`."
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionEmbedding(keras.layers.Layer):
    """A learned vector per position, added by the caller to the token embeddings.

    Args:
        max_sequence_length: int. Number of positions that can be embedded.
        initializer: initializer for the (max_sequence_length, H) table.
            Defaults to `TruncatedNormal(stddev=0.02)`: values within ±0.04, std 0.0176.

    Call arguments:
        inputs: (B, T, H) tensor; only its shape is used.
        start_index: int or scalar tensor. Position of the first token, for cached decoding.
            Defaults to `0`.

    Returns:
        (B, T, H) position embeddings for positions `start_index .. start_index + T - 1`.

    Example:
    >>> x = np.zeros((2, 5, 8), "float32")
    >>> PositionEmbedding(max_sequence_length=16)(x).shape
    TensorShape([2, 5, 8])
    """

    def __init__(self, max_sequence_length, initializer=None, **kwargs):
        if not isinstance(max_sequence_length, int) or max_sequence_length <= 0:
            raise ValueError(
                "`max_sequence_length` must be a positive integer. "
                f"Received: max_sequence_length={max_sequence_length}"
            )
        super().__init__(**kwargs)
        self.max_sequence_length = max_sequence_length
        if initializer is None:
            initializer = default_initializer()
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_sequence_length, inputs_shape[-1]),
            initializer=clone_initializer(self.initializer),
        )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        check_sequence_length(shape[1], self.max_sequence_length)
        table = ops.cast(self.position_embeddings, self.compute_dtype)
        positions = ops.slice(table, (start_index, 0), (shape[1], shape[2]))  # (T, H)
        return ops.broadcast_to(positions, shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_sequence_length": self.max_sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
