"""Position-wise feed-forward network."""

import math

import keras
from keras import ops

from keras_transformer.layers.dropout import Dropout
from keras_transformer.layers.initializers import clone_initializer, default_initializer

ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "silu")


@ops.custom_gradient
def gelu(x):
    """Exact GELU, `x · Φ(x)`, computed in float32 with its derivative `Φ(x) + x · φ(x)`.

    Φ and φ are the standard normal CDF and density. Same values as
    `keras.activations.gelu(x, approximate=False)`; the hand-written derivative replaces the
    differentiated erfc graph, and float32 avoids bfloat16's slow element-wise kernels.
    """
    x32 = ops.cast(x, "float32")
    cdf = 0.5 * (1.0 + ops.erf(x32 * (1.0 / math.sqrt(2.0))))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        pdf = ops.exp(-0.5 * ops.square(x32)) * (1.0 / math.sqrt(2.0 * math.pi))
        return ops.cast(ops.cast(upstream, "float32") * (cdf + x32 * pdf), x.dtype)

    return ops.cast(x32 * cdf, x.dtype), grad


@ops.custom_gradient
def gelu_approximate(x):
    """tanh GELU (GPT-2), `0.5 · x · (1 + tanh(u))`, `u = sqrt(2/π) · (x + 0.044715 x³)`.

    Computed in float32 with the derivative written out:
    `0.5 · (1 + t) + 0.5 · x · (1 - t²) · sqrt(2/π) · (1 + 3 · 0.044715 x²)`, `t = tanh(u)`.
    """
    c = math.sqrt(2.0 / math.pi)
    x32 = ops.cast(x, "float32")
    t = ops.tanh(c * (x32 + 0.044715 * x32 * x32 * x32))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        du = c * (1.0 + 3.0 * 0.044715 * ops.square(x32))
        derivative = 0.5 * (1.0 + t) + 0.5 * x32 * (1.0 - ops.square(t)) * du
        return ops.cast(ops.cast(upstream, "float32") * derivative, x.dtype)

    return ops.cast(0.5 * x32 * (1.0 + t), x.dtype), grad


def get_activation(name):
    """Returns the activation function for a name in `ACTIVATIONS`."""
    if name == "gelu":
        return gelu
    if name == "gelu_approximate":
        return gelu_approximate
    if name in ("relu", "silu"):
        return keras.activations.get(name)
    raise ValueError(f"Unknown activation {name!r}. Expected one of {ACTIVATIONS}.")


@keras.saving.register_keras_serializable(package="keras_transformer")
class FeedForward(keras.layers.Layer):
    """Two dense layers applied at each position: `W2 · act(W1 · x + b1) + b2`, then dropout.

    Args:
        intermediate_dim: int. Width of the inner layer.
        activation: str. One of `"gelu"` (exact, BERT), `"gelu_approximate"` (tanh, GPT-2),
            `"relu"` (original Transformer), `"silu"`. Defaults to `"gelu"`.
        dropout: float. Dropout rate on the output. Defaults to `0.0`.
        kernel_initializer: initializer of the two kernels, each of which gets its own clone
            (`clone_initializer`). Defaults to `TruncatedNormal(stddev=0.02)`: values within
            ±0.04, std 0.0176.

    Call arguments:
        inputs: (B, T, H) tensor.
        training: bool.

    Returns:
        (B, T, H) tensor.
    """

    def __init__(
        self,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        kernel_initializer=None,
        **kwargs,
    ):
        if not isinstance(intermediate_dim, int) or intermediate_dim <= 0:
            raise ValueError(
                "`intermediate_dim` must be a positive integer. "
                f"Received: intermediate_dim={intermediate_dim}"
            )
        get_activation(activation)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout = dropout
        if kernel_initializer is None:
            kernel_initializer = default_initializer()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="intermediate_dense",
        )
        self.intermediate_dense.build(inputs_shape)
        self.output_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((*inputs_shape[:-1], self.intermediate_dim))
        self.dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)
        self._activation_fn = get_activation(self.activation)
        self.built = True

    def call(self, inputs, training=None):
        x = self._activation_fn(self.intermediate_dense(inputs))  # (B, T, I)
        return self.dropout_layer(self.output_dense(x), training=training)  # (B, T, H)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
