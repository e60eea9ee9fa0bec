"""A GPT-2-style byte-level BPE tokenizer layer built only from core TensorFlow ops."""

import os

import keras
import tensorflow as tf

from keras_transformer.text import byte_pair_files as files
from keras_transformer.text.byte_pair_ops import (
    INF_RANK,
    merge_words,
    special_tokens_regex,
    split_words,
)
from keras_transformer.text.string_ops import join_rows, to_ragged_ids, to_string_tensor
from keras_transformer.text.vocabulary_tokenizer import VocabularyTokenizer


@keras.saving.register_keras_serializable(package="keras_transformer")
class BytePairTokenizer(VocabularyTokenizer):
    """GPT-2's byte-level BPE whose graph holds only core TensorFlow ops.

    Gives the ids of Hugging Face `tokenizers` (a `BPE` model with the `ByteLevel`
    pre-tokenizer, as GPT-2's) on the same vocabulary and merges, but a SavedModel that holds
    it loads and runs with stock TensorFlow (and so stock TF Serving): no tensorflow-text, no
    `py_function`. The same layer tokenizes inside `tf.data` and inside an exported model.

    Each string goes through these steps:
    1. Special tokens (e.g. `"<|endoftext|>"`) are split out of the text (leftmost, longest
       first) and become one id each; the pieces between them go on alone.
    2. If `add_prefix_space`, a non-empty piece that does not start with a space gets one.
    3. GPT-2's pre-tokenization splits a piece into words: contractions (`'s 't 're 've 'm
       'll 'd`), letters, numbers and other symbols (each optionally after one space), and
       runs of whitespace, the last whitespace character before a non-space starting the next
       word (`"a  b"` -> `"a"`, `" "`, `" b"`). Bytes that are not valid UTF-8 split as U+FFFD
       would, and stay the bytes they are.
    4. Each word's bytes are merged by rank, as `tokenizers` does: the adjacent pair of lowest
       rank first, the leftmost if it occurs twice, until no pair merges. The words that are
       vocabulary tokens are cached (built at construction by the same merges), so they cost
       one hash lookup; the others run through a `tf.while_loop` bounded by their length.

    Every byte has a symbol, so any byte string tokenizes and `detokenize` gives back exactly
    the bytes that went in.

    Args:
        vocabulary: list of str, dict or str. The tokens in id order, a dict token -> id, or
            a `vocab.json` path. Must hold the 256 byte symbols.
        merges: list of str or str. The merges, `"a b"` each, lowest rank first, or a
            `merges.txt` path. As in `tokenizers`, a merge listed twice takes its last rank.
        sequence_length: int or None. If set, outputs are dense, truncated or padded with 0 to
            this length. Defaults to `None` (ragged outputs).
        special_tokens: list of str. Tokens of the vocabulary matched in the raw text and kept
            whole, such as `"<|endoftext|>"`. Defaults to `()` (none: such text is split like
            any other).
        add_prefix_space: bool. Add a space in front of text that does not start with one, so
            a first word tokenizes like any other (RoBERTa). Defaults to `False` (GPT-2).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        inputs: string tensor of shape (B,) or a scalar string; a list of Python strings works
            too.

    Returns:
        int32 `tf.RaggedTensor` of shape (B, (T)) for a batch, or a dense (B, sequence_length)
        `tf.Tensor` if `sequence_length` is set; for a scalar input, a 1-D dense tensor.

    Example:
    >>> tokenizer = BytePairTokenizer("gpt2/vocab.json", "gpt2/merges.txt")  # doctest: +SKIP
    >>> tokenizer(["Hello world"]).to_list()  # doctest: +SKIP
    [[15496, 995]]
    >>> tokenizer.detokenize([[15496, 995]]).numpy()  # doctest: +SKIP
    array([b'Hello world'], dtype=object)
    """

    def __init__(
        self,
        vocabulary,
        merges,
        sequence_length=None,
        special_tokens=(),
        add_prefix_space=False,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(dtype="int32", **kwargs)
        vocab_source, merges_source, merge_lines = "vocabulary", "merges", None
        if isinstance(vocabulary, (str, os.PathLike)):
            vocab_source = os.fspath(vocabulary)
            vocabulary = files.load_vocabulary_json(vocabulary)
        elif isinstance(vocabulary, dict):
            vocabulary = files.vocabulary_from_ids(vocabulary)
        if isinstance(merges, (str, os.PathLike)):
            merges_source = os.fspath(merges)
            merges, merge_lines = files.load_merges_txt(merges)
        if isinstance(special_tokens, str):
            special_tokens = [special_tokens]
        special_tokens = list(dict.fromkeys(special_tokens or ()))
        token_to_id = files.check_vocabulary(vocabulary, special_tokens, source=vocab_source)
        pairs = files.check_merges(merges, token_to_id, source=merges_source, lines=merge_lines)
        if sequence_length is not None and (
            not isinstance(sequence_length, int) or sequence_length < 1
        ):
            raise ValueError(
                "`sequence_length` must be a positive int or None. "
                f"Received: sequence_length={sequence_length!r}"
            )
        # Keras would wrap (and walk) these large lists and dicts to track weights in them:
        # they hold only strings, so they are set past its tracking.
        object.__setattr__(self, "vocabulary", list(vocabulary))
        object.__setattr__(self, "merges", [f"{a} {b}" for a, b in pairs])
        object.__setattr__(self, "_token_to_id", token_to_id)
        self.sequence_length = sequence_length
        self.special_tokens = special_tokens
        self.add_prefix_space = bool(add_prefix_space)

        size = len(self.vocabulary)
        # As `tokenizers`: a pair listed twice takes the rank of its last line.
        ranks = {}
        for rank, (a, b) in enumerate(pairs):
            ranks[token_to_id[a] * size + token_to_id[b]] = rank
        # A table cannot be empty: key -1 (no pair) pads it.
        self._pair_ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([-1, *ranks], tf.int64),
                tf.constant([INF_RANK, *ranks.values()], tf.int32),
            ),
            default_value=INF_RANK,
        )
        # Rank -> merged token; one spare entry so that an empty list can still be gathered.
        self._merged_ids = tf.constant([token_to_id[a + b] for a, b in pairs] + [0], tf.int32)
        self._byte_ids = tf.constant([token_to_id[s] for s in files.BYTE_SYMBOLS], tf.int32)
        self._special_regex = special_tokens_regex(special_tokens) if special_tokens else None
        self._special_table = None
        if special_tokens:
            self._special_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant([t.encode() for t in special_tokens]),
                    tf.constant([token_to_id[t] for t in special_tokens], tf.int32),
                ),
                default_value=-1,
            )
        # What each id detokenizes to: special tokens as written, byte-level tokens as their
        # bytes, any other token (not made by merges) as its UTF-8.
        strings = []
        for token in self.vocabulary:
            raw = None if token in special_tokens else files.symbols_to_bytes(token)
            strings.append(raw if raw is not None else token.encode("utf-8"))
        self._token_bytes = tf.constant(strings)
        self._build_cache(strings)
        self._eager_tokenize = None

    def _build_cache(self, strings):
        """A table from each vocabulary token's bytes (and each special token) to its ids."""
        special = set(self.special_tokens)
        words = [
            raw
            for token, raw in zip(self.vocabulary, strings, strict=True)
            if token not in special and files.symbols_to_bytes(token) is not None
        ]
        entries = {}
        with tf.init_scope():
            # Built eagerly by the graph's own merges; a layer made inside a TF1 graph (no
            # eager execution) caches its special tokens only.
            if tf.executing_eagerly():
                ids, counts = merge_words(
                    tf.constant(words, tf.string),
                    self._byte_ids,
                    self._pair_ranks,
                    self._merged_ids,
                    len(self.vocabulary),
                )
                ids, counts = ids.numpy().tolist(), counts.numpy().tolist()
                start = 0
                for word, count in zip(words, counts, strict=True):
                    entries[word] = ids[start : start + count]
                    start += count
        for token in self.special_tokens:
            entries[token.encode()] = [self._token_to_id[token]]
        flat, starts, lengths = [], [], []
        for word_ids in entries.values():
            starts.append(len(flat))
            lengths.append(len(word_ids))
            flat.extend(word_ids)
        # The empty string (never a word) pads the table, which cannot be empty.
        self._cache_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([b"", *entries], tf.string),
                tf.range(-1, len(entries), dtype=tf.int32),
            ),
            default_value=-1,
        )
        self._cache_ids = tf.constant(flat, tf.int32)
        self._cache_starts = tf.constant(starts, tf.int32)
        self._cache_lengths = tf.constant(lengths, tf.int32)

    # ----------------------------------------------------------------------------------------
    # Files.

    @classmethod
    def from_tokenizer_json(cls, path, **kwargs):
        """Build the tokenizer of a Hugging Face `tokenizer.json` (ByteLevel BPE kind).

        Its added tokens become `special_tokens`; see `byte_pair_files.load_tokenizer_json`.

        Args:
            path: str. The `tokenizer.json` file.
            **kwargs: more constructor arguments (`sequence_length`, `name`).
        """
        return cls(**files.load_tokenizer_json(path), **kwargs)

    def save_files(self, folder):
        """Write `vocab.json` and `merges.txt` into `folder`; returns their paths."""
        return files.save_byte_pair_files(folder, self.vocabulary, self.merges)

    def save_tokenizer_json(self, path):
        """Write a Hugging Face `tokenizer.json` that `tokenizers.Tokenizer.from_file` loads."""
        return files.save_tokenizer_json(
            path, self.vocabulary, self.merges, self.special_tokens, self.add_prefix_space
        )

    # ----------------------------------------------------------------------------------------
    # Tokenization.

    def call(self, inputs):
        inputs = to_string_tensor(inputs, "BytePairTokenizer")
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        if tf.executing_eagerly():
            # One graph call instead of running the merge loop op by op.
            if self._eager_tokenize is None:
                self._eager_tokenize = tf.function(
                    self._tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
                )
            ids, token_splits = self._eager_tokenize(inputs)
        else:
            ids, token_splits = self._tokenize(inputs)
        tokens = tf.RaggedTensor.from_row_splits(ids, token_splits, validate=False)  # (B, (T))
        if self.sequence_length:
            tokens = tokens.to_tensor(shape=[None, self.sequence_length])
        if unbatched:
            tokens = tokens[0]
            if not self.sequence_length:
                tokens = tf.ensure_shape(tokens, [None])
        return tokens

    def _tokenize(self, inputs):
        """Ids (T,) and int64 row splits (B + 1,) of a batch of strings (B,)."""
        words, row_splits = self._split_words(inputs)  # (N,), (B + 1,)
        ids, word_splits = self._byte_pair(words)  # (T,), (N + 1,)
        return ids, tf.cast(tf.gather(word_splits, row_splits), tf.int64)

    def tokenize(self, inputs):
        """Tokenize `inputs`; the same as calling the layer."""
        return self(inputs)

    def split_words(self, inputs):
        """Pre-tokenize a batch of strings into words (steps 1-3 above), as bytes.

        Args:
            inputs: string tensor of shape (B,).

        Returns:
            string `tf.RaggedTensor` of shape (B, (W)).
        """
        words, row_splits = self._split_words(to_string_tensor(inputs, "BytePairTokenizer"))
        return tf.RaggedTensor.from_row_splits(words, tf.cast(row_splits, tf.int64), validate=False)

    def _split_words(self, inputs):
        return split_words(
            inputs,
            special_regex=self._special_regex,
            special_table=self._special_table,
            add_prefix_space=self.add_prefix_space,
        )

    def _byte_pair(self, words):
        """Ids of a flat batch of words: cached words by lookup, the others by `merge_words`.

        Returns:
            A tuple `(ids, splits)`: int32 `ids` (T,) of all words in order, and int32 `splits`
            (N + 1,) such that word i holds `ids[splits[i]:splits[i + 1]]`.
        """
        with tf.name_scope("cache"):
            row = self._cache_table.lookup(words)  # (N,)
            hit = row >= 0
            hit_index = tf.cast(tf.where(hit)[:, 0], tf.int32)
            miss_index = tf.cast(tf.where(~hit)[:, 0], tf.int32)
            hit_rows = tf.gather(row, hit_index)
            hit_counts = tf.gather(self._cache_lengths, hit_rows)
        with tf.name_scope("merges"):
            merged_ids, merged_counts = tf.cond(
                tf.size(miss_index) > 0,
                lambda: merge_words(
                    tf.gather(words, miss_index),
                    self._byte_ids,
                    self._pair_ranks,
                    self._merged_ids,
                    len(self.vocabulary),
                ),
                lambda: (tf.zeros([0], tf.int32), tf.zeros_like(miss_index)),
            )
        with tf.name_scope("assemble"):
            counts = tf.dynamic_stitch([hit_index, miss_index], [hit_counts, merged_counts])
            ends = tf.cumsum(counts)
            starts = ends - counts
            cached = tf.gather(
                self._cache_ids, _ranges(tf.gather(self._cache_starts, hit_rows), hit_counts)
            )
            ids = tf.dynamic_stitch(
                [
                    _ranges(tf.gather(starts, hit_index), hit_counts),
                    _ranges(tf.gather(starts, miss_index), merged_counts),
                ],
                [cached, merged_ids],
            )
            return ids, tf.concat([[0], ends], axis=0)

    # ----------------------------------------------------------------------------------------
    # Detokenization.

    def detokenize(self, inputs):
        """Turn ids back into the bytes they stand for (special tokens as written).

        `detokenize(tokenize(s)) == s` for every byte string `s`, valid UTF-8 or not.

        Args:
            inputs: int ids, a (B, (T)) ragged or (B, T) dense tensor, nested lists, or a 1-D
                sequence of ids.

        Returns:
            string tensor of shape (B,), or a scalar string for 1-D inputs.
        """
        ids, unbatched = to_ragged_ids(inputs)
        with tf.name_scope("detokenize"):
            pieces = tf.gather(self._token_bytes, ids.values)
            text = join_rows(pieces, tf.cast(ids.row_splits, tf.int32))
        return text[0] if unbatched else text

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "merges": list(self.merges),
                "special_tokens": list(self.special_tokens),
                "add_prefix_space": self.add_prefix_space,
            }
        )
        return config


def _ranges(starts, lengths):
    """The concatenation of `range(s, s + n)` for each start s and length n (int32)."""
    _, values = tf.raw_ops.RaggedRange(
        starts=starts, limits=starts + lengths, deltas=tf.ones_like(starts), Tsplits=tf.int32
    )
    return values
