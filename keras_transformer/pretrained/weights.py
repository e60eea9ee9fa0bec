"""Assigning checkpoint arrays to Keras variables, with a record of what was set.

PyTorch `nn.Linear` stores `(out, in)` weights and computes `x @ W.T`; a Keras `Dense` kernel is
`(in, out)`. Our `MultiHeadAttention` keeps per-head kernels: query/key/value `(H, N, D)` with
biases `(N, D)`, output `(N, D, H)`. The helpers here convert between the two layouts.
"""

import numpy as np

# Hugging Face activation names -> ours (`keras_transformer.layers.feed_forward.ACTIVATIONS`).
# gelu_new, gelu_pytorch_tanh and gelu_fast are all the tanh approximation of GELU.
ACTIVATIONS_FROM_HF = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
ACTIVATIONS_TO_HF = {
    "gelu": "gelu",
    "gelu_approximate": "gelu_new",
    "relu": "relu",
    "silu": "silu",
}


def activation_from_hf(name, key):
    """Our activation name for a Hugging Face one; `ValueError` naming the config key."""
    if name not in ACTIVATIONS_FROM_HF:
        raise ValueError(
            f"config.json sets {key}={name!r}, which has no equivalent here. Supported: "
            f"{sorted(ACTIVATIONS_FROM_HF)}."
        )
    return ACTIVATIONS_FROM_HF[name]


def check_unsupported(config, settings):
    """Raise `ValueError` if config.json sets a key to a value our models cannot represent.

    Args:
        config: dict. The checkpoint's config.json.
        settings: iterable of `(key, default, supported_values)`.
    """
    for key, default, supported in settings:
        value = config.get(key, default)
        if value not in supported:
            raise ValueError(
                f"config.json sets {key}={value!r}; only {list(supported)} can be loaded into "
                "our models. This checkpoint needs an architecture they do not implement."
            )


class WeightAssigner:
    """Sets a model's variables from arrays and remembers which ones were set.

    Args:
        model: a built `keras.Model`.
    """

    def __init__(self, model):
        self.model = model
        self._variables = {id(v): v for v in model.weights}
        self._assigned = set()

    def set(self, variable, value, source):
        """Assign `value` to `variable`; `source` names the checkpoint tensor for messages."""
        value = np.asarray(value)
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"Tensor {source!r} converts to shape {list(value.shape)}, but {variable.path} "
                f"has shape {list(variable.shape)}. config.json does not match the weights."
            )
        variable.assign(value.astype(variable.dtype))
        self._assigned.add(id(variable))

    def unassigned(self):
        """Paths of the model's variables not set so far."""
        return [v.path for key, v in self._variables.items() if key not in self._assigned]


def dense_from_linear(weight):
    """`nn.Linear` weight (out, in) -> `Dense` kernel (in, out)."""
    return weight.T


def heads_from_linear(weight, bias, num_heads):
    """Q/K/V `nn.Linear` (N*D, H) weight and (N*D,) bias -> kernel (H, N, D), bias (N, D)."""
    hidden = weight.shape[1]
    kernel = weight.T.reshape(hidden, num_heads, -1)
    return kernel, bias.reshape(num_heads, -1)


def output_from_linear(weight, num_heads):
    """Attention output `nn.Linear` (H, N*D) weight -> kernel (N, D, H)."""
    return weight.T.reshape(num_heads, -1, weight.shape[0])


def linear_from_heads(kernel, bias):
    """Kernel (H, N, D), bias (N, D) -> `nn.Linear` weight (N*D, H), bias (N*D,)."""
    kernel = np.asarray(kernel)
    return kernel.reshape(kernel.shape[0], -1).T, np.asarray(bias).reshape(-1)


def linear_from_output(kernel):
    """Attention output kernel (N, D, H) -> `nn.Linear` weight (H, N*D)."""
    kernel = np.asarray(kernel)
    return kernel.reshape(-1, kernel.shape[-1]).T
