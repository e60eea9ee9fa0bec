"""Token embedding with a reverse projection for tied output heads."""

import keras
import numpy as np
from keras import ops

from keras_transformer.layers.initializers import clone_initializer, default_initializer


@keras.saving.register_keras_serializable(package="keras_transformer")
class TokenEmbedding(keras.layers.Layer):
    """Maps token ids to vectors, and vectors back to vocabulary logits.

    `call(token_ids)` looks up rows of the (V, H) embedding matrix E. `call(x, reverse=True)`
    computes `x @ Eᵀ`, the logits of an output head that shares its weights with the input
    embedding (weight tying, as in the original Transformer, BERT and GPT-2).

    Token ids out of range raise a `ValueError` when they can be checked (eager inputs); inside a
    compiled graph TensorFlow's gather reports them.

    Args:
        vocabulary_size: int. Number of tokens V.
        hidden_dim: int. Embedding width H.
        embeddings_initializer: initializer for E. Defaults to
            `TruncatedNormal(stddev=0.02)`: values within ±0.04, std 0.0176.

    Call arguments:
        inputs: int (B, T) token ids, or with `reverse=True` a (B, T, H) tensor.
        reverse: bool. Project vectors onto the vocabulary instead. Defaults to `False`.

    Returns:
        (B, T, H) embeddings, or (B, T, V) logits with `reverse=True`.

    Example:
    >>> embedding = TokenEmbedding(vocabulary_size=100, hidden_dim=16)
    >>> vectors = embedding(np.array([[1, 2, 3]]))           # (1, 3, 16)
    >>> logits = embedding(vectors, reverse=True)            # (1, 3, 100)
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        embeddings_initializer=None,
        **kwargs,
    ):
        for name, value in (("vocabulary_size", vocabulary_size), ("hidden_dim", hidden_dim)):
            if not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        if embeddings_initializer is None:
            embeddings_initializer = default_initializer()
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, inputs_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocabulary_size, self.hidden_dim),
            initializer=clone_initializer(self.embeddings_initializer),
        )
        self.built = True

    def call(self, inputs, reverse=False):
        if reverse:
            kernel = ops.cast(self.embeddings, self.compute_dtype)
            return ops.matmul(inputs, ops.transpose(kernel))  # (B, T, V)
        check_token_ids(inputs, self.vocabulary_size)
        inputs = ops.cast(inputs, "int32")
        return ops.take(ops.cast(self.embeddings, self.compute_dtype), inputs, axis=0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config


def check_token_ids(token_ids, vocabulary_size):
    """Raises `ValueError` for ids outside [0, vocabulary_size) when the values are known."""
    try:
        values = np.asarray(token_ids)
    except Exception:  # symbolic tensors: checked by the gather itself at run time
        return
    if values.dtype == object or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= vocabulary_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"Token id {bad} is out of range: ids must be in [0, {vocabulary_size}) for "
            f"vocabulary_size={vocabulary_size}. Check that the tokenizer's vocabulary matches "
            "the model's `vocabulary_size`."
        )
