"""Byte-level BPE throughput: our core-TF `BytePairTokenizer` vs keras-hub's and Hugging Face's.

One vocabulary and one list of merges (8,000 tokens learned by our `train_byte_pair_vocabulary`
from the Shakespeare training split, special token `<|endoftext|>`) go into three tokenizers:
ours (`keras_transformer.text.BytePairTokenizer`, core TensorFlow ops), keras-hub's
`keras_hub.tokenizers.BytePairTokenizer` (tensorflow-text) and a Hugging Face `tokenizers`
ByteLevel BPE. They tokenize two corpora: the movie reviews (`load_movie_sentiment`, all
splits) and the held-out Shakespeare lines (the validation and test plays, one string per
non-empty line, read as `tests/text/byte_pair_samples.py` reads them).

First the ids are compared on every benchmark string (the mismatch counts are printed); if ours
differ from Hugging Face's on any string the script stops with status 1 before timing.

Then, per corpus, after one untimed pass each, four contenders run one pass over the corpus
per round, in an order that flips every round (as `common.interleaved`), so that load from
other jobs hits all alike; the table gives sentences/s from the median pass and the ratios of
ours to each:

- ours and keras-hub inside `tf.data`: batches of 256, parallel map (AUTOTUNE), prefetch, as
  `tokenizer_throughput.py` builds it for WordPiece. Each pass takes a new iterator and is
  timed from its first batch to its end: a new iterator first instantiates the pipeline's
  functions (0.5-3 s for these BPE graphs, on a corpus that then takes 1-3 s), a once-per-epoch
  cost reported in its own table. keras-hub's tokenizer caches every word it has merged (a
  mutable table), so after the warm-up pass all its words are cached; ours caches only the
  words that are vocabulary tokens (a static table built at construction) and merges the
  others in the graph on every pass.
- Hugging Face `tokenizers` inside the same `tf.data` pipeline, timed the same way:
  `encode_batch` of each batch through `tf.numpy_function` (the Python function holds the GIL
  while it decodes the strings and gathers the ids; `encode_batch` itself runs in Rust on all
  cores). Such a pipeline cannot be saved into a SavedModel, which is why ours exists.
- Hugging Face `tokenizers` from Python: `encode_batch` over lists of 256 `str`, the ids read
  from each encoding; no `tf.data`, no tensors.

`--profile` adds where our time goes, on one thread (a single-threaded TF1 session): each stage
of our tokenizer timed alone on its real inputs (pre-tokenization; cache lookup and id
assembly of the words the cache holds; the merge while_loop on the words it misses;
detokenize), and the first batches traced op by op, grouped by the name scopes of
`BytePairTokenizer` (special tokens, UTF-8 check, GPT-2 regex split, cache, merges, assemble,
detokenize).

The results go into the `byte_pair_throughput` block of docs/BENCHMARKS.md (a `--quick` run
only with `--publish`).

    python -m benchmarks.byte_pair_throughput --profile     # the published figures, ~4-8 min
    python -m benchmarks.byte_pair_throughput --quick       # smoke test, ~1 min, publishes nothing
    python -m benchmarks.byte_pair_throughput --vocabulary vocab.json --merges merges.txt
"""

import argparse
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import (  # noqa: E402
    interleaved,
    load_average,
    machine_description,
    markdown_table,
)
from benchmarks.publish import add_arguments, check_or_exit, publishing, replace_block  # noqa: E402
from benchmarks.tokenizer_throughput import (  # noqa: E402
    single_threaded_session,
    tokenized_dataset,
    trace_ops,
)

BLOCK = "byte_pair_throughput"
SPECIAL = "<|endoftext|>"
CONTENDERS = ("ours", "keras-hub", "tokenizers, tf.data", "tokenizers, Python")
# The name scopes of BytePairTokenizer (byte_pair.py, byte_pair_ops.py) by stage of the profile.
PRE_TOKENIZE_SCOPES = {
    "special tokens split out": ("special_tokens",),
    "UTF-8 check (and bytes restored)": ("utf8", "restore_bytes"),
    "GPT-2 regex split": ("split",),
}
SCOPES = ("special_tokens", "utf8", "restore_bytes", "split", "cache", "merges", "assemble")


class ParityError(RuntimeError):
    """Our ids differ from Hugging Face's: the timings would compare different work."""


# === Text, vocabulary, tokenizers ===


def shakespeare_lines(split):
    """The lines of one split of the Shakespeare corpus, in order (blank lines kept)."""
    from keras_transformer.data import shakespeare

    text = "\n\n".join(scene.text for scene in shakespeare.read_scenes(split))
    return text.split("\n")


def load_corpora(limit=None):
    """`{name: texts}`: the movie reviews (all splits) and the held-out Shakespeare lines."""
    from keras_transformer.data import load_movie_sentiment

    reviews = [t for s in ("train", "validation", "test") for t in load_movie_sentiment(s).texts]
    lines = [line for s in ("validation", "test") for line in shakespeare_lines(s) if line]
    return {"movie reviews": reviews[:limit], "Shakespeare lines": lines[:limit]}


def vocabulary_and_merges(vocabulary_size, vocabulary_path=None, merges_path=None):
    """`(vocabulary, merges, description)`: from the files, or learned from Shakespeare's train."""
    from keras_transformer.text import BytePairTokenizer, train_byte_pair_vocabulary

    if vocabulary_path:
        loaded = BytePairTokenizer(vocabulary_path, merges_path, special_tokens=[SPECIAL])
        return loaded.vocabulary, loaded.merges, f"read from {vocabulary_path} and {merges_path}"
    lines = shakespeare_lines("train")
    start = time.perf_counter()
    vocabulary, merges = train_byte_pair_vocabulary(
        lines, vocabulary_size, special_tokens=[SPECIAL], verbose=False
    )
    seconds = time.perf_counter() - start
    return (
        vocabulary,
        merges,
        f"learned by `train_byte_pair_vocabulary` from the Shakespeare training split "
        f"({len(lines):,} lines) in {seconds:.0f} s",
    )


def build_ours(vocabulary, merges):
    from keras_transformer.text import BytePairTokenizer

    return BytePairTokenizer(vocabulary, merges, special_tokens=[SPECIAL])


def build_keras_hub(vocabulary, merges):
    import keras_hub

    token_ids = {token: i for i, token in enumerate(vocabulary)}
    return keras_hub.tokenizers.BytePairTokenizer(
        token_ids, list(merges), unsplittable_tokens=[SPECIAL]
    )


def build_hugging_face(vocabulary, merges):
    """A `tokenizers` ByteLevel BPE (GPT-2's pre-tokenizer, no prefix space) of the same files."""
    import tokenizers

    token_ids = {token: i for i, token in enumerate(vocabulary)}
    pairs = [tuple(merge.split(" ")) for merge in merges]
    tokenizer = tokenizers.ByteLevelBPETokenizer(token_ids, pairs, add_prefix_space=False)
    tokenizer.add_special_tokens([SPECIAL])
    return tokenizer


def hugging_face_map(tokenizer):
    """A `tf.data` map function: `encode_batch` of a (B,) string batch via `tf.numpy_function`.

    Returns an int32 `tf.RaggedTensor` (B, (T)), as the graph tokenizers do.
    """

    def encode(batch):
        encodings = tokenizer.encode_batch([text.decode("utf-8") for text in batch.tolist()])
        rows = [encoding.ids for encoding in encodings]
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        ids = np.fromiter(itertools.chain.from_iterable(rows), np.int32, int(lengths.sum()))
        return ids, lengths

    def map_function(batch):
        ids, lengths = tf.numpy_function(encode, [batch], [tf.int32, tf.int64], stateful=False)
        ids.set_shape([None])
        lengths.set_shape([None])
        return tf.RaggedTensor.from_row_lengths(ids, lengths, validate=False)

    return map_function


def batches_of(texts, batch_size):
    return [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]


def hugging_face_ids(tokenizer, texts, batch_size):
    """Hugging Face's ids of `texts`, `encode_batch` over lists of `batch_size` strings."""
    return [
        encoding.ids
        for batch in batches_of(texts, batch_size)
        for encoding in tokenizer.encode_batch(batch)
    ]


def dataset_ids(map_function, texts, batch_size):
    """The ids of `texts` from a `tf.data` pipeline mapped by `map_function`, as lists."""
    dataset = tokenized_dataset(map_function, texts, batch_size, parallel=False)
    return [row for batch in dataset for row in batch.to_list()]


# === Parity ===


def mismatch_counts(ids):
    """Strings on which the contenders' ids differ.

    Args:
        ids: dict `{name: list of id lists}` over the same strings; names of `CONTENDERS`.

    Returns:
        dict `{(a, b): count}` for ours, keras-hub and tokenizers' tf.data path against
        tokenizers from Python, and ours against keras-hub.
    """
    pairs = [
        ("ours", "tokenizers, Python"),
        ("keras-hub", "tokenizers, Python"),
        ("ours", "keras-hub"),
        ("tokenizers, tf.data", "tokenizers, Python"),
    ]
    return {
        (a, b): sum(x != y for x, y in zip(ids[a], ids[b], strict=True))
        for a, b in pairs
        if a in ids and b in ids
    }


def require_parity(corpus, texts, ids):
    """Raises `ParityError` naming the first strings where ours (or the tf.data path of
    `tokenizers`) differ from `tokenizers` called from Python."""
    reference = ids["tokenizers, Python"]
    for name in ("ours", "tokenizers, tf.data"):
        bad = [
            (text, got, expected)
            for text, got, expected in zip(texts, ids[name], reference, strict=True)
            if got != expected
        ]
        if bad:
            first = "; ".join(f"{t!r:.80} -> {g[:12]} vs {e[:12]}" for t, g, e in bad[:3])
            raise ParityError(
                f"{name} differs from Hugging Face tokenizers on {len(bad):,} of "
                f"{len(texts):,} {corpus}, e.g. {first}. The timings would compare different "
                "work: fix the tokenizer (tests/text/test_byte_pair.py) before benchmarking."
            )


# === Timing ===


def dataset_pass(dataset, sentences):
    """One pass over a new iterator of `dataset`: `(seconds to its first batch, sentences/s
    after it)`.

    A new iterator instantiates the pipeline's functions before its first batch (0.5-3 s for
    the BPE graphs here); that start-up is kept apart, so that sentences/s is the steady rate.
    """
    start = time.perf_counter()
    iterator = iter(dataset)
    first = next(iterator)
    ready = time.perf_counter()
    for _ in iterator:
        pass
    return ready - start, (sentences - int(first.nrows())) / (time.perf_counter() - ready)


def pass_runners(tokenizers_by_name, texts, batch_size):
    """`{name: callable}`: one pass over `texts` by each contender, returning `(start-up
    seconds or None, sentences/s)`."""
    hugging_face = tokenizers_by_name["tokenizers"]
    python_batches = batches_of(texts, batch_size)
    datasets = {
        "ours": tokenized_dataset(tokenizers_by_name["ours"], texts, batch_size, True),
        "keras-hub": tokenized_dataset(tokenizers_by_name["keras-hub"], texts, batch_size, True),
        "tokenizers, tf.data": tokenized_dataset(
            hugging_face_map(hugging_face), texts, batch_size, True
        ),
    }

    def python_pass():
        start = time.perf_counter()
        for batch in python_batches:
            [encoding.ids for encoding in hugging_face.encode_batch(batch)]
        return None, len(texts) / (time.perf_counter() - start)

    runners = {
        name: lambda dataset=dataset: dataset_pass(dataset, len(texts))
        for name, dataset in datasets.items()
    }
    runners["tokenizers, Python"] = python_pass
    return runners


def measure(tokenizers_by_name, corpora, batch_size, repeats):
    """Sentences/s and iterator start-up of each contender on each corpus.

    After one untimed pass each (tracing; keras-hub fills its cache), every round runs one
    pass per contender, in an order that flips every round (as `common.interleaved`), so that
    load from other jobs hits all alike.

    Returns:
        `(speeds, startups)`: `{corpus: {contender: median sentences/s}}` and `{corpus:
        {contender: median seconds to a new iterator's first batch}}` (tf.data contenders).
    """
    speeds, startups = {}, {}
    for corpus, texts in corpora.items():
        print(f"timing {corpus}: {repeats} rounds of one pass per contender", flush=True)
        runners = pass_runners(tokenizers_by_name, texts, batch_size)
        for run in runners.values():
            run()
        results = {name: [] for name in runners}
        names = list(runners)
        for round_ in range(repeats):
            for name in names if round_ % 2 == 0 else names[::-1]:
                results[name].append(runners[name]())
        speeds[corpus] = {n: statistics.median(r for _, r in results[n]) for n in CONTENDERS}
        startups[corpus] = {
            n: statistics.median(s for s, _ in results[n])
            for n in CONTENDERS
            if results[n][0][0] is not None
        }
    return speeds, startups


# === Profile ===


def cache_arrays(tokenizer):
    """The word cache an eager `BytePairTokenizer` built, as numpy arrays (see `graph_tokenizer`).

    Private attributes of the layer: the benchmark's view inside, checked by `profile_ours`.
    """
    keys, values = tokenizer._cache_table.export()
    arrays = {"keys": keys.numpy(), "values": values.numpy()}
    for name in ("_cache_ids", "_cache_starts", "_cache_lengths"):
        arrays[name] = getattr(tokenizer, name).numpy()
    return arrays


def graph_tokenizer(vocabulary, merges, cache):
    """Our tokenizer built in the current TF1 graph, holding the word cache `cache_arrays` read.

    A `BytePairTokenizer` made inside a TF1 graph cannot run its merges eagerly to fill its
    cache, so it caches its special tokens only and every word would go through the merge
    loop. This one gets the cache the eager layer built, so that the profiled graph does the
    work the `tf.data` pipeline does.
    """
    tokenizer = build_ours(vocabulary, merges)
    tokenizer._cache_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(cache["keys"], cache["values"]), default_value=-1
    )
    for name in ("_cache_ids", "_cache_starts", "_cache_lengths"):
        setattr(tokenizer, name, tf.constant(cache[name]))
    return tokenizer


def _batch_constant(rows, dtype):
    """`(values, splits)` graph constants holding a list of 1-D arrays (one per batch)."""
    splits = np.cumsum([0] + [len(row) for row in rows])
    values = np.concatenate(rows) if rows else np.zeros([0])
    return tf.constant(values, dtype), tf.constant(splits, tf.int32)


def profile_ours(tokenizer, texts, batch_size, batches, rounds):
    """Where our time goes, per batch of `batch_size` strings of `texts`, on one thread.

    One single-threaded TF1 session runs each stage of the tokenizer alone on its real inputs
    (the eager layer's intermediate results, held as graph constants so that no strings
    cross from Python), untraced, over every batch: the whole tokenization, pre-tokenization
    (text -> words), BPE of the words the cache holds (cache lookup and id assembly; the loop
    is skipped), the merge loop alone (on the words the cache misses, as `_byte_pair` calls
    it) and detokenization of the batch's ids. The first `batches`
    batches of the whole tokenization are then traced op by op (FULL_TRACE) to split it by
    name scope; tracing slows every op, so traced microseconds exceed the untraced times,
    most in stages of many small ops. The untraced passes (one per stage) alternate over
    `rounds` rounds, and each stage's time is its median pass: other jobs on the cores
    preempt even one thread.

    Returns:
        dict: untraced `ms` per stage (`tokenize`, `pre-tokenize`, `cache`, `merges`,
        `detokenize`), traced `us` and `ops` per name scope (and `detokenize`), `top_ops`
        (the six costliest op types, traced us), `words` per sentence, the share `cached`,
        `missed` words per batch.
    """
    from keras_transformer.text.byte_pair_ops import merge_words

    chunks = batches_of(texts, batch_size)
    words, hits, missed, ids, id_splits = [], [], [], [], []
    for chunk in chunks:
        batch_words = tokenizer.split_words(chunk).flat_values
        cached = tokenizer._cache_table.lookup(batch_words) >= 0
        words.append(batch_words.numpy())
        hits.append(tf.boolean_mask(batch_words, cached).numpy())
        missed.append(tf.boolean_mask(batch_words, ~cached).numpy())
        tokens = tokenizer(chunk)
        ids.append(tokens.flat_values.numpy())
        id_splits.append(tokens.row_splits.numpy())
    cache = cache_arrays(tokenizer)
    graph = tf.Graph()
    with graph.as_default():
        copy = graph_tokenizer(tokenizer.vocabulary, tokenizer.merges, cache)
        index = tf.compat.v1.placeholder(tf.int32, [])

        def batch(rows, dtype):
            values, splits = _batch_constant(rows, dtype)
            return values[splits[index] : splits[index + 1]]

        text = batch([np.array(chunk, object) for chunk in chunks], tf.string)
        word_tensor, row_splits = copy._split_words(text)
        tokenize = list(copy._byte_pair(word_tensor)) + [row_splits]
        pre_tokenize = [tf.size(word_tensor), row_splits]
        cached_only = list(copy._byte_pair(batch(hits, tf.string)))
        missed_words = batch(missed, tf.string)
        merges = tf.cond(
            tf.size(missed_words) > 0,
            lambda: merge_words(
                missed_words,
                copy._byte_ids,
                copy._pair_ranks,
                copy._merged_ids,
                len(copy.vocabulary),
            ),
            lambda: (tf.zeros([0], tf.int32), tf.zeros([0], tf.int32)),
        )
        back = copy.detokenize(
            tf.RaggedTensor.from_row_splits(
                batch(ids, tf.int32), batch(id_splits, tf.int64), validate=False
            )
        )
        detokenize = tf.reduce_sum(tf.strings.length(back))
    feeds = [{index: i} for i in range(len(chunks))]
    runs = {
        "tokenize": tokenize,
        "pre-tokenize": pre_tokenize,
        "cache": cached_only,
        "merges": list(merges),
        "detokenize": detokenize,
    }
    with single_threaded_session(graph) as session:
        got = session.run(tokenize[0], feeds[0])
        if got.tolist() != ids[0].tolist():
            raise RuntimeError(
                "The profiled graph gives other ids than the layer: graph_tokenizer no longer "
                "matches BytePairTokenizer's internals; update it."
            )
        passes = {
            name: lambda fetches=fetches: [session.run(fetches, feed) for feed in feeds]
            for name, fetches in runs.items()
        }
        seconds = interleaved(passes, rounds)
        ms = {name: 1e3 * seconds[name] / len(feeds) for name in runs}
        us, ops, op_time = trace_ops(session, tokenize, feeds[:batches], SCOPES)
        detokenize_us, detokenize_ops, _ = trace_ops(
            session, detokenize, feeds[:batches], ("detokenize",)
        )
    us["detokenize"], ops["detokenize"] = detokenize_us["detokenize"], detokenize_ops["detokenize"]
    all_words = sum(map(len, words))
    return {
        "ms": ms,
        "us": dict(us),
        "ops": dict(ops),
        "top_ops": sorted(op_time.items(), key=lambda item: -item[1])[:6],
        "words": all_words / len(texts),
        "cached": 1 - sum(map(len, missed)) / all_words,
        "missed": sum(map(len, missed)) / len(chunks),
    }


# === Report ===


def library_versions():
    import keras_hub
    import tokenizers

    return f"keras-hub {keras_hub.__version__}, tokenizers {tokenizers.__version__}"


def speed_table(corpora_sizes, speeds):
    """The published table: sentences/s per contender and corpus, and ours / each."""
    header = ("corpus", "sentences", "tokens / sentence", *CONTENDERS)
    header += tuple(f"ours / {name}" for name in CONTENDERS[1:])
    rows = []
    for corpus, per_name in speeds.items():
        count, tokens = corpora_sizes[corpus]
        rows.append(
            (
                corpus,
                f"{count:,}",
                f"{tokens:.1f}",
                *(f"{per_name[name]:,.0f}" for name in CONTENDERS),
                *(f"{per_name['ours'] / per_name[name]:.2f}" for name in CONTENDERS[1:]),
            )
        )
    return markdown_table(header, rows)


def startup_table(startups):
    """Seconds to a new iterator's first batch, per corpus and `tf.data` contender."""
    names = [name for name in CONTENDERS if name in next(iter(startups.values()))]
    rows = [
        (corpus, *(f"{per_name[name]:.2f}" for name in names))
        for corpus, per_name in startups.items()
    ]
    return markdown_table(("corpus", *names), rows)


def profile_rows(result):
    """`[(stage, untraced ms or None, share or None, traced us)]` of a `profile_ours` result.

    Shares are of the sum of the three stages timed apart (pre-tokenization, the cached
    words' lookup and assembly, the merge loop on the others).
    """
    ms, us = result["ms"], result["us"]
    apart = ms["pre-tokenize"] + ms["cache"] + ms["merges"]

    def traced(*scopes):
        return sum(us.get(scope, 0.0) for scope in scopes)

    def stage(name, milliseconds, traced_us):
        return (name, milliseconds, milliseconds / apart, traced_us)

    rows = [
        ("tokenize, one graph", ms["tokenize"], None, traced(*SCOPES, "other")),
        stage("pre-tokenization", ms["pre-tokenize"], traced(*SCOPES[:4])),
    ]
    rows += [
        (f"- {name}", None, None, traced(*scopes)) for name, scopes in PRE_TOKENIZE_SCOPES.items()
    ]
    rows += [
        stage("cache lookup and id assembly", ms["cache"], traced("cache", "assemble")),
        stage("merge while_loop (uncached words)", ms["merges"], traced("merges")),
        ("detokenize (a separate call)", ms["detokenize"], None, us["detokenize"]),
    ]
    return rows


def profile_table(profiles):
    """Stages (rows) by corpus: untraced ms per batch (and share) and traced us."""
    corpora = list(profiles)
    header = ["stage"]
    for corpus in corpora:
        header += [f"{corpus}: ms per batch (share)", f"{corpus}: traced us"]
    per_corpus = [profile_rows(profiles[corpus]) for corpus in corpora]
    rows = []
    for index, first in enumerate(per_corpus[0]):
        cells = [first[0]]
        for stage_rows in per_corpus:
            _, ms, share, us = stage_rows[index]
            text = "" if ms is None else f"{ms:.2f}"
            cells.append(text if share is None else f"{text} ({share:.0%})")
            cells.append(f"{us:,.0f}")
        rows.append(tuple(cells))
    return markdown_table(header, rows)


def result_text(run, speeds, startups, parity, profiles=None):
    """The published markdown: circumstances, parity counts, the table, targets, the profile.

    Args:
        run: dict with `command`, `machine`, `loads` (start, end), `vocabulary` (description),
            `vocabulary_size`, `merges`, `batch_size`, `repeats`, `corpora` (`{corpus:
            (sentences, tokens per sentence)}`).
        speeds: `{corpus: {contender: sentences/s}}`.
        startups: `{corpus: {contender: seconds to a new iterator's first batch}}`.
        parity: `{corpus: {(a, b): mismatches}}`.
        profiles: None, or `{corpus: profile_ours(...)}`.
    """
    total = sum(count for count, _ in run["corpora"].values())

    def mismatches(a, b):
        return sum(counts.get((a, b), 0) for counts in parity.values())

    below = [c for c, s in speeds.items() if s["ours"] / s["keras-hub"] < 1.0]
    target = (
        "met on every corpus"
        if not below
        else f"not met on {', '.join(below)} (see the profile for where the time goes)"
    )
    lines = [
        f"`{run['command']}`: {run['machine']}; load average (1, 5, 15 min) {run['loads'][0]} "
        f"at the start, {run['loads'][1]} at the end.",
        "",
        f"Vocabulary: {run['vocabulary_size']:,} tokens ({run['merges']:,} merges), "
        f"{run['vocabulary']}; special token `{SPECIAL}`. Ids compared first on all "
        f"{total:,} benchmark strings: ours vs tokenizers differ on "
        f"{mismatches('ours', 'tokenizers, Python')}, keras-hub vs tokenizers on "
        f"{mismatches('keras-hub', 'tokenizers, Python')}, ours vs keras-hub on "
        f"{mismatches('ours', 'keras-hub')}.",
        "",
        f"Sentences/s, batches of {run['batch_size']}, from the median of {run['repeats']} "
        "rounds of one pass over the corpus per contender (order flipped every round):",
        "",
        speed_table(run["corpora"], speeds),
        "",
        f"Target ours / keras-hub ≥ 1.00: {target}.",
        "",
        "ours and keras-hub: inside `tf.data` (parallel map, AUTOTUNE, prefetch), each pass "
        "on a new iterator, timed from its first batch to its end (the steady rate; the "
        "start-up is below). keras-hub's cache holds every word after the warm-up pass; ours "
        "caches the words that are vocabulary tokens and merges the others in the graph on "
        "every pass. tokenizers, tf.data: `encode_batch` of each batch through "
        "`tf.numpy_function` in the same pipeline, timed the same way (such a pipeline cannot "
        "be saved into a SavedModel). tokenizers, Python: `encode_batch` over lists of "
        f"{run['batch_size']} `str`, the ids read from each encoding, no tensors.",
        "",
        "Start-up of a new `tf.data` iterator, seconds to its first batch (median; the "
        "pipeline's functions are instantiated then; paid once per epoch):",
        "",
        startup_table(startups),
        "",
    ]
    if profiles:
        lines += [
            "Where our time goes (`--profile`), per batch of the corpus on one thread (a "
            "single-threaded TF1 session): each stage runs alone on its real inputs, untraced, "
            f"median of {run['repeats']} alternating passes over every batch (pre-tokenization "
            "on the text, cache lookup and id assembly on the words the cache holds, the merge "
            "loop on the words it misses; shares are of the sum of those three). The traced "
            "column sums FULL_TRACE op times of the first batches by name "
            "scope, which splits pre-tokenization; tracing slows every op, most in stages of "
            "many small ops such as the merge loop.",
            "",
            profile_table(profiles),
            "",
        ]
        for corpus, ours in profiles.items():
            top = ", ".join(f"{op} {us:,.0f}" for op, us in ours["top_ops"])
            lines.append(
                f"{corpus}: {ours['words']:.1f} words per sentence, {ours['cached']:.0%} of them "
                f"cached (vocabulary tokens); {ours['missed']:,.0f} words per batch go through "
                f"the merge loop. Costliest op types (traced us per batch): {top}."
            )
            lines.append("")
    return "\n".join(lines).rstrip("\n")


# === Command ===


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--vocabulary", default=None, help="vocab.json; default: learn one")
    parser.add_argument("--merges", default=None, help="merges.txt, with --vocabulary")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per contender")
    parser.add_argument("--profile", action="store_true", help="where our time goes")
    parser.add_argument("--profile-batches", type=int, default=20, help="traced batches")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 2,000 tokens, 2,048 strings, 3 rounds"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    for flag in ("vocabulary_size", "batch_size", "repeats", "profile_batches"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be a positive integer")
    if bool(args.vocabulary) != bool(args.merges):
        parser.error("--vocabulary and --merges go together: give both files or neither")
    if args.quick:
        args.vocabulary_size, args.repeats, args.profile_batches = 2000, 3, 4
    return args


def command_line(args):
    parts = ["python -m benchmarks.byte_pair_throughput"]
    if args.quick:
        parts.append("--quick")
    if args.vocabulary:
        parts.append(f"--vocabulary {args.vocabulary} --merges {args.merges}")
    for flag, default in (("vocabulary_size", 8000), ("batch_size", 256), ("repeats", 5)):
        if not args.quick and getattr(args, flag) != default:
            parts.append(f"--{flag.replace('_', '-')} {getattr(args, flag)}")
    if args.profile:
        parts.append("--profile")
    return " ".join(parts)


def main(argv=None):
    args = parse_args(argv)
    if publishing(args):
        check_or_exit([(args.docs, BLOCK)])  # before measuring: missing markers fail at once
    machine = f"{machine_description()}, {library_versions()}"
    load_at_start = load_average()
    print(f"Machine: {machine}")
    print(f"Load average (1, 5, 15 min) at start: {load_at_start}", flush=True)
    corpora = load_corpora(limit=2048 if args.quick else None)
    vocabulary, merges, vocab_source = vocabulary_and_merges(
        args.vocabulary_size, args.vocabulary, args.merges
    )
    print(f"vocabulary: {len(vocabulary):,} tokens, {len(merges):,} merges, {vocab_source}")
    tokenizers_by_name = {
        "ours": build_ours(vocabulary, merges),
        "keras-hub": build_keras_hub(vocabulary, merges),
        "tokenizers": build_hugging_face(vocabulary, merges),
    }

    parity, sizes = {}, {}
    for corpus, texts in corpora.items():
        ids = {
            "ours": dataset_ids(tokenizers_by_name["ours"], texts, args.batch_size),
            "keras-hub": dataset_ids(tokenizers_by_name["keras-hub"], texts, args.batch_size),
            "tokenizers, tf.data": dataset_ids(
                hugging_face_map(tokenizers_by_name["tokenizers"]), texts, args.batch_size
            ),
            "tokenizers, Python": hugging_face_ids(
                tokenizers_by_name["tokenizers"], texts, args.batch_size
            ),
        }
        parity[corpus] = mismatch_counts(ids)
        counts = ", ".join(f"{a} vs {b} {n}" for (a, b), n in parity[corpus].items())
        print(f"{corpus}: {len(texts):,} strings; ids that differ: {counts}", flush=True)
        try:
            require_parity(corpus, texts, ids)
        except ParityError as error:
            print(f"\nABORTED, nothing timed or published: {error}", file=sys.stderr)
            return 1
        sizes[corpus] = (len(texts), sum(map(len, ids["ours"])) / len(texts))

    speeds, startups = measure(tokenizers_by_name, corpora, args.batch_size, args.repeats)
    profiles = None
    if args.profile:
        profiles = {}
        for corpus, texts in corpora.items():
            print(f"profiling {corpus}", flush=True)
            profiles[corpus] = profile_ours(
                tokenizers_by_name["ours"],
                texts,
                args.batch_size,
                args.profile_batches,
                args.repeats,
            )
    command = command_line(args)
    run = {
        "command": command,
        "machine": machine,
        "loads": (load_at_start, load_average()),
        "vocabulary": vocab_source,
        "vocabulary_size": len(vocabulary),
        "merges": len(merges),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "corpora": sizes,
    }
    text = result_text(run, speeds, startups, parity, profiles)
    print()
    print(text)
    if publishing(args):
        replace_block(args.docs, BLOCK, text, source=command)
        print(f"\nWritten to the {BLOCK!r} block of {args.docs}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
