"""Tokenizer throughput: our core-TF WordPiece vs keras-nlp's (tensorflow-text) in one run.

Both tokenize the movie_sentiment sentences inside `tf.data` (batch 256, parallel map,
prefetch), with the same vocabulary and BERT-uncased settings (lowercase, strip accents). The
runs alternate between the two tokenizers so that load from other processes hits both alike;
the script prints sentences per second for each and the ratio of the medians. Each such pass
takes a new iterator, and a new iterator first instantiates the map function (every function of
its graph, `tf.cond` branches included): a once-per-epoch cost that is a large part of a pass
over these 40 batches. So the script also prints the steady state (one warm iterator over the
repeated data, the same number of batches per timed run) and the CPU seconds a new iterator
takes to give its first batch. `--profile` adds where the time goes: a single-threaded TF1
session traces every op of one batch, grouped by the stage name scopes of `WordPieceTokenizer`.

    python benchmarks/tokenizer_throughput.py                      # vocabulary trained here
    python benchmarks/tokenizer_throughput.py --vocabulary vocab.txt --profile
"""

import argparse
import collections
import os
import statistics
import sys
import tarfile
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

STAGES = ("unicode", "split", "lowercase", "word_lookup", "piece_search", "assemble")


def load_texts():
    """The movie_sentiment sentences: through keras_transformer.data, else from the sdist."""
    try:
        from keras_transformer.data import load_movie_sentiment

        texts = []
        for split in ("train", "validation", "test"):
            texts.extend(load_movie_sentiment(split).texts)
        return texts, "keras_transformer.data.load_movie_sentiment (all splits)"
    except Exception as error:  # noqa: BLE001 - fall back to reading the pinned sdist.
        print(f"keras_transformer.data unavailable ({error!r:.120}); reading the sdist.")
    import subprocess

    folder = tempfile.mkdtemp()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        + ["vadersentiment==3.3.2", "-d", folder, "-q"],
        check=True,
    )
    with tarfile.open(os.path.join(folder, "vaderSentiment-3.3.2.tar.gz")) as sdist:
        inner = sdist.extractfile(
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
        ).read()
    with tarfile.open(fileobj=__import__("io").BytesIO(inner)) as archive:
        member = next(
            m
            for m in archive.getmembers()
            if m.name.endswith("movieReviewSnippets_GroundTruth.txt")
        )
        lines = archive.extractfile(member).read().decode("utf-8").splitlines()
    return [line.split("\t", 2)[2] for line in lines if line.strip()], "vadersentiment sdist"


def tokenized_dataset(tokenizer, texts, batch_size, parallel):
    """`texts` in batches of `batch_size`, cached, mapped through `tokenizer` and prefetched."""
    dataset = tf.data.Dataset.from_tensor_slices(texts).cache()
    dataset = dataset.batch(batch_size).map(
        tokenizer, num_parallel_calls=tf.data.AUTOTUNE if parallel else None
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def throughput(tokenizer, texts, batch_size, parallel):
    dataset = tokenized_dataset(tokenizer, texts, batch_size, parallel)
    for _ in dataset:  # Warm up: trace, fill the cache.
        pass

    def run():
        start = time.perf_counter()
        for _ in dataset:
            pass
        return len(texts) / (time.perf_counter() - start)

    return run


def compare_steady(ours, reference, texts, batch_size, repeats, parallel):
    """Steady-state sentences/s in `tf.data` (one warm iterator each), and iterator set-up.

    Returns:
        `(medians, setup)`: `{"ours": ..., "keras-nlp": ...}` sentences/s over `repeats` runs of
        one pass's worth of batches each, runs alternating; and the median CPU seconds a new
        iterator takes to give its first batch (3 iterators each).
    """
    batches = -(-len(texts) // batch_size)
    iterators, setup = {}, {}
    for name, tokenizer in (("ours", ours), ("keras-nlp", reference)):
        dataset = tokenized_dataset(tokenizer, texts, batch_size, parallel).repeat()
        seconds = []
        for _ in range(3):
            start = time.process_time()
            iterator = iter(dataset)
            next(iterator)
            seconds.append(time.process_time() - start)
        setup[name] = statistics.median(seconds)
        for _ in range(batches):  # Warm up: fill the cache and the prefetch buffer.
            next(iterator)
        iterators[name] = iterator
    results = {name: [] for name in iterators}
    for _ in range(repeats):
        for name, iterator in iterators.items():
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            results[name].append(batches * batch_size / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in results.items()}, setup


def profile(build, texts, batch_size, batches=20, stages=STAGES):
    """Per-op times of one batch in a single-threaded TF1 session, grouped by stage.

    Args:
        build: callable making the tokenizer (inside the session's graph).
        texts: list of str. Cut into batches of `batch_size`; all of them are timed.
        batch_size: int.
        batches: int. How many batches are traced op by op.
        stages: sequence of str. The name scopes to group by (see `trace_ops`).

    Returns:
        `(seconds per batch untraced, {stage: microseconds}, {stage: ops run}, {op type:
        microseconds})`, the last three per traced batch.
    """
    graph = tf.Graph()
    with graph.as_default():
        tokenizer = build()
        text = tf.compat.v1.placeholder(tf.string, [None])
        call = getattr(tokenizer, "call", None)
        ids = call(text) if call is not None else tokenizer(text)
        fetches = [ids.flat_values, ids.row_splits]
    chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    feeds = [{text: chunk} for chunk in chunks]
    with single_threaded_session(graph) as session:
        per_batch = seconds_per_run(session, fetches, feeds)
        return (per_batch, *trace_ops(session, fetches, feeds[:batches], stages))


def single_threaded_session(graph):
    """A TF1 session on `graph` with one thread for all ops; its tables are initialized."""
    config = tf.compat.v1.ConfigProto(
        inter_op_parallelism_threads=1, intra_op_parallelism_threads=1
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    with graph.as_default():
        session.run(tf.compat.v1.tables_initializer())
    return session


def seconds_per_run(session, fetches, feeds, warmup=3):
    """Mean wall-clock seconds of `session.run(fetches, feed)` over `feeds` (after `warmup`)."""
    for feed in feeds[:warmup]:
        session.run(fetches, feed)
    start = time.perf_counter()
    for feed in feeds:
        session.run(fetches, feed)
    return (time.perf_counter() - start) / len(feeds)


def trace_ops(session, fetches, feeds, stages):
    """Per-op times of `session.run(fetches, feed)` for each feed (FULL_TRACE), by name scope.

    Args:
        session: a TF1 session (single-threaded, so that op times add up to the run's).
        fetches: what to run.
        feeds: list of feed dicts, one traced run each.
        stages: sequence of str. Name scopes; an op belongs to the outermost scope of its name
            that is one of them (`merges/cond/split/x` to `merges`), else to "other".

    Returns:
        `({stage: microseconds}, {stage: ops run}, {op type: microseconds})`, per run.
    """
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    stage_time, stage_ops, op_time = collections.Counter(), collections.Counter(), {}
    for feed in feeds:
        metadata = tf.compat.v1.RunMetadata()
        session.run(fetches, feed, options=options, run_metadata=metadata)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                name = node.node_name.split(":")[0]
                stage = next((s for s in name.split("/")[:-1] if s in stages), "other")
                stage_time[stage] += node.all_end_rel_micros / len(feeds)
                stage_ops[stage] += 1 / len(feeds)
                op = node.timeline_label.split(" = ")[-1].split("(")[0] or name
                op_time[op] = op_time.get(op, 0) + node.all_end_rel_micros / len(feeds)
    return stage_time, stage_ops, op_time


def setup(vocabulary_path=None, vocabulary_size=30522):
    """The sentences, the vocabulary and both tokenizers (ours, keras-nlp's); prints the sources.

    Args:
        vocabulary_path: str or None. A vocab.txt; None trains one on the sentences with
            keras-hub's trainer.
        vocabulary_size: int. The size asked of the trainer.

    Returns:
        `(texts, vocabulary, ours, reference)`.
    """
    import keras_hub

    from keras_transformer.text import (
        WordPieceTokenizer,
        load_vocabulary,
        train_word_piece_vocabulary,
    )

    texts, source = load_texts()
    if vocabulary_path:
        vocabulary = load_vocabulary(vocabulary_path, required_tokens=("[UNK]",))
        vocab_source = vocabulary_path
    else:
        vocabulary = train_word_piece_vocabulary(texts, vocabulary_size)
        vocab_source = "trained on the text with keras-hub's trainer"
    print(f"text: {len(texts)} sentences from {source}")
    print(f"vocabulary: {len(vocabulary)} tokens, {vocab_source}")
    ours = WordPieceTokenizer(vocabulary, lowercase=True, strip_accents=True)
    reference = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary, lowercase=True, strip_accents=True
    )
    return texts, vocabulary, ours, reference


def compare(ours, reference, texts, batch_size, repeats, parallel):
    """Sentences/s of both tokenizers inside `tf.data`, runs alternating.

    Returns:
        `(medians, bests)`: dicts `{"ours": ..., "keras-nlp": ...}` over `repeats` runs each.
    """
    runs = {
        "ours": throughput(ours, texts, batch_size, parallel),
        "keras-nlp": throughput(reference, texts, batch_size, parallel),
    }
    results = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            results[name].append(run())
    medians = {name: statistics.median(values) for name, values in results.items()}
    bests = {name: max(values) for name, values in results.items()}
    return medians, bests


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocabulary", default=None, help="vocab.txt; default: train one")
    parser.add_argument("--vocabulary-size", type=int, default=30522)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import keras_hub

    from keras_transformer.text import WordPieceTokenizer

    texts, vocabulary, ours, reference = setup(args.vocabulary, args.vocabulary_size)
    data = tf.data.Dataset.from_tensor_slices(texts).batch(args.batch_size)
    got = [row for batch in data.map(ours) for row in batch.to_list()]
    expected = [row for batch in data.map(reference) for row in batch.to_list()]
    mismatches = sum(a != b for a, b in zip(got, expected, strict=True))
    tokens = sum(len(row) for row in got)
    print(f"ids equal to keras-nlp's: {len(texts) - mismatches}/{len(texts)} sentences")
    words = ours.split_words(tf.constant(texts)).flat_values
    whole = ours._vocab_table.lookup(words)  # noqa: SLF001 - a statistic for the report.
    missed = float(tf.reduce_mean(tf.cast(whole < 0, tf.float32)))
    print(
        f"{tokens / len(texts):.1f} tokens and {words.shape[0] / len(texts):.1f} words per "
        f"sentence; {missed:.1%} of words are not whole in the vocabulary"
    )

    print(f"\ninside tf.data, batch {args.batch_size}, sentences/s (median of {args.repeats}):")
    for parallel in (True, False):
        medians, bests = compare(ours, reference, texts, args.batch_size, args.repeats, parallel)
        label = "parallel map (AUTOTUNE)" if parallel else "sequential map          "
        print(
            f"  {label}  ours {medians['ours']:9,.0f}   keras-nlp {medians['keras-nlp']:9,.0f}"
            f"   ratio {medians['ours'] / medians['keras-nlp']:.2f}"
            f"   (best {bests['ours']:,.0f} / {bests['keras-nlp']:,.0f})"
        )
    print(f"\nsteady state (one warm iterator), batch {args.batch_size}, sentences/s:")
    for parallel in (True, False):
        medians, seconds = compare_steady(
            ours, reference, texts, args.batch_size, args.repeats, parallel
        )
        label = "parallel map (AUTOTUNE)" if parallel else "sequential map         "
        print(
            f"  {label}  ours {medians['ours']:9,.0f}   keras-nlp {medians['keras-nlp']:9,.0f}"
            f"   ratio {medians['ours'] / medians['keras-nlp']:.2f}"
            f"   (new iterator to first batch: {seconds['ours']:.2f} / "
            f"{seconds['keras-nlp']:.2f} CPU s)"
        )

    if args.profile:
        print("\nwhere the time goes (single-threaded session, per batch):")
        builders = {
            "ours": lambda: WordPieceTokenizer(vocabulary),
            "keras-nlp": lambda: keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary, lowercase=True, strip_accents=True
            ),
        }
        for name, build in builders.items():
            per_batch, stage_time, stage_ops, op_time = profile(build, texts, args.batch_size)
            print(
                f"  {name}: {per_batch * 1e3:.2f} ms/batch untraced, "
                f"{sum(stage_ops.values()):.0f} ops run per batch"
            )
            if name == "ours":
                for stage in STAGES + ("other",):
                    print(
                        f"    {stage:13s} {stage_time[stage]:7.0f} us  {stage_ops[stage]:4.0f} ops"
                    )
            top = sorted(op_time.items(), key=lambda item: -item[1])[:8]
            print("    top ops: " + ", ".join(f"{op} {us:.0f}us" for op, us in top))


if __name__ == "__main__":
    main()
