"""Cost as the sequence grows: training step time and peak memory at T = 128 ... 1024.

For each sequence length T, with the batch chosen so every step holds the same number of tokens
(`--tokens`, 4,096 by default: B = 32, 16, 8, 4), trains three models of the same "mini" size
and vocabulary (30,522), each in a fresh process of its own so that its peak memory is its own:

- ours, plain attention (`attention_chunk_size=None`): the (B, N, T, T) weights are held whole
  from the forward to the backward pass;
- ours, attention in chunks of `--chunk-size` queries (`attention_chunk_size`): the backward pass
  recomputes each block's weights, so attention memory grows with T, not T²;
- keras-hub's model of the same kind (`BertMaskedLM` or `GPT2CausalLM`, `preprocessor=None`).

Every process builds its model (float32 or `--dtype`), runs `--warmup` untimed and `--steps`
timed `train_on_batch` steps on one random batch (the batch of `benchmarks.train_speed`: the masked
LM predicts 15% of the positions), and reports the median step time and its peak resident memory
(`ru_maxrss`) before and after training: "step memory" is the growth, what training added to the
built model. Compiles, optimizers and dropout are those of `benchmarks.train_speed` (equal work:
the chunked path does one more Q Kᵀ product per layer in the backward pass, which the ratio
pays). The rounds alternate the three processes (`--rounds`), and the table takes the median.

Then the fit check: at T = 1024 and a larger batch (`--fit-batch`, 64), each of the three runs
under an address-space cap (`--memory-cap-gib`, 16 GiB, below the machine's memory so that nothing
else is pushed out): a model whose step needs more gets TensorFlow's out-of-memory error, and the
table says so.

    python -m benchmarks.sequence_scaling                      # ~15 min; docs/BENCHMARKS.md
    python -m benchmarks.sequence_scaling --models bert --rounds 1
    python -m benchmarks.sequence_scaling --quick              # tiny models, ~2 min
"""

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, machine_description, markdown_table  # noqa: E402
from benchmarks.publish import (  # noqa: E402
    add_arguments,
    check_or_exit,
    print_and_publish,
    publishing,
)

BLOCK = "sequence_scaling"

SIDES = ("ours", "ours, chunked", "keras-hub")
MODEL_NAMES = {"bert": "BertMaskedLM", "gpt": "GPTCausalLM"}
MASKED_FRACTION = 0.15


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sequence_scaling", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", default="bert,gpt", help="comma-separated: bert,gpt")
    parser.add_argument("--lengths", default="128,256,512,1024", help="sequence lengths")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per batch (B x T)")
    parser.add_argument("--chunk-size", type=int, default=128, help="queries per block")
    parser.add_argument("--dtype", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--size", default="mini")
    parser.add_argument("--vocabulary-size", type=int, default=30522)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per side and length")
    parser.add_argument("--fit-batch", type=int, default=64, help="batch of the fit check")
    parser.add_argument("--memory-cap-gib", type=float, default=16.0, help="fit check's cap")
    parser.add_argument("--no-fit-check", action="store_true", help="leave the fit check out")
    parser.add_argument("--quick", action="store_true", help="tiny models, T 64 and 128")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.vocabulary_size, args.lengths, args.tokens = "tiny", 1000, "64,128", 512
        args.chunk_size, args.steps, args.warmup, args.rounds = 32, 2, 1, 1
        args.fit_batch, args.memory_cap_gib = 16, 8.0
    try:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        args.lengths = [int(t) for t in args.lengths.split(",")]
    except ValueError:
        parser.error(f"--lengths takes comma-separated whole numbers; received {args.lengths!r}")
    if not args.models or any(m not in MODEL_NAMES for m in args.models):
        parser.error(f"--models must list some of bert,gpt; received {args.models}")
    if any(t < 8 or args.tokens % t for t in args.lengths):
        parser.error(f"every length must be >= 8 and divide --tokens ({args.tokens})")
    if min(args.steps, args.rounds, args.chunk_size, args.fit_batch) < 1 or args.warmup < 0:
        parser.error("--steps, --rounds, --chunk-size, --fit-batch must be >= 1, --warmup >= 0")
    return args


# === One measurement, in a process of its own ===


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(spec):
    """Builds and trains one model; prints one JSON line with its step times and memory."""
    side, model, length, batch_size = spec["side"], spec["model"], spec["length"], spec["batch"]
    if spec.get("cap_gib"):
        cap = int(spec["cap_gib"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import keras
    import tensorflow as tf

    from benchmarks.common import dtype_policy
    from benchmarks.train_speed import build_model, make_batch
    from keras_transformer.models.sizes import SIZES

    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    options = {"attention_chunk_size": spec["chunk_size"]} if side == "ours, chunked" else {}
    shape = argparse.Namespace(
        batch_size=batch_size,
        sequence_length=length,
        vocabulary_size=spec["vocabulary_size"],
        masked_positions=max(1, round(MASKED_FRACTION * length)),
        seed=0,
    )
    result = {"side": side, "model": model, "length": length, "batch": batch_size}
    try:
        with dtype_policy(spec["dtype"]):
            built = build_model(
                "ours" if side.startswith("ours") else "keras-hub",
                model,
                SIZES[spec["size"]],
                spec["vocabulary_size"],
                max_sequence_length=max(length, 128),
                **options,
            )
        batch = make_batch(model, shape)
        result["built_mib"] = peak_rss_mib()
        times = []
        for step in range(spec["warmup"] + spec["steps"]):
            start = time.perf_counter()
            built.train_on_batch(*batch)
            if step >= spec["warmup"]:
                times.append(time.perf_counter() - start)
        result["ms"] = 1000 * statistics.median(times)
    except (tf.errors.ResourceExhaustedError, MemoryError) as error:
        result["error"] = f"out of memory ({type(error).__name__})"
    result["peak_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result), flush=True)


def measure(spec):
    """Runs `child(spec)` in a fresh Python process; its result dict."""
    command = [sys.executable, "-m", "benchmarks.sequence_scaling", "--child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    if done.returncode < 0:  # an allocation failure under the cap aborts the process
        name = signal.Signals(-done.returncode).name
        return {**spec, "error": f"killed by {name} (out of memory)"}
    lines = [line for line in (done.stderr or done.stdout).splitlines() if "Error" in line]
    return {**spec, "error": "failed: " + (lines[-1] if lines else "no output")[-300:]}


# === The run ===


def run(args):
    base = {
        "dtype": args.dtype,
        "size": args.size,
        "vocabulary_size": args.vocabulary_size,
        "chunk_size": args.chunk_size,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    rows = []
    for model in args.models:
        for length in args.lengths:
            batch = args.tokens // length
            results = {side: [] for side in SIDES}
            for round_index in range(args.rounds):
                order = SIDES if round_index % 2 == 0 else SIDES[::-1]
                for side in order:
                    spec = {**base, "side": side, "model": model, "length": length, "batch": batch}
                    result = measure(spec)
                    results[side].append(result)
                    print(f"[sequence_scaling] {describe(result)}", flush=True)
            rows.append(summarise(model, length, batch, results))
    fits = []
    if not args.no_fit_check:
        length = max(args.lengths)
        for model in args.models:
            for side in SIDES:
                spec = {**base, "side": side, "model": model, "length": length,
                        "batch": args.fit_batch, "cap_gib": args.memory_cap_gib, "steps": 1,
                        "warmup": 1}  # fmt: skip
                result = measure(spec)
                print(f"[sequence_scaling] fit check: {describe(result)}", flush=True)
                fits.append(result)
    return rows, fits


def describe(result):
    head = f"{MODEL_NAMES[result['model']]} T={result['length']} B={result['batch']} "
    head += f"{result['side']}: "
    if "error" in result:
        return head + result["error"]
    return head + (
        f"{result['ms']:.0f} ms/step, peak {result['peak_mib']:,.0f} MiB "
        f"(built {result['built_mib']:,.0f} MiB)"
    )


def summarise(model, length, batch, results):
    row = {"model": MODEL_NAMES[model], "length": length, "batch": batch}
    for side, measured in results.items():
        good = [r for r in measured if "error" not in r]
        if not good:
            row[side] = {"error": measured[-1]["error"]}
            continue
        row[side] = {
            "ms": statistics.median(r["ms"] for r in good),
            "step_mib": statistics.median(r["peak_mib"] - r["built_mib"] for r in good),
        }
    return row


def cell(entry, key, text):
    return "error" if "error" in entry else text.format(entry[key])


def report(rows, fits, args, load_start):
    header = ("model", "T", "B", "ours ms", "chunked ms", "keras-hub ms",
              "ours step MiB", "chunked step MiB", "keras-hub step MiB",
              "ratio plain", "ratio chunked")  # fmt: skip
    cells = []
    for row in rows:
        ours, chunked, hub = row["ours"], row["ours, chunked"], row["keras-hub"]
        ratios = []
        for entry in (ours, chunked):
            bad = "error" in entry or "error" in hub
            ratios.append("-" if bad else f"{hub['ms'] / entry['ms']:.2f}")
        cells.append(
            (
                row["model"],
                str(row["length"]),
                str(row["batch"]),
                cell(ours, "ms", "{:,.0f}"),
                cell(chunked, "ms", "{:,.0f}"),
                cell(hub, "ms", "{:,.0f}"),
                cell(ours, "step_mib", "{:,.0f}"),
                cell(chunked, "step_mib", "{:,.0f}"),
                cell(hub, "step_mib", "{:,.0f}"),
                *ratios,
            )
        )
    lines = [
        f"Machine: {machine_description()}; load average {load_start} at the start, "
        f"{load_average()} at the end.",
        f"Size {args.size!r}, vocabulary {args.vocabulary_size:,}, {args.dtype}, {args.tokens:,} "
        f"tokens per batch, chunks of {args.chunk_size} queries; median of {args.rounds} "
        f"process(es) per cell, each {args.warmup} warm-up + {args.steps} timed steps. "
        "Step MiB: peak resident memory during training minus after building. Ratio: "
        "keras-hub ms / ours ms.",
        "",
        markdown_table(header, cells, left_columns=1),
    ]
    if fits:
        lines += [
            "",
            f"Fit check at T = {fits[0]['length']}, B = {fits[0]['batch']}, address space "
            f"capped at {args.memory_cap_gib:g} GiB:",
            "",
        ]
        lines += [f"- {describe(result)}" for result in fits]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return
    if publishing(args):
        check_or_exit([(args.docs, BLOCK)])
    load_start = load_average()
    rows, fits = run(args)
    text = report(rows, fits, args, load_start)
    print_and_publish(args, BLOCK, text, source="benchmarks.sequence_scaling")


if __name__ == "__main__":
    main()
