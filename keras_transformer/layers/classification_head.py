"""Classification head over a pooled sentence vector."""

import keras

from keras_transformer.layers.initializers import clone_initializer, default_initializer


@keras.saving.register_keras_serializable(package="keras_transformer")
class ClassificationHead(keras.layers.Layer):
    """Dropout, an optional hidden layer, then a dense layer to `num_classes` logits.

    Args:
        num_classes: int. Number of classes C.
        hidden_dim: int or `None`. Width of an optional hidden layer (tanh). Defaults to `None`.
        dropout: float. Dropout on the pooled vector (and the hidden layer). Defaults to `0.1`.
        activation: `None` (logits) or `"softmax"`. Defaults to `None`.
        kernel_initializer: initializer of the hidden and the logits kernels, each of which gets
            its own clone (`clone_initializer`). Defaults to
            `TruncatedNormal(stddev=0.02)`: values within ±0.04, std 0.0176.

    Call arguments:
        inputs: (B, H) pooled vector.
        training: bool.

    Returns:
        (B, C) logits (float32), or probabilities with `activation="softmax"`.
    """

    def __init__(
        self,
        num_classes,
        hidden_dim=None,
        dropout=0.1,
        activation=None,
        kernel_initializer=None,
        **kwargs,
    ):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes}"
            )
        if hidden_dim is not None and (not isinstance(hidden_dim, int) or hidden_dim <= 0):
            raise ValueError(f"`hidden_dim` must be a positive integer or None. Got {hidden_dim}")
        if activation not in (None, "softmax"):
            raise ValueError(f"`activation` must be None or 'softmax'. Received: {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.activation = activation
        if kernel_initializer is None:
            kernel_initializer = default_initializer()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.hidden = None
        width = inputs_shape[-1]
        if self.hidden_dim is not None:
            self.hidden = keras.layers.Dense(
                self.hidden_dim,
                activation="tanh",
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name="hidden",
            )
            self.hidden.build((None, width))
            width = self.hidden_dim
        # Logits in float32 under mixed precision: small, and the softmax wants the precision.
        self.output_dense = keras.layers.Dense(
            self.num_classes,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype="float32",
            name="logits",
        )
        self.output_dense.build((None, width))
        self.built = True

    def call(self, inputs, training=None):
        x = self.dropout_layer(inputs, training=training)
        if self.hidden is not None:
            x = self.dropout_layer(self.hidden(x), training=training)
        return self.output_dense(x)  # (B, C)

    def compute_output_shape(self, inputs_shape):
        return (*inputs_shape[:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
