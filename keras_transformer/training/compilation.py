"""Whether a run XLA-compiles its training step (`--jit-compile auto|on|off`).

`auto` compiles where a GPU is present, as Keras's own `jit_compile="auto"` does with the
TensorFlow backend: XLA fuses the step's small element-wise ops into few kernels, which pays on
a GPU; on this project's CPUs it did not speed training up. `on` and `off` force it.
"""

import tensorflow as tf

JIT_COMPILE = ("auto", "on", "off")


def resolve_jit_compile(setting):
    """`True` or `False` for a `--jit-compile` setting (`auto`, `on`, `off`, or a bool).

    Raises:
        ValueError: for any other value, naming the choices.
    """
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return bool(tf.config.list_logical_devices("GPU"))
    if setting in ("on", "off"):
        return setting == "on"
    raise ValueError(
        f"Unknown --jit-compile {setting!r}: expected one of {', '.join(JIT_COMPILE)} "
        "(auto: on where a GPU is present)."
    )
