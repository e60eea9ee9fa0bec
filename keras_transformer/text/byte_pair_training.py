"""Learn byte-level BPE merges from a corpus (GPT-2 / Hugging Face `tokenizers` style)."""

import collections
import heapq

import keras
import tensorflow as tf

from keras_transformer.text import byte_pair_files as files
from keras_transformer.text.byte_pair_ops import special_tokens_regex, split_words


def count_words(data, special_tokens=(), add_prefix_space=False, batch_size=1024, verbose=True):
    """Pre-tokenize a corpus as `BytePairTokenizer` does and count its words.

    Args:
        data: a `tf.data.Dataset` of strings (scalars or batches) or an iterable of str/bytes.
        special_tokens: list of str. Split out of the text and not counted.
        add_prefix_space: bool. As the tokenizer's.
        batch_size: int. Strings pre-tokenized per graph call.
        verbose: bool. Show a progress bar.

    Returns:
        `collections.Counter` from word (bytes) to count.
    """
    special_tokens = list(special_tokens)
    regex = special_tokens_regex(special_tokens) if special_tokens else None
    table = None
    if special_tokens:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([t.encode() for t in special_tokens]),
                tf.range(len(special_tokens), dtype=tf.int32),
            ),
            default_value=-1,
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def unique_words(text):
        words, _ = split_words(text, regex, table, add_prefix_space)
        unique, _, counts = tf.unique_with_counts(words)
        return unique, counts

    if isinstance(data, tf.data.Dataset):
        if data.element_spec.dtype != tf.string:
            raise ValueError(
                "`data` must hold strings (e.g. `ds.map(lambda text, label: text)`). "
                f"Received element_spec={data.element_spec}"
            )
        if data.element_spec.shape.rank == 0:
            data = data.batch(batch_size)
        batches = (batch for batch in data)
    else:
        if isinstance(data, (str, bytes)):
            raise ValueError(
                "`data` must be a list (or iterable) of strings or a tf.data.Dataset, not one "
                "string. Split the corpus into lines or documents first."
            )
        batches = _batches(data, batch_size)
    counts = collections.Counter()
    progress = (
        keras.utils.Progbar(None, unit_name="batch", stateful_metrics=["words"])
        if verbose
        else None
    )
    for index, batch in enumerate(batches):
        unique, number = unique_words(batch)
        counts.update(dict(zip(unique.numpy().tolist(), number.numpy().tolist(), strict=True)))
        if progress is not None:
            progress.update(index + 1, [("words", len(counts))])
    for token in special_tokens:
        counts.pop(token.encode(), None)
    return counts


def _batches(texts, batch_size):
    batch = []
    for text in texts:
        if not isinstance(text, (str, bytes)):
            raise ValueError(f"`data` must hold str or bytes. Received: {text!r:.100}")
        batch.append(text.encode("utf-8") if isinstance(text, str) else text)
        if len(batch) == batch_size:
            yield tf.constant(batch, tf.string)
            batch = []
    if batch:
        yield tf.constant(batch, tf.string)


def byte_pair_encode(symbols, ranks, merged):
    """Merge a list of symbol ids by rank, as `tokenizers` does (lowest rank, leftmost first).

    Args:
        symbols: list of int.
        ranks: dict `(left, right) -> rank`.
        merged: dict `(left, right) -> merged id`.

    Returns:
        list of int.
    """
    symbols = list(symbols)
    while len(symbols) > 1:
        best = None
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        symbols[i : i + 2] = [merged[(symbols[i], symbols[i + 1])]]
    return symbols


def _pairs(symbols):
    return collections.Counter(zip(symbols, symbols[1:], strict=False))


def train_byte_pair_vocabulary(
    data,
    vocabulary_size,
    special_tokens=(),
    min_frequency=2,
    add_prefix_space=False,
    batch_size=1024,
    verbose=True,
):
    """Learn a byte-level BPE vocabulary and merges from text.

    The classic BPE trainer over the words of GPT-2's pre-tokenization: start from the 256 byte
    symbols, then repeatedly merge the most frequent adjacent pair of symbols (counted over
    all words, each weighted by its count) into a new token, until the vocabulary has
    `vocabulary_size` tokens or no pair occurs `min_frequency` times. Ties go to the pair whose
    ids are smallest (left id first), and ids are laid out as Hugging Face `tokenizers` does:
    special tokens, then the 256 byte symbols by code point, then merged tokens in order. If a
    merge makes a token another pair already made, the token keeps its id and the merge is
    listed too; a word in which such a token then completes an earlier merge is segmented
    again, so training segments every word as the tokenizer will.

    Args:
        data: a `tf.data.Dataset` of strings or an iterable of str/bytes (lines, documents).
        vocabulary_size: int. The size of the vocabulary, special tokens and the 256 byte
            symbols included.
        special_tokens: list of str. Placed first, e.g. `["<|endoftext|>"]`; never merged and
            not counted where they occur in `data`.
        min_frequency: int. Stop when the most frequent pair occurs fewer times. Defaults to
            `2` (as `tokenizers`' `ByteLevelBPETokenizer.train`).
        add_prefix_space: bool. As the tokenizer that will use the result.
        batch_size: int. Strings pre-tokenized per graph call.
        verbose: bool. Show progress (words counted, merges learned).

    Returns:
        A tuple `(vocabulary, merges)`: list of str in id order and list of `"a b"` strings,
        the arguments of `BytePairTokenizer`.

    Example:
    >>> vocab, merges = train_byte_pair_vocabulary(["the cat", "the hat"], 260)
    >>> merges
    ['a t', 'h e', 't he']
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    base = len(special_tokens) + len(files.BYTE_SYMBOLS)
    if not isinstance(vocabulary_size, int) or vocabulary_size < base:
        raise ValueError(
            f"`vocabulary_size` must be an int of at least {base} (the {len(special_tokens)} "
            f"special tokens and the 256 byte symbols). Received: "
            f"vocabulary_size={vocabulary_size!r}"
        )
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"`min_frequency` must be a positive int. Received: {min_frequency!r}")
    counts = count_words(data, special_tokens, add_prefix_space, batch_size, verbose)
    if not counts:
        raise ValueError("`data` holds no text: pass a non-empty corpus.")

    vocabulary = special_tokens + sorted(files.BYTE_SYMBOLS)
    token_to_id = {token: i for i, token in enumerate(vocabulary)}
    if len(token_to_id) != len(vocabulary):
        raise ValueError("A special token is also a byte symbol; rename it.")
    byte_id = [token_to_id[symbol] for symbol in files.BYTE_SYMBOLS]
    word_list = sorted(counts)
    weights = [counts[w] for w in word_list]
    words = [[byte_id[b] for b in w] for w in word_list]

    pair_counts = collections.Counter()
    where = collections.defaultdict(set)
    for index, symbols in enumerate(words):
        for pair, number in _pairs(symbols).items():
            pair_counts[pair] += number * weights[index]
            where[pair].add(index)
    heap = [(-number, pair) for pair, number in pair_counts.items()]
    heapq.heapify(heap)

    merges, ranks, merged = [], {}, {}
    progress = (
        keras.utils.Progbar(
            vocabulary_size - len(vocabulary), unit_name="merge", stateful_metrics=["count"]
        )
        if verbose
        else None
    )
    while len(vocabulary) < vocabulary_size and heap:
        negative, pair = heapq.heappop(heap)
        number = pair_counts.get(pair, 0)
        if -negative != number:  # Stale entry: counts only fall, so re-queue the true count.
            if number > 0:
                heapq.heappush(heap, (-number, pair))
            continue
        if number < min_frequency:
            break
        left, right = pair
        token = vocabulary[left] + vocabulary[right]
        new_id = token_to_id.get(token)
        if new_id is None:
            new_id = len(vocabulary)
            vocabulary.append(token)
            token_to_id[token] = new_id
        ranks[pair] = len(merges)
        merged[pair] = new_id
        merges.append(f"{vocabulary[left]} {vocabulary[right]}")
        changed = {}
        for index in sorted(where.pop(pair, ())):
            symbols = words[index]
            before = _pairs(symbols)
            if pair not in before:
                continue
            after = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    after.append(new_id)
                    i += 2
                else:
                    after.append(symbols[i])
                    i += 1
            if any(p in ranks for p in zip(after, after[1:], strict=False)):
                # A token made again completes an earlier merge: segment as the tokenizer.
                after = byte_pair_encode([byte_id[b] for b in word_list[index]], ranks, merged)
            words[index] = after
            now = _pairs(after)
            for p in before.keys() | now.keys():
                delta = (now.get(p, 0) - before.get(p, 0)) * weights[index]
                if delta:
                    pair_counts[p] += delta
                    changed[p] = True
                    if now.get(p, 0) > 0:
                        where[p].add(index)
        for p in changed:
            if pair_counts[p] > 0 and p not in ranks:
                heapq.heappush(heap, (-pair_counts[p], p))
            elif pair_counts[p] <= 0:
                del pair_counts[p]
        if progress is not None:
            progress.update(len(vocabulary) - base, [("count", number)])
    return vocabulary, merges
