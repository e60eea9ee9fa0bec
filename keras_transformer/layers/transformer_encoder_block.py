"""Transformer encoder block: bidirectional self-attention and a feed-forward network."""

import keras

from keras_transformer.layers.dropout import Dropout
from keras_transformer.layers.feed_forward import FeedForward, get_activation
from keras_transformer.layers.initializers import clone_initializer, default_initializer
from keras_transformer.layers.layer_normalization import LayerNormalization
from keras_transformer.layers.multi_head_attention import MultiHeadAttention


def check_block_sizes(hidden_dim, num_heads):
    """Raises `ValueError` unless `hidden_dim` splits evenly into `num_heads` heads."""
    if hidden_dim is not None and hidden_dim % num_heads:
        raise ValueError(
            f"`hidden_dim` must be divisible by `num_heads`. Received: hidden_dim={hidden_dim}, "
            f"num_heads={num_heads} ({hidden_dim} % {num_heads} = {hidden_dim % num_heads}). "
            "Pick a head count that divides the width, e.g. hidden_dim // 64."
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerEncoderBlock(keras.layers.Layer):
    """One encoder layer: self-attention then feed-forward, each with a residual and layer norm.

    Post-norm (`normalize_first=False`, the original Transformer and BERT):
    `x = LN(x + Drop(Attn(x)))`, `x = LN(x + FFN(x))`.
    Pre-norm (`normalize_first=True`, GPT-2 style): `x = x + Drop(Attn(LN(x)))`,
    `x = x + FFN(LN(x))`.

    Masks: `padding_mask` (B, T) hides padded keys, so outputs at real positions never depend on
    what sits under the padding (outputs at padded positions are computed but meaningless).
    `attention_mask` (B, T, T) is an extra explicit mask; both are combined.

    Args:
        num_heads: int. Number of attention heads N.
        intermediate_dim: int. Width of the feed-forward inner layer.
        dropout: float. Dropout on attention weights and on both sublayer outputs.
            Defaults to `0.0`.
        activation: str. Feed-forward activation, see `FeedForward`. Defaults to `"gelu"`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        normalize_first: bool. Pre-norm if `True`, post-norm otherwise. Defaults to `False`.
        kernel_initializer: initializer of all kernels (Wq, Wk, Wv, Wo and both feed-forward
            kernels; each gets its own clone, `clone_initializer`, so none starts equal to
            another). Defaults to `TruncatedNormal(stddev=0.02)`: values within ±0.04, std 0.0176.
        attention_chunk_size: int or None. Attend this many queries at a time and recompute
            the weights in the backward pass (see `MultiHeadAttention`): for long sequences in
            training. Defaults to `None` (plain attention).

    Call arguments:
        inputs: (B, T, H) tensor.
        padding_mask: (B, T) bool/int, true at real tokens. Optional.
        attention_mask: (B, T, T) bool. Optional.
        training: bool.
        return_attention_scores: bool. Also return the attention weights (B, N, T, T).

    Returns:
        (B, T, H) tensor, and the attention weights if asked.
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        kernel_initializer=None,
        attention_chunk_size=None,
        **kwargs,
    ):
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"`num_heads` must be a positive integer. Received: {num_heads}")
        if not isinstance(intermediate_dim, int) or intermediate_dim <= 0:
            raise ValueError(
                "`intermediate_dim` must be a positive integer. "
                f"Received: intermediate_dim={intermediate_dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        get_activation(activation)
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        if kernel_initializer is None:
            kernel_initializer = default_initializer()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.attention_chunk_size = attention_chunk_size

    def _layer_norm(self, name, shape):
        layer = LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        layer.build(shape)
        return layer

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        check_block_sizes(hidden_dim, self.num_heads)
        self.self_attention = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            attention_chunk_size=self.attention_chunk_size,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.self_attention.build(inputs_shape, inputs_shape)
        self.attention_norm = self._layer_norm("attention_norm", inputs_shape)
        self.attention_dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        self.feed_forward = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward.build(inputs_shape)
        self.feed_forward_norm = self._layer_norm("feed_forward_norm", inputs_shape)
        self.built = True

    def _sublayer(self, x, norm, fn):
        """Residual + layer norm around `fn`, in the block's pre- or post-norm order."""
        residual = x
        if self.normalize_first:
            x = norm(x)
        x = residual + fn(x)
        return x if self.normalize_first else norm(x)

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        scores = []

        def attend(x):
            # Ask for the weights only when returning them: a call that asks gets them whole,
            # so it never runs in query chunks (`attention_chunk_size`).
            outputs = self.self_attention(
                x,
                x,
                value_mask=padding_mask,
                attention_mask=attention_mask,
                return_attention_scores=return_attention_scores,
                training=training,
            )
            if return_attention_scores:
                outputs, weights = outputs
                scores.append(weights)
            return self.attention_dropout(outputs, training=training)

        x = self._sublayer(inputs, self.attention_norm, attend)  # (B, T, H)
        x = self._sublayer(
            x, self.feed_forward_norm, lambda y: self.feed_forward(y, training=training)
        )
        return (x, scores[0]) if return_attention_scores else x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalize_first": self.normalize_first,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "attention_chunk_size": self.attention_chunk_size,
            }
        )
        return config
