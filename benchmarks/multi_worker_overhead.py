"""Our training loop against Keras `fit`, and multi-worker throughput, on this machine.

Two measurements, each worker pinned to one CPU core (one intra-op thread) so that "one worker"
and "two workers" compare like for like on a 2-core machine:

1. Per-step overhead at equal work, one worker: Keras `model.fit` (default strategy) against
   our `keras_transformer.training.fit` under the default strategy and under
   `MultiWorkerMirroredStrategy` with a one-worker cluster (the multi-worker code path: its
   distributed dataset, step function and metric reads). Target: within 10% of Keras.
2. Examples per second with 1 and 2 workers (our loop, `multi_worker`), each worker taking the
   same per-worker batch (weak scaling: the global batch doubles with 2 workers), and the
   per-step time the second worker adds (gradient all-reduce, metric and stop-flag collectives
   over gRPC on 127.0.0.1).

Model: a `GPTCausalLM` of 2 layers, width 128, 4 heads, feed-forward 512, sequence 128, 80-token
vocabulary, per-worker batch 16, AdamW with global-norm clipping, dropout 0 (the pretrain
recipe at the "tiny" size). Data: random ids in a repeated in-memory `tf.data` pipeline.

Timing: each configuration runs in fresh processes started by `launch_workers`; a callback
stamps the wall clock and the process CPU clock at the end of every step; the first `--warmup`
steps (tracing) are dropped and the median of the rest is reported. Configurations alternate
over `--repeats` rounds, so drift in the machine's load hits them alike; each row reports the
median over rounds. CPU ms per step is the steadier number on a shared machine.

Run from the repository root:
    python -m benchmarks.multi_worker_overhead            # ~4 minutes
    python -m benchmarks.multi_worker_overhead --quick    # smoke test, ~1 minute
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

VOCABULARY = 80


def worker_main(args):
    """One worker process: build, train `--steps` steps, write step times to `--out`."""
    if args.strategy == "multi_worker":
        from keras_transformer.training import multi_worker_strategy

        strategy = multi_worker_strategy(startup_timeout=300)
    else:
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transformer.models import GPTBackbone, GPTCausalLM
    from keras_transformer.training import fit
    from keras_transformer.training.cluster import current_cluster

    cluster = current_cluster(strategy)
    global_batch = args.batch_size * cluster.num_workers
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCABULARY, size=(global_batch * 8, args.sequence_length + 1))
    ids = ids.astype("int32")

    def to_inputs(block):
        x = {"token_ids": block[:, :-1], "padding_mask": tf.ones_like(block[:, :-1], tf.bool)}
        return x, block[:, 1:], tf.ones_like(block[:, 1:], tf.float32)

    data = tf.data.Dataset.from_tensor_slices(ids).batch(global_batch, drop_remainder=True)
    data = data.map(to_inputs).cache().repeat().prefetch(2)
    with strategy.scope():
        model = GPTCausalLM(
            GPTBackbone(
                vocabulary_size=VOCABULARY,
                num_layers=2,
                num_heads=4,
                hidden_dim=args.hidden_dim,
                intermediate_dim=4 * args.hidden_dim,
                max_sequence_length=args.sequence_length,
                dropout=0.0,
            )
        )
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01, global_clipnorm=1.0)
        )

    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append((time.perf_counter(), time.process_time()))

    start = (time.perf_counter(), time.process_time())
    if args.loop == "keras":
        model.fit(data, epochs=1, steps_per_epoch=args.steps, callbacks=[Stamp()], verbose=0)
    else:
        fit(model, data, epochs=1, steps_per_epoch=args.steps, callbacks=[Stamp()], verbose=0)
    stamps.insert(0, start)
    steady = stamps[args.warmup :]
    wall = [b[0] - a[0] for a, b in zip(steady, steady[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(steady, steady[1:], strict=False)]
    if cluster.is_chief:
        with open(args.out, "w") as file:
            json.dump({"wall": wall, "cpu": cpu, "global_batch": global_batch}, file)


CONFIGS = {
    # name: (loop, strategy, workers)
    "Keras fit, default strategy": ("keras", "default", 1),
    "our fit, default strategy": ("ours", "default", 1),
    "our fit, multi_worker, 1 worker": ("ours", "multi_worker", 1),
    "our fit, multi_worker, 2 workers": ("ours", "multi_worker", 2),
}


def run_config(name, args, folder):
    from keras_transformer.training import launch_workers

    loop, strategy, workers = CONFIGS[name]
    out = os.path.join(folder, f"{abs(hash((name, time.time())))}.json")
    command = [sys.executable, "-m", "benchmarks.multi_worker_overhead", "--worker"]
    command += ["--loop", loop, "--strategy", strategy, "--out", out]
    for key in ("steps", "warmup", "batch_size", "sequence_length", "hidden_dim"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    result = launch_workers(
        command, num_workers=workers, timeout=900, pin_cores=True, log_dir=folder + "-logs"
    )
    if not result.ok:
        raise RuntimeError(f"{name} failed:\n{result.summary}\n{result.log(0)[-3000:]}")
    with open(out) as file:
        return json.load(file)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=60, help="steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="steps dropped (tracing)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the configurations")
    parser.add_argument("--batch-size", type=int, default=16, help="batch per worker")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps")
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.steps, args.warmup, args.repeats = 20, 5, 1
        args.sequence_length, args.hidden_dim = 32, 32

    from benchmarks.common import machine_description

    print(machine_description())
    print(
        f"GPTCausalLM 2 layers x {args.hidden_dim} wide, sequence {args.sequence_length}, "
        f"batch {args.batch_size} per worker, {args.steps} steps ({args.warmup} dropped), "
        f"{args.repeats} round(s); each worker pinned to one core.",
        flush=True,
    )
    results = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.repeats):
            names = list(CONFIGS) if round_index % 2 == 0 else list(CONFIGS)[::-1]
            for name in names:
                results[name].append(run_config(name, args, folder))
                print(f"  round {round_index + 1}: {name} done", flush=True)

    def median_ms(name, key):
        return statistics.median(1000 * statistics.median(r[key]) for r in results[name])

    keras_wall = median_ms("Keras fit, default strategy", "wall")
    keras_cpu = median_ms("Keras fit, default strategy", "cpu")
    one_worker = median_ms("our fit, multi_worker, 1 worker", "wall")
    print()
    print("| configuration | workers | ms/step (wall) | CPU ms/step | vs Keras fit (wall) | "
          "examples/s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, (_, _, workers) in CONFIGS.items():
        wall, cpu = median_ms(name, "wall"), median_ms(name, "cpu")
        global_batch = results[name][0]["global_batch"]
        ratio = f"{wall / keras_wall:.3f}" if workers == 1 else "-"
        cpu_text = f"{cpu:.1f}" + (f" ({cpu / keras_cpu:.3f}x)" if workers == 1 else "")
        print(
            f"| {name} | {workers} | {wall:.1f} | {cpu_text} | {ratio} | "
            f"{global_batch * 1000 / wall:.0f} |"
        )
    two = median_ms("our fit, multi_worker, 2 workers", "wall")
    print()
    print(
        f"2 workers vs 1: {two / one_worker:.2f}x the step time for 2x the examples "
        f"(scaling efficiency {one_worker / two:.0%}); the second worker adds "
        f"{two - one_worker:.1f} ms per step."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
