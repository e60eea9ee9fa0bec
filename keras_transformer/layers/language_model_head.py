"""Language-model head: a linear projection onto the vocabulary (then softmax)."""

import keras
from keras import ops

from keras_transformer.layers.initializers import clone_initializer, default_initializer


@keras.saving.register_keras_serializable(package="keras_transformer")
class LanguageModelHead(keras.layers.Layer):
    """Projects every position onto the vocabulary: `logits = h @ W (+ b)`, `probs = softmax`.

    Tied by default: with `token_embedding` given, `W = Eᵀ` of that `TokenEmbedding` (GPT-2,
    the original Transformer). Untied (`token_embedding=None`), the head has its own (H, V) kernel.
    Models return logits (`activation=None`) and train with a from-logits loss, which is the
    numerically stable form of softmax + cross-entropy; `activation="softmax"` returns
    probabilities instead. Logits are computed in the layer's compute dtype.

    Args:
        vocabulary_size: int. V.
        token_embedding: `TokenEmbedding` or `None`. The layer to tie the projection to.
        use_bias: bool. Add a per-token bias. Defaults to `False`.
        activation: `None` or `"softmax"`. Defaults to `None` (logits).
        kernel_initializer: initializer of the untied kernel. Defaults to
            `TruncatedNormal(stddev=0.02)`: values within ±0.04, std 0.0176.

    Call arguments:
        inputs: (B, T, H) tensor.

    Returns:
        (B, T, V) logits (or probabilities).
    """

    def __init__(
        self,
        vocabulary_size,
        token_embedding=None,
        use_bias=False,
        activation=None,
        kernel_initializer=None,
        **kwargs,
    ):
        if not isinstance(vocabulary_size, int) or vocabulary_size <= 0:
            raise ValueError(
                f"`vocabulary_size` must be a positive integer. Received: {vocabulary_size}"
            )
        if activation not in (None, "softmax"):
            raise ValueError(f"`activation` must be None or 'softmax'. Received: {activation!r}")
        if token_embedding is not None and token_embedding.vocabulary_size != vocabulary_size:
            raise ValueError(
                "The tied embedding's vocabulary differs from the head's: "
                f"{token_embedding.vocabulary_size} != vocabulary_size={vocabulary_size}."
            )
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.token_embedding = token_embedding
        self.use_bias = use_bias
        self.activation = activation
        if kernel_initializer is None:
            kernel_initializer = default_initializer()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        if self.token_embedding is None:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(inputs_shape[-1], self.vocabulary_size),
                initializer=clone_initializer(self.kernel_initializer),
            )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.vocabulary_size,), initializer="zeros"
            )
        self.built = True

    def call(self, inputs):
        if self.token_embedding is not None:
            logits = self.token_embedding(inputs, reverse=True)
        else:
            logits = ops.matmul(inputs, ops.cast(self.kernel, self.compute_dtype))
        if self.bias is not None:
            logits = logits + ops.cast(self.bias, self.compute_dtype)
        if self.activation == "softmax":
            return ops.softmax(ops.cast(logits, "float32"), axis=-1)
        return logits  # (B, T, V)

    def compute_output_shape(self, inputs_shape):
        return (*inputs_shape[:-1], self.vocabulary_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "use_bias": self.use_bias,
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
