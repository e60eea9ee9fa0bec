"""Whether a run XLA-compiles its training step (`--jit-compile auto|on|off`).

`auto` compiles where a GPU is present, as Keras's own `jit_compile="auto"` does with the
TensorFlow backend: XLA fuses the step's small element-wise ops into few kernels, which pays on
a GPU; on this project's CPUs it did not speed training up. `on` and `off` force it.
"""

import re

import keras
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


def _unsupported_ops(message):
    """The op types an XLA error message names as having no XLA kernel."""
    names = re.findall(r"(\w+) \(No registered '\w+' OpKernel for XLA", message)
    return sorted(set(names))


def check_jit_compile(step, *example_args):
    """Lowers a training step to XLA HLO without running it; raises one `ValueError` if it
    cannot compile. The pre-flight of `--jit-compile on`.

    Args:
        step: a compiled `keras.Model` (its `train_step` is lowered, on one batch) or a
            callable of tensors.
        *example_args: for a model, one batch as `fit` feeds `train_step`: `(x, y)` or
            `(x, y, sample_weight)` (a tuple, or separate arguments); for a callable, its
            arguments.

    Returns:
        The HLO text (a `str`), which proves XLA compiled the step.

    Raises:
        ValueError: naming the ops XLA cannot compile and what to do (`--jit-compile off`).
    """
    if isinstance(step, keras.Model):
        model = step
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                f"check_jit_compile needs a compiled model: {model.name!r} has no optimizer. "
                "Call model.compile(...) first."
            )
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        data = example_args[0] if len(example_args) == 1 else tuple(example_args)
        function, example_args = model.train_step, (data,)
        what = f"the training step of {model.name!r}"
    else:
        function = step
        what = f"the step {getattr(step, '__name__', step)!r}"
    compiled = tf.function(function, jit_compile=True)
    try:
        return compiled.experimental_get_compiler_ir(*example_args)(stage="hlo")
    except (ValueError, tf.errors.OpError) as error:
        message = str(getattr(error, "message", error))
        ops = _unsupported_ops(message)
        if not ops:
            first = next((line for line in message.splitlines() if line.strip()), message)
            raise ValueError(
                f"--jit-compile on: XLA cannot compile {what}: {first.strip()[:300]} "
                "Run with --jit-compile off (or auto)."
            ) from error
        raise ValueError(
            f"--jit-compile on: XLA cannot compile {what}: no XLA kernel for op "
            f"{', '.join(ops)}. Run with --jit-compile off (or auto), or move that op out of "
            "the model (e.g. into the tf.data input pipeline)."
        ) from error
