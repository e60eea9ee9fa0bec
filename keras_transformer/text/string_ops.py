"""Lean string helpers over flat tensors and row splits, for graphs that run inside `tf.data`.

`tf.RaggedTensor` helpers such as `tf.strings.reduce_join(ragged, axis=1)` or
`tf.strings.split` add dozens of small shape and assertion ops each. Inside `tf.data` every op
costs a few microseconds of dispatch whatever its size, so the tokenizers call the underlying
raw ops and keep `(values, row_splits)` pairs instead.
"""

import tensorflow as tf


def row_ids(row_splits, num_values):
    """The row of each value, from int32 row splits (like `RaggedTensor.value_rowids`).

    Args:
        row_splits: int32 tensor of shape (R + 1,).
        num_values: int32 scalar, `row_splits[-1]`.

    Returns:
        int32 tensor of shape (num_values,).
    """
    # Count the row starts at or before each value; empty rows count as they should.
    starts = tf.raw_ops.DenseBincount(
        input=row_splits[1:-1], size=num_values, weights=tf.zeros([0], tf.int32)
    )
    return tf.cumsum(starts)


def split_whitespace(text):
    """Split strings on ASCII whitespace, dropping empty pieces.

    Args:
        text: string tensor of shape (B,).

    Returns:
        A tuple `(words, word_row, row_splits)`: string (N,), int32 (N,) the row of each word,
        int32 (B + 1,).
    """
    indices, words, _ = tf.raw_ops.StringSplitV2(input=text, sep="")
    word_row = tf.cast(indices[:, 0], tf.int32)
    counts = tf.raw_ops.DenseBincount(
        input=word_row, size=tf.size(text), weights=tf.zeros([0], tf.int32)
    )
    return words, word_row, tf.concat([[0], tf.cumsum(counts)], axis=0)


def split_characters(text):
    """Split valid UTF-8 strings into their characters.

    Args:
        text: string tensor of shape (B,).

    Returns:
        A tuple `(chars, row_splits)`: string (C,), one character each, and int32 (B + 1,).
    """
    row_splits, code_points = tf.raw_ops.UnicodeDecode(
        input=text, input_encoding="UTF-8", errors="replace", Tsplits=tf.int64
    )
    chars = tf.raw_ops.UnicodeEncode(
        input_values=code_points,
        input_splits=tf.range(tf.size(code_points, out_type=tf.int64) + 1),
        output_encoding="UTF-8",
        errors="replace",
    )
    return chars, tf.cast(row_splits, tf.int32)


def join_rows(values, row_splits, separator=""):
    """Join the strings of each row (like `tf.strings.reduce_join(ragged, axis=1)`).

    Args:
        values: string tensor of shape (C,).
        row_splits: int32 tensor of shape (B + 1,).
        separator: str. Put between the strings of a row. Defaults to `""`.

    Returns:
        string tensor of shape (B,); empty rows give `""`.
    """
    return tf.raw_ops.UnsortedSegmentJoin(
        inputs=values,
        segment_ids=row_ids(row_splits, tf.size(values)),
        num_segments=tf.size(row_splits) - 1,
        separator=separator,
    )


def to_string_tensor(inputs, owner):
    """Checks a tokenizer's input: a dense (B,) batch of strings or a scalar string.

    Args:
        inputs: the tokenizer's input.
        owner: str. The tokenizer's name, for the error messages.

    Raises:
        ValueError: a ragged tensor, a non-string dtype or a rank above 1, in one line.
    """
    if isinstance(inputs, tf.RaggedTensor):
        raise ValueError(
            f"{owner} takes a dense batch of strings of shape (B,) or a scalar "
            f"string. Received a ragged tensor of shape {inputs.shape}."
        )
    inputs = tf.convert_to_tensor(inputs)
    if inputs.dtype != tf.string:
        raise ValueError(
            f"{owner} takes strings. "
            f"Received: inputs with dtype={inputs.dtype.name}, e.g. {inputs!r:.100}"
        )
    if inputs.shape.rank is not None and inputs.shape.rank > 1:
        raise ValueError(
            f"{owner} takes a batch of strings of shape (B,) or a scalar string. "
            f"Received: inputs of shape {inputs.shape}; flatten or squeeze it first."
        )
    return inputs


def to_ragged_ids(inputs):
    """Ids (ragged, dense, lists) to an int32 `tf.RaggedTensor` (B, (T)) and an unbatched flag."""
    if isinstance(inputs, tf.RaggedTensor):
        ids = inputs
    elif isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (list, tuple)):
        ids = tf.ragged.constant(inputs, dtype=tf.int32)
    else:
        ids = tf.convert_to_tensor(inputs)
        if ids.shape.rank == 1:
            return tf.RaggedTensor.from_tensor(tf.cast(ids[None], tf.int32)), True
        if ids.shape.rank != 2:
            raise ValueError(
                f"detokenize takes ids of shape (B, T) or (T,). Received: shape {ids.shape}"
            )
        ids = tf.RaggedTensor.from_tensor(ids)
    if not ids.dtype.is_integer:
        raise ValueError(f"detokenize takes integer ids. Received: dtype={ids.dtype.name}")
    return tf.cast(ids, tf.int32), False
