"""Inference speed of a half-depth student `BertClassifier` against its teacher.

The teacher is a `BertClassifier` of a named size ("mini": 4 blocks, 256 wide) with random
weights; the student is the same classifier with half the blocks (what the distill workflow
builds by default). Both predict the same batch of random token ids (`predict_on_batch`, no
dropout, float32); the calls alternate between the two, the order flipping every round, and the
medians give examples per second. Only speed is measured here: the student's accuracy comes from
the distill workflow (the main job's report, or `benchmarks/quality.py`).

    python -m benchmarks.student_speed                # mini, batch 32 x 128, 20 rounds
    python -m benchmarks.student_speed --size tiny --repeats 5
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import interleaved, machine_description  # noqa: E402
from keras_transformer.models import BertBackbone, BertClassifier, size_arguments  # noqa: E402


def build_pair(size, vocabulary_size, seed=0):
    """The teacher classifier of `size` and its half-depth student, random weights."""
    keras.utils.set_random_seed(seed)
    arguments = size_arguments(size, vocabulary_size=vocabulary_size)
    teacher = BertClassifier(BertBackbone(**arguments), num_classes=2)
    arguments["num_layers"] = max(1, arguments["num_layers"] // 2)
    student = BertClassifier(BertBackbone(**arguments), num_classes=2)
    return teacher, student


def measure(size="mini", batch_size=32, sequence_length=128, repeats=20, vocabulary_size=30522):
    """Examples per second of the teacher and the student, interleaved on one batch.

    Returns:
        dict: `teacher` and `student` examples/s, `teacher_layers`, `student_layers`, `speedup`
        (student / teacher).
    """
    teacher, student = build_pair(size, vocabulary_size)
    rng = np.random.default_rng(0)
    x = {
        "token_ids": tf.constant(
            rng.integers(1, vocabulary_size, (batch_size, sequence_length)), tf.int32
        ),
        "padding_mask": tf.ones((batch_size, sequence_length), tf.int32),
    }
    seconds = interleaved(
        {
            "teacher": lambda: teacher.predict_on_batch(x),
            "student": lambda: student.predict_on_batch(x),
        },
        repeats,
    )
    result = {name: batch_size / value for name, value in seconds.items()}
    result["teacher_layers"] = teacher.backbone.num_layers
    result["student_layers"] = student.backbone.num_layers
    result["speedup"] = result["student"] / result["teacher"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(machine_description())
    result = measure(args.size, args.batch_size, args.sequence_length, args.repeats)
    print(
        f"{args.size}, batch {args.batch_size} x {args.sequence_length}, median of "
        f"{args.repeats} interleaved predict_on_batch calls: teacher ({result['teacher_layers']} "
        f"blocks) {result['teacher']:,.0f} examples/s, student ({result['student_layers']} "
        f"blocks) {result['student']:,.0f} examples/s, speedup {result['speedup']:.2f}x"
    )


if __name__ == "__main__":
    main()
