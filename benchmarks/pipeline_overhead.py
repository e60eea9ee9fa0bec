"""Input pipeline overhead: training on the real tf.data pipeline vs the same batches in memory.

The masked-LM pipeline (`keras_transformer.data.pipelines.masked_lm_dataset`: in-graph WordPiece
tokenization, packing and masking, parallel and prefetched) feeds a BERT-style masked LM on the
`movie_sentiment` texts. The same number of batches, taken from the same pipeline and held in
memory first, feeds an identical model. Both are timed side by side in one process, alternating
epochs; the ratio in-memory time / pipeline time is printed (1.0: the pipeline never starves
the model; the target is >= 0.95).

    python -m benchmarks.pipeline_overhead            # mini BERT, 30 batches of 32 x 128
    python -m benchmarks.pipeline_overhead --quick
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine_description  # noqa: E402
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
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def time_epoch(model, dataset, steps):
    """Seconds for `steps` training steps in steady state (after the iterator's first batch)."""
    timer = StepTimes()
    model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer])
    return timer.times[-1] - timer.times[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batches, args.rounds, args.sequence_length = "tiny", 8, 2, 64
    print(machine_description())
    texts = kt_data.load_movie_sentiment("train").texts
    vocabulary = train_word_piece_vocabulary(tf.data.Dataset.from_tensor_slices(texts), 8000)
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
    streamed = build(len(vocabulary), args.size, args.sequence_length)
    cached = build(len(vocabulary), args.size, args.sequence_length)
    streamed_ds = pipeline()
    time_epoch(streamed, streamed_ds, 2)  # warm-up: tracing
    time_epoch(cached, memory_ds, 2)
    pipeline_times, memory_times = [], []
    for _ in range(args.rounds):
        pipeline_times.append(time_epoch(streamed, streamed_ds, args.batches))
        memory_times.append(time_epoch(cached, memory_ds, args.batches))
    pipeline_time = statistics.median(pipeline_times)
    memory_time = statistics.median(memory_times)
    print(
        f"BertMaskedLM {args.size}, {args.batches} batches of {args.batch_size} x "
        f"{args.sequence_length}, median of {args.rounds}:\n"
        f"  real pipeline (tokenize + pack + mask in tf.data): {pipeline_time:.2f} s\n"
        f"  same batches in memory:                            {memory_time:.2f} s\n"
        f"  ratio in-memory / pipeline: {memory_time / pipeline_time:.3f} (target >= 0.95)"
    )


if __name__ == "__main__":
    main()
