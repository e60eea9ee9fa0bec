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
import tensorflow as tf

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


# Compute capability from which NVIDIA GPUs have bfloat16 tensor cores (Ampere).
BFLOAT16_MIN_CAPABILITY = (8, 0)


def _is_tpu_strategy(strategy):
    tpu_strategies = (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy)
    return isinstance(strategy, tpu_strategies)


def _gpu_details(device):
    """`(name, (major, minor) or None)` of a physical GPU, from TensorFlow's device details."""
    details = tf.config.experimental.get_device_details(device) or {}
    capability = details.get("compute_capability")  # absent on non-CUDA GPUs
    return details.get("device_name", device.name), tuple(capability) if capability else None


def check_precision(setting, strategy=None, devices=None):
    """Fails before training, with one clear error, if `setting` cannot run on these devices.

    - `float16` on TPUs (a `TPUStrategy`, or a TPU among `devices`): TPUs have no float16
      matmul; their 16-bit type is bfloat16.
    - `bfloat16` on an NVIDIA GPU of compute capability below 8.0 (before Ampere: Volta,
      Turing, Pascal), which has no bfloat16 tensor cores; float16 with loss scaling is its
      16-bit type.
    - `float16` or `bfloat16` with no GPU or TPU: allowed (both train on CPUs; tested here), with
      a printed note that their speed-up is meant for GPUs and TPUs.

    Args:
        setting: a precision setting (`"float32"`, `"bfloat16"`, `"float16"`, or a bool; see
            `precision_name`).
        strategy: `tf.distribute.Strategy` or None. The run's strategy; only whether it is a
            `TPUStrategy` matters. Defaults to None.
        devices: list of `tf.config.PhysicalDevice` or None. The accelerators to check.
            Defaults to this host's physical GPUs and TPUs.

    Returns:
        str: the precision name (one of `PRECISIONS`).

    Raises:
        ValueError: the setting is unknown, or cannot run on these devices; the message says
            which device and what to use instead.

    Example:
    >>> strategy = get_strategy(config.strategy)
    >>> check_precision(config.mixed_precision, strategy)
    >>> with strategy.scope(), using_precision(config.mixed_precision):
    ...     model = build_model(config)
    ...     model.compile(...)
    """
    name = precision_name(setting)
    if devices is None:
        devices = tf.config.list_physical_devices("GPU") + tf.config.list_physical_devices("TPU")
    devices = list(devices)
    tpus = [device for device in devices if device.device_type == "TPU"]
    if name == "float16" and (tpus or _is_tpu_strategy(strategy)):
        where = tpus[0].name if tpus else type(strategy).__name__
        raise ValueError(
            f"--mixed-precision float16 cannot run on TPUs (found {where}): TPUs have no float16 "
            "matmul. Use --mixed-precision bfloat16, the TPU's own 16-bit type."
        )
    if name == "bfloat16":
        for device in devices:
            if device.device_type != "GPU":
                continue
            gpu_name, capability = _gpu_details(device)
            if capability is not None and capability < BFLOAT16_MIN_CAPABILITY:
                major, minor = capability
                raise ValueError(
                    f"--mixed-precision bfloat16 needs a GPU of compute capability 8.0 (Ampere) "
                    f"or later; {device.name} ({gpu_name}) has {major}.{minor}. Use "
                    "--mixed-precision float16 (dynamic loss scaling is applied) on this GPU."
                )
    if name != "float32" and not devices and not _is_tpu_strategy(strategy):
        print(
            f"[keras_transformer] --mixed-precision {name} with no GPU or TPU: it trains on "
            "the CPU, but its speed-up is meant for GPUs and TPUs.",
            flush=True,
        )
    return name
