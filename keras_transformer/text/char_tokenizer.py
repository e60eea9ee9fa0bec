"""A character (or byte) tokenizer layer for character-level language models, in core TF ops."""

import collections

import keras
import tensorflow as tf

from keras_transformer.text.string_ops import join_rows
from keras_transformer.text.vocabulary import (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    UNK_TOKEN,
    validate_vocabulary,
)
from keras_transformer.text.vocabulary_tokenizer import VocabularyTokenizer

CHARACTER_RESERVED_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN)
UNITS = ("character", "byte")


@keras.saving.register_keras_serializable(package="keras_transformer")
class CharacterTokenizer(VocabularyTokenizer):
    """Map each Unicode character (or each byte) of a string to an id of a small vocabulary.

    The vocabulary is a list whose first entries are reserved tokens (`[PAD]` must be id 0,
    `[UNK]` must be present; `[BOS]`/`[EOS]` are useful for generation) followed by single
    characters (`unit="character"`) or single bytes as Latin-1 characters `"\\x00".."\\xff"`
    (`unit="byte"`). `from_text` learns a character vocabulary from a corpus: about 81 entries
    for Shakespeare. Characters not in the vocabulary become `[UNK]`; invalid UTF-8 bytes are
    read as U+FFFD (REPLACEMENT CHARACTER) first. Built from core TensorFlow ops only, so it
    works in `tf.data` and in a SavedModel served without tensorflow-text.

    Args:
        vocabulary: list of str. Reserved tokens, then one character (or byte) per entry.
        unit: str. `"character"` (Unicode code points) or `"byte"`. Defaults to `"character"`.
        sequence_length: int or None. If set, outputs are dense, truncated or padded with 0.
            Defaults to `None` (ragged outputs).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: string tensor of shape (B,), or a scalar string.

    Returns:
        int32 `tf.RaggedTensor` (B, (T)), or (B, sequence_length) dense if `sequence_length` is
        set; a 1-D dense tensor for a scalar input.

    Example:
    >>> tokenizer = CharacterTokenizer.from_text(["to be, or not to be"])
    >>> ids = tokenizer(["to be"])
    >>> tokenizer.detokenize(ids).numpy()
    array([b'to be'], dtype=object)
    """

    def __init__(self, vocabulary, unit="character", sequence_length=None, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="int32", **kwargs)
        if unit not in UNITS:
            raise ValueError(f"`unit` must be one of {UNITS}. Received: unit={unit!r}")
        vocabulary = validate_vocabulary(vocabulary, required_tokens=(PAD_TOKEN, UNK_TOKEN))
        if vocabulary[0] != PAD_TOKEN:
            raise ValueError(
                f"{PAD_TOKEN} must be id 0 of a character vocabulary. Received: "
                f"vocabulary[0]={vocabulary[0]!r}"
            )
        if sequence_length is not None and (
            not isinstance(sequence_length, int) or sequence_length < 1
        ):
            raise ValueError(
                "`sequence_length` must be a positive int or None. "
                f"Received: sequence_length={sequence_length!r}"
            )
        self.vocabulary = vocabulary
        self.unit = unit
        self.sequence_length = sequence_length
        self._token_to_id = {token: i for i, token in enumerate(vocabulary)}
        self.oov_token_id = self._token_to_id[UNK_TOKEN]
        limit = 0xFF if unit == "byte" else 0x10FFFF
        symbols = {
            token: i
            for i, token in enumerate(vocabulary)
            if len(token) == 1 and ord(token) <= limit
        }
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([ord(t) for t in symbols], tf.int64),
                tf.constant(list(symbols.values()), tf.int32),
            ),
            default_value=self.oov_token_id,
        )
        # Detokenization: characters as UTF-8 (bytes as single bytes); reserved tokens vanish,
        # except `[UNK]`, which shows as U+FFFD.
        strings = []
        for token in vocabulary:
            if token in symbols:
                strings.append(token.encode("latin-1") if unit == "byte" else token.encode())
            elif token == UNK_TOKEN:
                strings.append("\ufffd".encode())
            else:
                strings.append(b"")
        self._strings = tf.constant(strings)

    @classmethod
    def from_text(
        cls,
        texts,
        unit="character",
        max_vocabulary_size=None,
        min_count=1,
        reserved_tokens=CHARACTER_RESERVED_TOKENS,
        **kwargs,
    ):
        """Learn the vocabulary from text: reserved tokens, then characters by code point.

        Args:
            texts: iterable of str (or bytes for `unit="byte"`).
            unit: str. `"character"` or `"byte"`. Defaults to `"character"`.
            max_vocabulary_size: int or None. Keep only the most frequent characters so the
                vocabulary, reserved tokens included, has at most this size. Defaults to `None`.
            min_count: int. Drop characters seen fewer times. Defaults to `1`.
            reserved_tokens: list of str. Put first; must start with `[PAD]` and hold `[UNK]`.
            **kwargs: more constructor arguments (`sequence_length`, `name`).

        Returns:
            `CharacterTokenizer`.
        """
        counts = collections.Counter()
        for text in texts:
            if unit == "byte":
                text = text.encode("utf-8") if isinstance(text, str) else bytes(text)
                counts.update(chr(b) for b in text)
            else:
                counts.update(text.decode("utf-8") if isinstance(text, bytes) else text)
        symbols = [c for c, n in counts.items() if n >= min_count and c not in reserved_tokens]
        if max_vocabulary_size is not None:
            room = max_vocabulary_size - len(reserved_tokens)
            if room < 1:
                raise ValueError(
                    f"`max_vocabulary_size` must exceed the {len(reserved_tokens)} reserved "
                    f"tokens. Received: max_vocabulary_size={max_vocabulary_size}"
                )
            symbols = sorted(symbols, key=lambda c: (-counts[c], c))[:room]
        if not symbols:
            raise ValueError("No characters found in `texts`: pass a non-empty corpus.")
        return cls(list(reserved_tokens) + sorted(symbols), unit=unit, **kwargs)

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string or (inputs.shape.rank or 0) > 1:
            raise ValueError(
                "CharacterTokenizer takes strings of shape (B,) or a scalar string. "
                f"Received: dtype={inputs.dtype.name}, shape={inputs.shape}"
            )
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = inputs[None]
        encoding = "ISO-8859-1" if self.unit == "byte" else "UTF-8"  # Latin-1: byte = code.
        row_splits, code_points = tf.raw_ops.UnicodeDecode(
            input=inputs, input_encoding=encoding, errors="replace", Tsplits=tf.int64
        )
        ids = self._table.lookup(tf.cast(code_points, tf.int64))
        tokens = tf.RaggedTensor.from_row_splits(ids, row_splits, validate=False)
        if self.sequence_length:
            tokens = tokens.to_tensor(shape=[None, self.sequence_length])
        if unbatched:
            tokens = tokens[0]
        return tokens

    def tokenize(self, inputs):
        """Tokenize `inputs`; the same as calling the layer."""
        return self(inputs)

    def detokenize(self, inputs):
        """Turn ids back into strings; reserved tokens vanish, `[UNK]` shows as U+FFFD.

        Args:
            inputs: int ids, (B, (T)) ragged, (B, T) dense, or 1-D.

        Returns:
            string tensor (B,), or a scalar string for 1-D inputs.
        """
        if isinstance(inputs, tf.RaggedTensor):
            ids, unbatched = inputs, False
        else:
            if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], list):
                ids = tf.ragged.constant(inputs)
                unbatched = False
            else:
                ids = tf.convert_to_tensor(inputs)
                unbatched = ids.shape.rank == 1
                ids = tf.RaggedTensor.from_tensor(ids[None] if unbatched else ids)
        ids = tf.cast(ids, tf.int32)
        pieces = tf.gather(self._strings, ids.flat_values)
        text = join_rows(pieces, tf.cast(ids.row_splits, tf.int32))
        return text[0] if unbatched else text

    def get_config(self):
        config = super().get_config()
        config["unit"] = self.unit
        return config
