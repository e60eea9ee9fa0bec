"""Helpers shared by the benchmarks: the machine, the `tf.matmul` peak, timing, tables."""

import contextlib
import datetime
import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf


def machine_description():
    """One line naming the CPU, the cores this process may use, and the date and time."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"{cpu}, {cores} cores, TensorFlow {tf.__version__}, Keras {keras.__version__}, run {now}"
    )


def load_average():
    """The load averages over 1, 5 and 15 minutes, as one string ("0.21 0.40 0.35")."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def matmul_peak_flops(dtype, size=4096, repeats=5):
    """Best FLOP/s of a `size`² × `size`² `tf.matmul` in `dtype` (2·size³ FLOPs per product).

    The product runs once to warm up, then `repeats` times; the fastest run counts (the peak
    this process can reach, which is what "fraction of peak" compares against).
    """
    a = tf.random.stateless_normal((size, size), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((size, size), seed=(3, 4), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()  # .numpy() waits for the result
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy inside the block, and restores the previous one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def time_train_steps(models, batch, warmup, steps):
    """Times `train_on_batch` steps of several models on one batch, interleaved.

    Each model first runs `warmup` untimed steps (tracing and graph optimisation happen in the
    first). Then, `steps` times, every model runs one timed step; the order of the models
    alternates between rounds so that drift in the machine's speed hits all of them alike.
    `train_on_batch` returns numpy logs, so each timed step includes waiting for its result.

    Both the wall-clock time and the CPU time of this process (all its threads) are recorded:
    on a machine shared with other jobs the wall time of a step grows whenever our threads are
    descheduled, while the CPU time measures the work done and stays comparable.

    Args:
        models: dict of name -> compiled `keras.Model`.
        batch: dict of name -> `(x, y, sample_weight)`, the batch of each model (tensors).
        warmup: int. Untimed steps per model.
        steps: int. Timed steps per model.

    Returns:
        `(wall, cpu)`: dicts of name -> list of `steps` step times in seconds.
    """
    for name, model in models.items():
        for _ in range(max(1, warmup)):
            model.train_on_batch(*batch[name])
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    names = list(models)
    for step in range(steps):
        for name in names if step % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            logs = models[name].train_on_batch(*batch[name])
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            if not np.all(np.isfinite(logs)):
                raise FloatingPointError(f"{name}: the loss is not finite ({logs}).")
    return wall, cpu


def median_ms(times):
    """Median of step times in seconds, in milliseconds."""
    return 1000.0 * statistics.median(times)


def interleaved(contenders, repeats, warmup=2):
    """`{name: median seconds}` of `{name: callable}` run in alternating rounds.

    Each callable first runs `warmup` untimed calls; then, `repeats` times, every callable runs
    once, in an order that flips every round, so that drift in the machine's speed hits all alike.
    """
    return interleaved_with_cpu(contenders, repeats, warmup)[0]


def interleaved_with_cpu(contenders, repeats, warmup=2):
    """`interleaved`, also timing CPU: `({name: median wall s}, {name: median CPU s})`.

    CPU time is this process's (all its threads): while one callable runs, the others wait.
    """
    for function in contenders.values():
        for _ in range(warmup):
            function()
    wall = {name: [] for name in contenders}
    cpu = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            contenders[name]()
            wall[name].append(time.perf_counter() - wall_start)
            cpu[name].append(time.process_time() - cpu_start)
    return tuple(
        {name: statistics.median(values) for name, values in times.items()} for times in (wall, cpu)
    )


def markdown_table(header, rows, left_columns=1):
    """A markdown table with padded columns: the first `left_columns` left-aligned, others right.

    Args:
        header: sequence of str. The column titles.
        rows: sequence of sequences of str, each as long as `header`.
        left_columns: int. How many leading columns are text (left-aligned).

    Returns:
        The table as one string, a line per row, the separator line after the header.
    """
    cells = [tuple(header)] + [tuple(row) for row in rows]
    for row in cells:
        if len(row) != len(header):
            raise ValueError(f"Every row needs {len(header)} cells. Received: {row}")
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "| "
            + " | ".join(
                c.ljust(w) if i < left_columns else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
