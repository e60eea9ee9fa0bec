"""Named model sizes and the checks every model runs on its size arguments."""

# The published BERT sizes (Turc et al. 2019, "Well-Read Students Learn Better") plus `base`.
SIZES = {
    "tiny": {"num_layers": 2, "hidden_dim": 128, "num_heads": 2, "intermediate_dim": 512},
    "mini": {"num_layers": 4, "hidden_dim": 256, "num_heads": 4, "intermediate_dim": 1024},
    "small": {"num_layers": 4, "hidden_dim": 512, "num_heads": 8, "intermediate_dim": 2048},
    "medium": {"num_layers": 8, "hidden_dim": 512, "num_heads": 8, "intermediate_dim": 2048},
    "base": {"num_layers": 12, "hidden_dim": 768, "num_heads": 12, "intermediate_dim": 3072},
}


def size_arguments(size, **overrides):
    """Returns the constructor arguments of a named size, updated with `overrides`.

    Example:
    >>> size_arguments("mini", vocabulary_size=30522)["hidden_dim"]
    256
    """
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}. Expected one of {sorted(SIZES)}.")
    return {**SIZES[size], **overrides}


def check_sizes(**sizes):
    """Validates model size arguments; raises `ValueError` naming the value and the rule.

    Positive integers: every argument except `dropout` (in [0, 1)), `layer_norm_epsilon`
    (positive); `hidden_dim` must be divisible by `num_heads`.
    """
    for name, value in sizes.items():
        if name == "dropout":
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={value}")
        elif name == "layer_norm_epsilon":
            if not value > 0:
                raise ValueError(f"`layer_norm_epsilon` must be positive. Received: {value}")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    hidden_dim, num_heads = sizes.get("hidden_dim"), sizes.get("num_heads")
    if hidden_dim is not None and num_heads is not None and hidden_dim % num_heads:
        raise ValueError(
            f"`hidden_dim` must be divisible by `num_heads`. Received: hidden_dim={hidden_dim}, "
            f"num_heads={num_heads}. Pick a head count that divides the width."
        )
