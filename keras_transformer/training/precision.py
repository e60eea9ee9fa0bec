"""The training precision a run asks for (`--mixed-precision`) and the Keras dtype policy it sets.

- `float32`: everything in float32 (the default).
- `bfloat16`: Keras's `mixed_bfloat16`: variables in float32, layers compute in bfloat16. For
  CPUs with AVX-512 BF16, TPUs and GPUs from Ampere (compute capability 8.0) on.
- `float16`: Keras's `mixed_float16`: layers compute in float16, and `Model.compile` wraps the
  optimizer in a `keras.optimizers.LossScaleOptimizer` (dynamic loss scaling), so that small
  gradients do not underflow to zero. For GPUs before Ampere (Volta, Turing), which have float16
  tensor cores but no bfloat16 ones.

Build and compile a run's models inside `using_precision(setting)`; the policy is global in
Keras, and the previous one is restored on exit.
"""

import contextlib

import keras

PRECISIONS = ("float32", "bfloat16", "float16")

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}

# Settings written before `--mixed-precision` took a name (a bool meant bfloat16).
_LEGACY = {True: "bfloat16", False: "float32"}


def precision_name(setting):
    """The precision (one of `PRECISIONS`) a setting names; `True` / `False`: bfloat16 / float32.

    Raises:
        ValueError: for anything else, naming the choices.
    """
    if isinstance(setting, bool):
        return _LEGACY[setting]
    if setting in PRECISIONS:
        return setting
    raise ValueError(
        f"Unknown precision {setting!r}: expected one of {', '.join(PRECISIONS)} "
        "(bfloat16 on Ampere GPUs, TPUs and recent CPUs; float16 on older GPUs)."
    )


def policy_name(setting):
    """The Keras dtype policy name of a precision setting (`float32`, `mixed_bfloat16`, ...)."""
    return POLICIES[precision_name(setting)]


@contextlib.contextmanager
def using_precision(setting):
    """Sets Keras's global dtype policy for `setting` while the block runs, then restores it."""
    name = policy_name(setting)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)
