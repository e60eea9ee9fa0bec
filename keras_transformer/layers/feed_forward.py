"""Position-wise feed-forward network."""

import keras

ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "silu")


def get_activation(name):
    """Returns the activation function for a name in `ACTIVATIONS`."""
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "gelu_approximate":
        return lambda x: keras.activations.gelu(x, approximate=True)
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
        kernel_initializer: initializer for both kernels. Defaults to
            `TruncatedNormal(stddev=0.02)`.

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
            kernel_initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="intermediate_dense",
        )
        self.intermediate_dense.build(inputs_shape)
        self.output_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((*inputs_shape[:-1], self.intermediate_dim))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
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
