"""A WordPiece tokenizer layer built only from core TensorFlow ops (no tensorflow-text)."""

import keras
import tensorflow as tf

from keras_transformer.text.normalization import (
    CharacterMap,
    UnicodeNormalizer,
    word_character_map,
)
from keras_transformer.text.string_ops import (
    join_rows,
    row_ids,
    split_whitespace,
    to_ragged_ids,
    to_string_tensor,
)
from keras_transformer.text.unicode_tables import ranges_to_regex_class
from keras_transformer.text.vocabulary import UNK_TOKEN, load_vocabulary, validate_vocabulary
from keras_transformer.text.vocabulary_tokenizer import VocabularyTokenizer
from keras_transformer.text.wordpiece_search import PiecePrefixTable, greedy_word_pieces

# The pre-tokenizer regexes of keras-hub's WordPieceTokenizer (RE2 syntax, as in
# `keras_hub/src/tokenizers/word_piece_tokenizer.py`). RE2's `\s` is ASCII whitespace only.
WHITESPACE_REGEX = r"\s|\p{Cc}|\p{Cf}"
PUNCTUATION_REGEX = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
# The code points of CJK_REGEX, and of the ASCII symbols in PUNCTUATION_REGEX.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_ASCII_SYMBOL_RANGES = ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E))
CJK_REGEX = "|".join(f"[\\x{{{low:X}}}-\\x{{{high:X}}}]" for low, high in CJK_RANGES)
# Printable ASCII and ASCII whitespace: text that needs no Unicode normalization.
_CLEAN_ASCII_REGEX = r"[\t\n\x0b\f\r -~]*"
# The delimiters of WHITESPACE_REGEX that `tf.strings.split` does not split on: control
# characters other than ASCII whitespace (\p{Cc} is U+0000-001F and U+007F-009F) and \p{Cf}.
_OTHER_WHITESPACE_REGEX = r"[\x00-\x08\x0e-\x1f\x7f-\x{9f}]|\p{Cf}"
# tensorflow-text's FastWordpieceTokenizer maps words longer than this many bytes to the
# unknown token; so do we.
MAX_BYTES_PER_WORD = 100
REPLACEMENT_CHARACTER = 0xFFFD


@keras.saving.register_keras_serializable(package="keras_transformer")
class WordPieceTokenizer(VocabularyTokenizer):
    """WordPiece tokenizer whose graph holds only core TensorFlow ops.

    Gives the same ids as keras-hub's `WordPieceTokenizer` (tensorflow-text's
    `FastWordpieceTokenizer`) on the same vocabulary, but a SavedModel that holds it loads and
    runs with stock TensorFlow (and so stock TF Serving): no tensorflow-text, no `py_function`.
    The same layer tokenizes inside `tf.data` during training and inside the exported model.

    Each string goes through these steps:
    1. Bytes that are not valid UTF-8 are replaced with U+FFFD (REPLACEMENT CHARACTER), so
       stray bytes never fail silently: the word holding them becomes `[UNK]` unless the
       vocabulary has a token for U+FFFD.
    2. If `strip_accents`: NFD, then every nonspacing mark (`\\p{Mn}`) is removed.
    3. Split on whitespace and control characters (dropped), and around punctuation (ASCII
       symbols and Unicode `P*`) and CJK ideographs (kept as one-character words).
    4. If `lowercase`: each word is case folded with NFKC_Casefold (as tensorflow-text's
       `case_fold_utf8`), e.g. `"Straße"` -> `"strasse"`, `"ﬁ"` -> `"fi"`.
    5. Greedy longest-match-first WordPiece: a word in the vocabulary is one id (one hash
       lookup: the common case); other words are split into the longest vocabulary prefix and
       then the longest `"##"`-prefixed continuations, all missed words of the batch at once.
       A word that cannot be covered, or longer than `max_bytes_per_word` bytes, is `oov_token`.

    Unicode tables come from Python's `unicodedata` (Unicode 14.0 on Python 3.11); characters
    added in later Unicode versions pass through unchanged. One deliberate difference from
    keras-hub: its tensorflow-text ops drop everything after a NUL byte; here NUL, like every
    control character, separates words.

    Args:
        vocabulary: str or list of str. A `vocab.txt` path (one token per line, as BERT's) or
            the list of tokens; the id of a token is its index. Must hold `oov_token`.
        sequence_length: int or None. If set, outputs are dense, truncated or padded with 0 to
            this length. Defaults to `None` (ragged outputs).
        lowercase: bool. Case fold each word (NFKC_Casefold). Defaults to `True` (BERT uncased).
        strip_accents: bool. Remove accents (NFD, then drop nonspacing marks). Defaults to
            `True` (BERT uncased).
        split_on_cjk: bool. Make each CJK ideograph its own word. Defaults to `True`.
        suffix_indicator: str. Prefix of continuation pieces. Defaults to `"##"`.
        oov_token: str. The token for words that cannot be tokenized. Defaults to `"[UNK]"`.
        max_bytes_per_word: int. Longer words (in UTF-8 bytes) become `oov_token`. Defaults to
            `100`, as tensorflow-text.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        inputs: string tensor of shape (B,) or a scalar string; a list of Python strings works
            too.

    Returns:
        int32 `tf.RaggedTensor` of shape (B, (T)) for a batch, or a dense (B, sequence_length)
        `tf.Tensor` if `sequence_length` is set; for a scalar input, a 1-D dense tensor.

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "the", "qu", "##ick", "fox", "."]
    >>> tokenizer = WordPieceTokenizer(vocab)
    >>> tokenizer(["The quick fox."]).to_list()
    [[2, 3, 4, 5, 6]]
    >>> tokenizer.detokenize([[2, 3, 4, 5, 6]]).numpy()
    array([b'the quick fox .'], dtype=object)
    """

    def __init__(
        self,
        vocabulary,
        sequence_length=None,
        lowercase=True,
        strip_accents=True,
        split_on_cjk=True,
        suffix_indicator="##",
        oov_token=UNK_TOKEN,
        max_bytes_per_word=MAX_BYTES_PER_WORD,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(dtype="int32", **kwargs)
        if isinstance(vocabulary, str):
            vocabulary = load_vocabulary(vocabulary, required_tokens=(oov_token,))
        else:
            vocabulary = validate_vocabulary(vocabulary, required_tokens=(oov_token,))
        for token in vocabulary:
            if "\x00" in token:
                raise ValueError(
                    f"Vocabulary token {token!r} holds a NUL character, which no word can hold. "
                    "Remove it from the vocabulary."
                )
        if sequence_length is not None and (
            not isinstance(sequence_length, int) or sequence_length < 1
        ):
            raise ValueError(
                "`sequence_length` must be a positive int or None. "
                f"Received: sequence_length={sequence_length!r}"
            )
        if not suffix_indicator:
            raise ValueError(
                "`suffix_indicator` must be a non-empty string such as '##'. "
                f"Received: suffix_indicator={suffix_indicator!r}"
            )
        if not isinstance(max_bytes_per_word, int) or max_bytes_per_word < 1:
            raise ValueError(
                "`max_bytes_per_word` must be a positive int. "
                f"Received: max_bytes_per_word={max_bytes_per_word!r}"
            )
        self.vocabulary = vocabulary
        self.sequence_length = sequence_length
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.split_on_cjk = split_on_cjk
        self.suffix_indicator = suffix_indicator
        self.oov_token = oov_token
        self.max_bytes_per_word = max_bytes_per_word

        self._token_to_id = {token: i for i, token in enumerate(vocabulary)}
        self.oov_token_id = self._token_to_id[oov_token]
        self._keep_pattern = PUNCTUATION_REGEX + ("|" + CJK_REGEX if split_on_cjk else "")
        # Tables are built here, eagerly, so that `tf.data` and `tf.function` capture them.
        self._normalizer = (
            UnicodeNormalizer(name="unicode_normalizer") if lowercase or strip_accents else None
        )
        kept = _ASCII_SYMBOL_RANGES + (CJK_RANGES if split_on_cjk else ())
        mapping, covered = word_character_map(strip_accents, lowercase, kept)
        self._character_map = CharacterMap(mapping, name="character_map")
        self._covered_pattern = ranges_to_regex_class(covered) + "*"
        self._vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int32)
            ),
            default_value=-1,
        )
        self._vocab_tensor = tf.constant(vocabulary)
        self._prefix_table = PiecePrefixTable(
            vocabulary, suffix_indicator, max_bytes_per_word, name="piece_prefix_table"
        )

    # ----------------------------------------------------------------------------------------
    # Vocabulary accessors.

    # ----------------------------------------------------------------------------------------
    # Tokenization.

    def call(self, inputs):
        inputs = to_string_tensor(inputs, "WordPieceTokenizer")
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        words, _, row_splits = self._split_words(inputs)  # (N,), (B + 1,)
        ids, word_splits = self._word_piece(words)  # (T,), (N + 1,)
        token_splits = tf.cast(tf.gather(word_splits, row_splits), tf.int64)
        tokens = tf.RaggedTensor.from_row_splits(ids, token_splits, validate=False)  # (B, (T))
        if self.sequence_length:
            tokens = tokens.to_tensor(shape=[None, self.sequence_length])
        if unbatched:
            tokens = tokens[0]
            if not self.sequence_length:
                tokens = tf.ensure_shape(tokens, [None])
        return tokens

    def tokenize(self, inputs):
        """Tokenize `inputs`; the same as calling the layer."""
        return self(inputs)

    def split_words(self, inputs):
        """Normalize and pre-tokenize a batch of strings into words (steps 1-4 above).

        Args:
            inputs: string tensor of shape (B,).

        Returns:
            string `tf.RaggedTensor` of shape (B, (W)).
        """
        words, _, row_splits = self._split_words(to_string_tensor(inputs, "WordPieceTokenizer"))
        return tf.RaggedTensor.from_row_splits(words, tf.cast(row_splits, tf.int64), validate=False)

    def _split_words(self, inputs):
        # The name scopes group the ops by stage for profiles (benchmarks/).
        with tf.name_scope("unicode") as unicode_scope:
            # Most text is printable ASCII: it skips the Unicode steps (one regex scan decides).
            clean = tf.strings.regex_full_match(inputs, _CLEAN_ASCII_REGEX)
            text = tf.strings.lower(inputs) if self.lowercase else inputs  # ASCII A-Z.
            # The others are normalized in one lookup per character (`word_character_map`:
            # control characters to spaces, accents stripped, case folded), wherever the table
            # covers every character of the string: nearly all text.
            unclean = tf.where(~clean)[:, 0:1]  # (K, 1)
            unclean_text = tf.gather_nd(text, unclean)
            covered = tf.strings.regex_full_match(unclean_text, self._covered_pattern)
            mapped = tf.where(covered, self._character_map(unclean_text), "")
            exact = tf.gather_nd(unclean, tf.where(~covered))  # (E, 1)
            fast_text = tf.tensor_scatter_nd_update(text, unclean, mapped)
        with tf.name_scope("split"):
            words, word_row, row_splits = self._split(fast_text)
        with tf.name_scope(unicode_scope):
            # The strings it does not cover (mapped to "" above) take the exact path.
            return tf.cond(
                tf.size(exact) > 0,
                lambda: self._add_exact_words(text, exact, words, word_row),
                lambda: (words, word_row, row_splits),
            )

    def _split(self, text):
        """Surround kept delimiters (punctuation, CJK) with spaces, split on ASCII whitespace."""
        return split_whitespace(tf.strings.regex_replace(text, self._keep_pattern, r" \0 "))

    def _add_exact_words(self, text, exact, words, word_row):
        """Adds, in order, the words of the strings `text[exact]` normalized the exact way.

        Accents are stripped on the whole string (NFD), which the table cannot do where spacing
        marks reorder, and words are case folded after splitting (NFKC_Casefold composes).

        Returns:
            `(words, word_row, row_splits)` of all strings.
        """
        # Ungated normalization: no `tf.cond` inside this one (tf.data instantiates every
        # function of the graph for each new iterator).
        exact_text = self._normalize_exact(tf.gather_nd(text, exact), gated=False)
        exact_words, exact_row, _ = self._split(exact_text)
        if self.lowercase:
            exact_words = self._normalizer.case_fold(exact_words, gated=False)
        rows = tf.concat([word_row, tf.gather(tf.cast(exact[:, 0], tf.int32), exact_row)], 0)
        order = tf.argsort(rows, stable=True)
        rows = tf.gather(rows, order)
        counts = tf.math.bincount(rows, minlength=tf.size(text), dtype=tf.int32)
        row_splits = tf.concat([[0], tf.cumsum(counts)], axis=0)
        return tf.gather(tf.concat([words, exact_words], 0), order), rows, row_splits

    def _normalize_exact(self, text, gated=True):
        """Steps 1-2 and control characters, for strings that are not printable ASCII."""
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER
        )
        text = tf.strings.regex_replace(text, _OTHER_WHITESPACE_REGEX, " ")
        if self.strip_accents:
            text = self._normalizer.strip_accents(text, gated=gated)
        return text

    def _word_piece(self, words):
        """WordPiece over a flat batch of words (step 5 above).

        Args:
            words: string tensor of shape (N,).

        Returns:
            A tuple `(ids, splits)`: int32 `ids` (T,) of all words in order, and int32 `splits`
            (N + 1,) such that word i holds `ids[splits[i]:splits[i + 1]]`.
        """
        with tf.name_scope("word_lookup"):
            num_bytes = tf.strings.length(words)  # (N,)
            too_long = num_bytes > self.max_bytes_per_word
            whole_ids = self._vocab_table.lookup(words)  # One lookup serves most words.
            missed = (whole_ids < 0) & ~too_long & (num_bytes > 0)
            single = tf.where(too_long | (whole_ids < 0), self.oov_token_id, whole_ids)
            missed_index = tf.cast(tf.where(missed)[:, 0], tf.int32)  # (M,)
        with tf.name_scope("piece_search"):
            # No `tf.cond` around it: with no missed words every op runs on empty tensors,
            # and a cond's switch and merge ops cost more than that inside `tf.data`.
            piece_ids, piece_word, piece_rank, piece_counts = greedy_word_pieces(
                tf.gather(words, missed_index), self._prefix_table, self.oov_token_id
            )
        with tf.name_scope("assemble"):
            # Case folding can delete every character of a word: empty words give no token.
            counts = tf.cast(num_bytes > 0, tf.int32)
            counts = tf.dynamic_stitch(
                [tf.range(tf.size(counts)), missed_index], [counts, piece_counts]
            )
            ends = tf.cumsum(counts)
            starts = ends - counts
            single_index = tf.cast(tf.where(tf.equal(counts, 1) & ~missed)[:, 0], tf.int32)
            ids = tf.dynamic_stitch(
                [
                    tf.gather(starts, single_index),
                    tf.gather(starts, tf.gather(missed_index, piece_word)) + piece_rank,
                ],
                [tf.gather(single, single_index), piece_ids],
            )
            return ids, tf.concat([[0], ends], axis=0)

    # ----------------------------------------------------------------------------------------
    # Detokenization.

    def detokenize(self, inputs):
        """Turn ids back into text: pieces joined, words separated by one space.

        As keras-hub (tensorflow-text): a `"##"` piece joins the piece before it; every other
        token, special tokens included, starts a new word. Lower-casing, accents and the
        spacing around punctuation are not restored.

        Args:
            inputs: int ids, a (B, (T)) ragged or (B, T) dense tensor, nested lists, or a 1-D
                sequence of ids.

        Returns:
            string tensor of shape (B,), or a scalar string for 1-D inputs.

        Example:
        >>> tokenizer = WordPieceTokenizer(["[UNK]", "qu", "##ick"])
        >>> tokenizer.detokenize([1, 2]).numpy()
        b'quick'
        """
        ids, unbatched = to_ragged_ids(inputs)
        row_splits = tf.cast(ids.row_splits, tf.int32)
        tokens = tf.gather(self._vocab_tensor, ids.values)  # (T,)
        position = tf.range(tf.size(tokens)) - tf.gather(
            row_splits, row_ids(row_splits, tf.size(tokens))
        )
        suffix = _regex_escape(self.suffix_indicator)
        joins = tf.strings.regex_full_match(tokens, suffix + ".+") & (position > 0)
        separated = tf.strings.join([tf.where(position > 0, " ", ""), tokens])
        pieces = tf.where(joins, tf.strings.regex_replace(tokens, "^" + suffix, ""), separated)
        text = join_rows(pieces, row_splits)
        return text[0] if unbatched else text

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lowercase": self.lowercase,
                "strip_accents": self.strip_accents,
                "split_on_cjk": self.split_on_cjk,
                "suffix_indicator": self.suffix_indicator,
                "oov_token": self.oov_token,
                "max_bytes_per_word": self.max_bytes_per_word,
            }
        )
        return config


def _regex_escape(text):
    return "".join("\\" + c if not c.isalnum() else c for c in text)
