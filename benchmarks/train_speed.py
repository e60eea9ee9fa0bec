"""Training speed of our models against keras-hub's, in float32 and mixed_bfloat16.

Trains, in one process and on the same random-id batch, our `BertMaskedLM` against keras-hub's
`BertMaskedLM` and our `GPTCausalLM` against keras-hub's `GPT2CausalLM` (`preprocessor=None`), at
identical sizes, with identical compiles: AdamW (lr 1e-4, weight decay 0.01),
`SparseCategoricalCrossentropy(from_logits=True)`, no metrics, dropout 0.1, no XLA. The AdamW
update is the same arithmetic on both sides; ours runs it as our package trains
(`keras_transformer.training.optimizers.AdamW`: one fused kernel per variable), keras-hub's as
Keras's `AdamW` (about ten element-wise ops per variable).

Timing: every model is built fresh under the dtype policy of its row, runs `--warmup` untimed
`train_on_batch` steps (the first traces the graph), then `--steps` timed steps. Ours and
keras-hub's alternate step by step (the order flips every round), so drift in the machine's
speed hits both; the table reports the median step time. `train_on_batch` on tensors already in
memory costs the same per step as `fit` over a repeated in-memory `tf.data` dataset (checked:
730 vs 731 CPU-ms per step for our BERT-mini in bf16) and yields one number per step, so the
median shrugs off steps slowed by other jobs. The CPU time of the process per step is recorded
too: on a shared machine the wall time swells whenever our threads wait for a core, the CPU
time much less, so "ratio (CPU)" is the steadier comparison there.

FLOPs per training step (multiply-adds count 2; the backward pass costs about twice the forward,
so a step is 3 × the forward):
    body (per token)   = L · [2·(4·H² + 2·H·I) + 2·2·T·H]
                         (Q, K, V, output projections and the two feed-forward matmuls, then
                         the attention scores QKᵀ and the weighted sum of the values; the causal
                         LM is counted as computing the full T × T scores, as both sides do)
    head, causal LM    = 2·H·V per token, · B·T (logits at all T positions)
    head, masked LM    = 2·(H² + H·V) per masked position, · B·P (P per sequence)
    step               = 3 · (B·T · body + head)
with B batch, T sequence length, L layers, H width, I feed-forward width, V vocabulary size.
Embedding lookups, layer norms, softmaxes, dropout, the loss and the optimizer count as 0 FLOPs,
which is why the achieved fraction of the `tf.matmul` peak (the best of several 4096² × 4096²
products in the same process and dtype, measured before and after the models) says how much time
goes to anything other than the matmuls.

Run from the repository root:
    python -m benchmarks.train_speed                  # full size, several minutes
    python -m benchmarks.train_speed --quick          # smoke test, tiny models, ~1 minute
    python -m benchmarks.train_speed --models gpt --dtypes mixed_bfloat16 --steps 5
"""

import argparse
import gc
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import (  # noqa: E402
    dtype_policy,
    machine_description,
    markdown_table,
    matmul_peak_flops,
    median_ms,
    time_train_steps,
)
from keras_transformer.models import (  # noqa: E402
    BertBackbone,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
)
from keras_transformer.models.sizes import SIZES  # noqa: E402
from keras_transformer.training.optimizers import AdamW as FusedAdamW  # noqa: E402

MODELS = ("bert", "gpt")
DTYPES = ("float32", "mixed_bfloat16")
MODEL_NAMES = {"bert": "BertMaskedLM", "gpt": "GPTCausalLM"}
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16"}
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
DROPOUT = 0.1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument("--models", default="bert,gpt", help="comma-separated: bert,gpt")
    parser.add_argument(
        "--dtypes", default="float32,mixed_bfloat16", help="comma-separated dtype policies"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--size", default="mini", choices=sorted(SIZES))
    parser.add_argument("--vocabulary-size", type=int, default=30522)
    parser.add_argument(
        "--masked-positions", type=int, default=20, help="masked positions per sequence (MLM)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: tiny size, vocabulary 1000, batch 4 x 32, 2 steps",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.vocabulary_size = "tiny", 1000
        args.batch_size, args.sequence_length, args.masked_positions = 4, 32, 4
        args.steps, args.warmup = 2, 1
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for name, values, allowed in (
        ("--models", args.models, MODELS),
        ("--dtypes", args.dtypes, DTYPES),
    ):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            parser.error(f"{name} must list some of {','.join(allowed)}. Received: {bad}")
    if args.masked_positions > args.sequence_length:
        parser.error(
            f"--masked-positions ({args.masked_positions}) must not exceed --sequence-length "
            f"({args.sequence_length})."
        )
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"Need --steps >= 1 and --warmup >= 0. Received: {args.steps}, {args.warmup}")
    return args


# === FLOPs ===


def body_flops_per_token(size, sequence_length):
    """Forward FLOPs per token of the Transformer body: L·[2·(4H² + 2HI) + 4TH]."""
    h, i, layers = size["hidden_dim"], size["intermediate_dim"], size["num_layers"]
    return layers * (2 * (4 * h * h + 2 * h * i) + 2 * 2 * sequence_length * h)


def step_flops(model, size, args):
    """(body, head) FLOPs of one training step: 3 × the forward FLOPs of each part."""
    tokens = args.batch_size * args.sequence_length
    h, v = size["hidden_dim"], args.vocabulary_size
    body = tokens * body_flops_per_token(size, args.sequence_length)
    if model == "gpt":
        head = tokens * 2 * h * v
    else:
        head = args.batch_size * args.masked_positions * 2 * (h * h + h * v)
    return 3 * body, 3 * head


# === Models and data ===


def build_model(side, model, size, vocabulary_size, max_sequence_length=None, **options):
    """Our model (`side="ours"`) or keras-hub's, compiled as this benchmark trains both.

    Built under the current global dtype policy; `options` go to our backbone (for example
    `attention_chunk_size`). `max_sequence_length` defaults to 512 (BERT) and 1024 (GPT).
    """
    if max_sequence_length is None:
        max_sequence_length = 512 if model == "bert" else 1024
    common = dict(
        vocabulary_size=vocabulary_size,
        dropout=DROPOUT,
        max_sequence_length=max_sequence_length,
        **size,
    )
    if side == "ours":
        if model == "bert":
            built = BertMaskedLM(BertBackbone(**common, **options))
        else:
            built = GPTCausalLM(GPTBackbone(**common, **options))
        optimizer = FusedAdamW
    else:
        if model == "bert":
            built = keras_hub.models.BertMaskedLM(
                keras_hub.models.BertBackbone(**common), preprocessor=None
            )
        else:
            built = keras_hub.models.GPT2CausalLM(
                keras_hub.models.GPT2Backbone(**common), preprocessor=None
            )
        optimizer = keras.optimizers.AdamW
    # Both classes' `compile` pass explicit arguments through to `keras.Model.compile`.
    built.compile(
        optimizer=optimizer(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=None,
        jit_compile=False,
    )
    return built


def build_models(model, size, args):
    """Our model and keras-hub's, built fresh under the current global dtype policy."""
    return tuple(
        build_model(side, model, size, args.vocabulary_size) for side in ("ours", "keras-hub")
    )


def make_batch(model, args):
    """One random batch `(x, y, sample_weight)` as tensors; the same for both sides."""
    rng = np.random.default_rng(args.seed)
    b, t, v = args.batch_size, args.sequence_length, args.vocabulary_size
    token_ids = rng.integers(0, v, size=(b, t), dtype=np.int32)
    x = {"token_ids": token_ids, "padding_mask": np.ones((b, t), np.int32)}
    if model == "gpt":
        y = rng.integers(0, v, size=(b, t), dtype=np.int32)
        weights = np.ones((b, t), np.float32)
    else:
        p = args.masked_positions
        positions = np.sort(np.stack([rng.choice(t, p, replace=False) for _ in range(b)]), -1)
        x["segment_ids"] = np.zeros((b, t), np.int32)
        x["mask_positions"] = positions.astype(np.int32)
        y = rng.integers(0, v, size=(b, p), dtype=np.int32)
        weights = np.ones((b, p), np.float32)
    to_tensor = tf.convert_to_tensor
    return {k: to_tensor(a) for k, a in x.items()}, to_tensor(y), to_tensor(weights)


# === Report ===


def format_table(rows):
    header = (
        "model",
        "dtype",
        "ours ms/step",
        "keras-hub ms/step",
        "ours tokens/s",
        "keras-hub tokens/s",
        "ratio",
        "ratio (CPU)",
        "ours % peak",
        "keras-hub % peak",
    )
    cells = [
        (
            r["model"],
            r["dtype"],
            f"{r['ours_ms']:.0f}",
            f"{r['hub_ms']:.0f}",
            f"{r['ours_tps']:,.0f}",
            f"{r['hub_tps']:,.0f}",
            f"{r['ratio']:.2f}",
            f"{r['cpu_ratio']:.2f}",
            f"{100 * r['ours_peak']:.0f}%",
            f"{100 * r['hub_peak']:.0f}%",
        )
        for r in rows
    ]
    return markdown_table(header, cells, left_columns=2)


def measure(args):
    """Times every (model, dtype) row of `args` (see `parse_args`), printing a line per row.

    Returns:
        `(rows, peaks)`: a dict per row (model, dtype, median ms/step and CPU ms/step of each
        side, tokens/s, fraction of the matmul peak, ratio and CPU ratio: keras-hub / ours), and
        the best `tf.matmul` FLOP/s per dtype policy, measured before and after the models.
    """
    # Both sides' masked LMs leave their poolers unused; Keras warns about it on every build.
    warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
    tf.get_logger().setLevel("ERROR")  # retracing notices: each model traces its own step
    size = SIZES[args.size]
    tokens = args.batch_size * args.sequence_length
    peak_size = 1024 if args.quick else 4096

    def measure_peaks(peaks):
        for policy in args.dtypes:
            flops = matmul_peak_flops(COMPUTE_DTYPES[policy], size=peak_size)
            peaks[policy] = max(peaks.get(policy, 0.0), flops)
        return peaks

    peaks = measure_peaks({})
    for policy in args.dtypes:
        print(
            f"tf.matmul peak, {COMPUTE_DTYPES[policy]} {peak_size}²: "
            f"{peaks[policy] / 1e9:,.0f} GFLOP/s (measured again after the models)",
            flush=True,
        )

    rows = []
    for model in args.models:
        batch = make_batch(model, args)
        body, head = step_flops(model, size, args)
        for policy in args.dtypes:
            print(
                f"{MODEL_NAMES[model]} {policy}: building both models, {args.warmup} warm-up + "
                f"{args.steps} timed steps each...",
                flush=True,
            )
            keras.utils.set_random_seed(args.seed)
            with dtype_policy(policy):
                ours, theirs = build_models(model, size, args)
            wall, cpu = time_train_steps(
                {"ours": ours, "keras-hub": theirs},
                {"ours": batch, "keras-hub": batch},
                args.warmup,
                args.steps,
            )
            row = {"model": MODEL_NAMES[model], "dtype": policy, "flops": body + head}
            for side, key in (("ours", "ours"), ("keras-hub", "hub")):
                row[f"{key}_ms"] = median_ms(wall[side])
                row[f"{key}_cpu_ms"] = median_ms(cpu[side])
                row[f"{key}_range"] = (1000 * min(wall[side]), 1000 * max(wall[side]))
            rows.append(row)
            print(
                f"{row['model']} {policy}: ours {row['ours_ms']:.0f} ms/step (range "
                f"{row['ours_range'][0]:.0f}-{row['ours_range'][1]:.0f}, CPU "
                f"{row['ours_cpu_ms']:.0f} ms), keras-hub {row['hub_ms']:.0f} ms/step (range "
                f"{row['hub_range'][0]:.0f}-{row['hub_range'][1]:.0f}, CPU "
                f"{row['hub_cpu_ms']:.0f} ms), ratio {row['hub_ms'] / row['ours_ms']:.2f}",
                flush=True,
            )
            del ours, theirs, wall, cpu
            gc.collect()
            keras.backend.clear_session()

    peaks = measure_peaks(peaks)
    for row in rows:
        policy = row["dtype"]
        for key in ("ours", "hub"):
            seconds = row[f"{key}_ms"] / 1000
            row[f"{key}_tps"] = tokens / seconds
            row[f"{key}_peak"] = row["flops"] / seconds / peaks[policy]
        row["ratio"] = row["hub_ms"] / row["ours_ms"]
        row["cpu_ratio"] = row["hub_cpu_ms"] / row["ours_cpu_ms"]
    return rows, peaks


def main(argv=None):
    args = parse_args(argv)
    size = SIZES[args.size]
    print(f"Machine: {machine_description()}")
    print(
        f"Setup: size {args.size!r} {size}, vocabulary {args.vocabulary_size}, batch "
        f"{args.batch_size} x sequence {args.sequence_length}, {args.masked_positions} masked "
        f"positions per sequence (MLM); AdamW lr {LEARNING_RATE} wd {WEIGHT_DECAY}, dropout "
        f"{DROPOUT}; {args.warmup} warm-up + {args.steps} timed train_on_batch steps per model, "
        "ours and keras-hub alternating; median step time."
    )
    print(
        "FLOPs per step = 3 x forward; forward body per token = L*[2*(4H^2 + 2HI) + 4TH]; "
        "head = 2HV per token (causal LM) or 2(H^2 + HV) per masked position (masked LM)."
    )
    for model in args.models:
        body, head = step_flops(model, size, args)
        print(
            f"  {MODEL_NAMES[model]}: body {body / 1e9:,.1f} GFLOP/step, head "
            f"{head / 1e9:,.1f} GFLOP/step (head/body {head / body:.2f}), total "
            f"{(body + head) / 1e9:,.1f}"
        )
    print(flush=True)

    rows, peaks = measure(args)
    print()
    print(
        "tf.matmul peaks (best before/after): "
        + ", ".join(f"{COMPUTE_DTYPES[p]} {peaks[p] / 1e9:,.0f} GFLOP/s" for p in args.dtypes)
    )
    print("ratio = keras-hub ms / ours ms (> 1: ours is faster), from median wall-clock step")
    print("times; ratio (CPU) = the same from median CPU time per step; % peak = FLOPs per step /")
    print("step time / the tf.matmul peak of the row's compute dtype.")
    print(format_table(rows))


if __name__ == "__main__":
    main()
