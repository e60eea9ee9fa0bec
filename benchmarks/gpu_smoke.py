"""A GPU smoke test: the devices, where a GPT training step's ops run, and its speed per dtype.

Prints the physical GPUs (name and compute capability from
`tf.config.experimental.get_device_details`), or "no GPU found: running on CPU"; what
`keras_transformer.distribute.get_strategy("auto")` would build here (decided with
`strategy_plan`, not built); then, for a small `GPTCausalLM` trained with Keras
`train_on_batch` on one device (the first GPU, else the CPU), in float32, mixed_bfloat16 and
mixed_float16 (where `compile` wraps the optimizer in a `LossScaleOptimizer`):

- where the step's ops were placed: the step function is traced again with TensorFlow's run
  metadata on, and the nodes of its placed partition graphs are counted per device (function
  arguments and return values left out); ops on the host while a GPU exists are named;
- steps/s (median of `--steps` timed steps, the three dtypes interleaved, `common.time_train_steps`)
  and the fraction of the device's peak: model FLOPs per step (`train_speed.step_flops`) / step
  time / the best `tf.matmul` of that dtype measured in this process on that device.

    python -m benchmarks.gpu_smoke                     # tiny GPT, batch 8 x 64, 10 steps
    python -m benchmarks.gpu_smoke --size mini --batch-size 64 --seq-len 256 --steps 20
"""

import argparse
import collections
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.eager import context  # noqa: E402

from benchmarks.common import (  # noqa: E402
    dtype_policy,
    machine_description,
    markdown_table,
    matmul_peak_flops,
    median_ms,
    time_train_steps,
)
from benchmarks.train_speed import step_flops  # noqa: E402
from keras_transformer.distribute import strategy_plan  # noqa: E402
from keras_transformer.models import GPTBackbone, GPTCausalLM  # noqa: E402
from keras_transformer.models.sizes import SIZES  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
PLUMBING = {"_Arg", "_Retval", "_DeviceArg", "_DeviceRetval"}
NO_GPU = "no GPU found: running on CPU"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per dtype")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per dtype")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", "--seq-len", type=int, default=64)
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--vocabulary-size", type=int, default=1000)
    parser.add_argument("--dtypes", default=",".join(POLICIES), help="comma-separated policies")
    parser.add_argument("--jit-compile", default="auto", choices=sorted(JIT_COMPILE))
    parser.add_argument("--peak-size", type=int, default=1024, help="side of the matmul peak")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in args.dtypes if d not in POLICIES]
    if bad or not args.dtypes:
        parser.error(f"--dtypes must list some of {','.join(POLICIES)}. Received: {bad}")
    for name in ("steps", "batch_size", "sequence_length", "vocabulary_size", "peak_size"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            parser.error(f"{flag} must be at least 1. Received: {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be at least 0. Received: {args.warmup}")
    if args.sequence_length > 1024:
        parser.error(
            f"--seq-len must be at most 1024 (the model's). Received: {args.sequence_length}"
        )
    args.masked_positions = 0  # step_flops reads it for masked LMs only
    return args


def describe_devices():
    """Lines naming each physical GPU (name, compute capability), or that there is none."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return [NO_GPU]
    lines = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        capability = ".".join(map(str, capability)) if capability else "unknown"
        lines.append(
            f"{gpu.name}: {details.get('device_name', 'unknown GPU')}, "
            f"compute capability {capability}"
        )
    return lines


def build_model(args):
    """A compiled `GPTCausalLM` of `args.size` under the current global dtype policy."""
    keras.utils.set_random_seed(args.seed)
    model = GPTCausalLM(
        GPTBackbone(
            vocabulary_size=args.vocabulary_size,
            max_sequence_length=1024,
            dropout=0.1,
            **SIZES[args.size],
        )
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=None,
        jit_compile=JIT_COMPILE[args.jit_compile],
    )
    return model


def make_batch(args):
    rng = np.random.default_rng(args.seed)
    shape = (args.batch_size, args.sequence_length)
    x = {
        "token_ids": tf.constant(rng.integers(0, args.vocabulary_size, shape), tf.int32),
        "padding_mask": tf.ones(shape, tf.int32),
    }
    y = tf.constant(rng.integers(0, args.vocabulary_size, shape), tf.int32)
    return x, y, tf.ones(shape, tf.float32)


def step_placement(model, batch):
    """`({device: ops}, {device: Counter(op type)})` of one traced and run training step.

    The step function is made again and traced with run metadata on, so that TensorFlow
    records the graphs it placed and partitioned; every node but the function's arguments and
    return values is counted on the device it was placed on.
    """
    model.make_train_function(force=True)
    ctx = context.context()
    ctx.enable_run_metadata()
    ctx.enable_graph_collection()
    try:
        model.train_on_batch(*batch)
        metadata = ctx.export_run_metadata()
    finally:
        ctx.disable_graph_collection()
        ctx.disable_run_metadata()
    counts, types = collections.Counter(), collections.defaultdict(collections.Counter)
    for function in metadata.function_graphs:
        for graph in function.partition_graphs:
            for node in graph.node:
                if node.op not in PLUMBING:
                    device = node.device[node.device.find("/device:") :] or "unplaced"
                    counts[device] += 1
                    types[device][node.op] += 1
    if not counts:
        raise RuntimeError("TensorFlow recorded no placed graph for the training step.")
    return dict(counts), dict(types)


def main(argv=None):
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    print(f"Machine: {machine_description()}")
    print("Devices:")
    for line in describe_devices():
        print(f"  {line}")
    gpu = bool(tf.config.list_logical_devices("GPU"))
    device = tf.config.list_logical_devices("GPU" if gpu else "CPU")[0].name
    plan = strategy_plan("auto")
    ops = type(plan.cross_device_ops).__name__ if plan.cross_device_ops else "TensorFlow's own"
    print(
        f"get_strategy('auto') here: {plan.name}, devices {list(plan.devices) or [device]}, "
        f"all-reduce {ops if plan.name == 'mirrored' else 'none (one device)'}"
    )
    body, head = step_flops("gpt", SIZES[args.size], args)
    print(
        f"Model: GPTCausalLM {args.size!r} {SIZES[args.size]}, vocabulary "
        f"{args.vocabulary_size}, batch {args.batch_size} x {args.sequence_length}, "
        f"{(body + head) / 1e9:,.2f} GFLOP per step; on {device}, {args.warmup} warm-up + "
        f"{args.steps} timed train_on_batch steps per dtype, interleaved; jit_compile "
        f"{args.jit_compile}",
        flush=True,
    )

    batch = make_batch(args)
    models, placements, peaks = {}, {}, {}
    for policy in args.dtypes:
        with dtype_policy(policy):
            model = build_model(args)
        model.train_on_batch(*batch)  # builds the optimizer's variables
        placements[policy] = step_placement(model, batch)
        models[policy] = model
        counts, types = placements[policy]
        where = ", ".join(f"{d}: {n} ops" for d, n in sorted(counts.items()))
        print(
            f"{policy}: optimizer {type(model.optimizer).__name__}, jit_compile "
            f"{model.jit_compile}; step ops placed: {where}",
            flush=True,
        )
        if gpu:
            for name in sorted(counts):
                if "GPU" not in name.upper():
                    listed = ", ".join(f"{op} x{k}" for op, k in types[name].most_common(8))
                    print(f"  on the host ({name}): {listed}")
    wall, _ = time_train_steps(models, {p: batch for p in models}, args.warmup, args.steps)
    for policy in args.dtypes:
        with tf.device(device):
            peaks[policy] = matmul_peak_flops(COMPUTE_DTYPES[policy], size=args.peak_size)
    rows = []
    for policy in args.dtypes:
        seconds = median_ms(wall[policy]) / 1000
        model = models[policy]
        scale = getattr(model.optimizer, "dynamic_scale", None)
        rows.append(
            (
                policy,
                f"{1000 * seconds:.1f}",
                f"{1 / seconds:.2f}",
                f"{peaks[policy] / 1e9:,.0f}",
                f"{100 * (body + head) / seconds / peaks[policy]:.1f}%",
                f"{float(scale.numpy()):g}" if scale is not None else "-",
            )
        )
    print()
    print(
        markdown_table(
            (
                "dtype",
                "ms/step",
                "steps/s",
                f"matmul peak GFLOP/s ({args.peak_size}²)",
                "% of peak",
                "loss scale",
            ),
            rows,
        )
    )
    if not gpu:
        print(f"\n{NO_GPU}: these figures are the CPU's, not a GPU's.")


if __name__ == "__main__":
    main()
