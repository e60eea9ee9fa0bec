"""Input pipeline overhead: training on the real tf.data pipeline vs the same batches in memory.

The masked-LM pipeline (`keras_transformer.data.pipelines.masked_lm_dataset`: in-graph WordPiece
tokenization, packing and masking, parallel and prefetched) feeds a BERT-style masked LM on the
`movie_sentiment` texts. The same number of batches, taken from the same pipeline and held in
memory first, feeds an identical model. Both are timed side by side in one process, one
epoch each per round, the order flipped every round; the ratio in-memory / pipeline of the
median step time (and of CPU time per step) is printed (1.0: the pipeline never starves the
model; the target is >= 0.95) and written into the `pipeline_overhead` block of
docs/BENCHMARKS.md (a `--quick` run only with `--publish`).

An earlier version compared the total wall time of three epochs per side, the pipeline's
always first in each round, and printed 1.32 (the pipeline "faster" than memory): with the
same batch shapes on both sides (B x T tokens, P masked positions: equal work per step) that
was the timing, not the work. Epoch totals on a shared 2-core machine swing by 10-30% with
other jobs, and a fixed order lets a systematic effect hit one side only.

    python -m benchmarks.pipeline_overhead            # mini BERT, 4 rounds of 30 steps of 32 x 128
    python -m benchmarks.pipeline_overhead --quick
"""

import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import load_average, machine_description  # noqa: E402
from benchmarks.publish import add_arguments, check_or_exit, publishing, replace_block  # noqa: E402
from keras_transformer import data as kt_data  # noqa: E402
from keras_transformer.data import pipelines  # noqa: E402
from keras_transformer.models import BertBackbone, BertMaskedLM, size_arguments  # noqa: E402
from keras_transformer.text import WordPieceTokenizer, train_word_piece_vocabulary  # noqa: E402


def build(vocabulary_size, size, sequence_length):
    keras.utils.set_random_seed(0)
    model = BertMaskedLM(
        BertBackbone(
            **size_arguments(
                size, vocabulary_size=vocabulary_size, max_sequence_length=sequence_length
            )
        )
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), weighted_metrics=[])
    return model


class StepTimes(keras.callbacks.Callback):
    """Wall-clock and process CPU time at the end of every training step."""

    def on_train_begin(self, logs=None):
        self.wall, self.cpu = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())


def time_epoch(model, dataset, steps):
    """`(step times, CPU seconds)` of `steps` training steps after the iterator's first batch.

    The first step (a new iterator: the shuffle buffer fills, the prefetch starts) is not
    timed. Step times are wall-clock seconds, one per step; CPU seconds cover all of them.
    """
    gc.collect()  # the previous epoch's iterator and graphs go now, not inside this epoch
    timer = StepTimes()
    model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer])
    steps_times = [b - a for a, b in zip(timer.wall, timer.wall[1:], strict=False)]
    return steps_times, timer.cpu[-1] - timer.cpu[0]


def compare(contenders, steps, rounds):
    """Median step time and CPU time per step of `{name: (model, dataset)}`, interleaved.

    Every round runs one epoch of `steps` steps per contender, in an order that flips every
    round, so that load from other jobs and whatever an epoch leaves behind hit both alike.

    Returns:
        `{name: {"step": median seconds per step, "cpu": CPU seconds per step}}`.
    """
    times = {name: [] for name in contenders}
    cpu = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            model, dataset = contenders[name]
            step_times, cpu_seconds = time_epoch(model, dataset, steps)
            times[name].extend(step_times)
            cpu[name].append(cpu_seconds / steps)
    return {
        name: {"step": statistics.median(times[name]), "cpu": statistics.median(cpu[name])}
        for name in contenders
    }


def result_text(args, result, command, machine, loads):
    """The published lines: settings, both sides' times, the two ratios against the target."""
    pipeline, memory = result["pipeline"], result["memory"]
    return "\n".join(
        [
            f"`{command}`: {machine}; load average (1, 5, 15 min) {loads[0]} at the start, "
            f"{loads[1]} at the end.",
            "",
            f"BertMaskedLM {args.size}, batches of {args.batch_size} x {args.sequence_length}, "
            f"{args.rounds} rounds of {args.batches} steps per side, order flipped every round:",
            "",
            "| input | median step | CPU per step |",
            "| --- | --- | --- |",
            "| real pipeline (tokenize + pack + mask in tf.data) | "
            f"{1e3 * pipeline['step']:.1f} ms | {1e3 * pipeline['cpu']:.1f} ms |",
            f"| the same pipeline's batches, cached in memory | {1e3 * memory['step']:.1f} ms "
            f"| {1e3 * memory['cpu']:.1f} ms |",
            "",
            f"Ratio in-memory / pipeline: {memory['step'] / pipeline['step']:.3f} from the median "
            f"step, {memory['cpu'] / pipeline['cpu']:.3f} from CPU time (target >= 0.95; 1.0: the "
            "pipeline never makes the model wait).",
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--batches", type=int, default=30, help="timed steps per side and round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--quick", action="store_true")
    add_arguments(parser)
    args = parser.parse_args(argv)
    for flag in ("batches", "batch_size", "sequence_length", "rounds", "vocabulary_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be a positive integer")
    if args.quick:
        args.size, args.batches, args.rounds, args.sequence_length = "tiny", 8, 4, 64
    if publishing(args):
        check_or_exit([(args.docs, BLOCK)])
    machine, load_at_start = machine_description(), load_average()
    print(machine)
    texts = kt_data.load_movie_sentiment("train").texts
    vocabulary = train_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts), args.vocabulary_size
    )
    tokenizer = WordPieceTokenizer(vocabulary)

    def pipeline():
        return pipelines.masked_lm_dataset(
            tf.data.Dataset.from_tensor_slices(texts),
            tokenizer,
            args.sequence_length,
            args.batch_size,
            seed=0,
            shuffle_buffer_size=len(texts),
            drop_remainder=True,
        ).repeat()

    memory_ds = pipeline().take(args.batches).cache()  # the same batches, held in memory
    for _ in memory_ds:  # fill the cache
        pass
    memory_ds = memory_ds.repeat()
    contenders = {
        "pipeline": (build(len(vocabulary), args.size, args.sequence_length), pipeline()),
        "memory": (build(len(vocabulary), args.size, args.sequence_length), memory_ds),
    }
    for model, dataset in contenders.values():
        time_epoch(model, dataset, 2)  # warm-up: tracing
    result = compare(contenders, args.batches, args.rounds)
    command = "python -m benchmarks.pipeline_overhead" + (" --quick" if args.quick else "")
    text = result_text(args, result, command, machine, (load_at_start, load_average()))
    print(text)
    if publishing(args):
        replace_block(args.docs, BLOCK, text, source=command)
        print(f"\nWritten to the {BLOCK!r} block of {args.docs}.")


BLOCK = "pipeline_overhead"


if __name__ == "__main__":
    main()
