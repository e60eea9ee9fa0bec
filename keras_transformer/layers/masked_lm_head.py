"""Masked-language-model head: predicts tokens at the masked positions only."""

import keras
from keras import ops

from keras_transformer.layers.feed_forward import get_activation
from keras_transformer.layers.initializers import clone_initializer, default_initializer
from keras_transformer.layers.layer_normalization import LayerNormalization


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedLMHead(keras.layers.Layer):
    """Gathers the encoder outputs at `mask_positions` and predicts their tokens (BERT's head).

    Only the P masked positions go through the head: `LN(act(Dense(h)))`, then a projection onto
    the vocabulary plus a bias. Computing logits for the P masked tokens instead of all T saves a
    factor of about T/P in the largest matmul of pretraining.

    With `token_embedding` (a `TokenEmbedding`), the projection is tied to the input embedding
    (`h @ Eᵀ`); otherwise the head has its own (H, V) kernel. The tie is not part of the config:
    a model that ties its head passes its embedding again when it is rebuilt.

    Args:
        vocabulary_size: int. V.
        token_embedding: `TokenEmbedding` or `None`. The layer to tie the projection to.
        activation: str. Activation of the transform layer. Defaults to `"gelu"`.
        layer_norm_epsilon: float. Defaults to `1e-12` (BERT).
        kernel_initializer: initializer of the transform and the untied output kernels, each of
            which gets its own clone (`clone_initializer`). Defaults to
            `TruncatedNormal(stddev=0.02)`: values within ±0.04, std 0.0176.

    Call arguments:
        inputs: (B, T, H) encoder outputs.
        mask_positions: int (B, P) positions to predict.

    Returns:
        (B, P, V) logits.
    """

    def __init__(
        self,
        vocabulary_size,
        token_embedding=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer=None,
        **kwargs,
    ):
        if not isinstance(vocabulary_size, int) or vocabulary_size <= 0:
            raise ValueError(
                f"`vocabulary_size` must be a positive integer. Received: {vocabulary_size}"
            )
        if token_embedding is not None and token_embedding.vocabulary_size != vocabulary_size:
            raise ValueError(
                "The tied embedding's vocabulary differs from the head's: "
                f"{token_embedding.vocabulary_size} != vocabulary_size={vocabulary_size}."
            )
        get_activation(activation)
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.token_embedding = token_embedding
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        if kernel_initializer is None:
            kernel_initializer = default_initializer()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape, mask_positions_shape=None):
        hidden_dim = inputs_shape[-1]
        self.dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="transform_dense",
        )
        self.dense.build((None, None, hidden_dim))
        self.layer_norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="transform_norm"
        )
        self.layer_norm.build((None, None, hidden_dim))
        if self.token_embedding is None:
            self.output_kernel = self.add_weight(
                name="output_kernel",
                shape=(hidden_dim, self.vocabulary_size),
                initializer=clone_initializer(self.kernel_initializer),
            )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.vocabulary_size,), initializer="zeros"
        )
        self._activation_fn = get_activation(self.activation)
        self.built = True

    def call(self, inputs, mask_positions):
        mask_positions = ops.cast(mask_positions, "int32")
        x = ops.take_along_axis(inputs, ops.expand_dims(mask_positions, -1), axis=1)  # (B, P, H)
        x = self.layer_norm(self._activation_fn(self.dense(x)))
        if self.token_embedding is not None:
            logits = self.token_embedding(x, reverse=True)
        else:
            logits = ops.matmul(x, ops.cast(self.output_kernel, self.compute_dtype))
        return logits + ops.cast(self.output_bias, self.compute_dtype)  # (B, P, V)

    def compute_output_shape(self, inputs_shape, mask_positions_shape):
        return (*mask_positions_shape, self.vocabulary_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
