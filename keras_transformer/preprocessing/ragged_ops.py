"""Ragged token-id helpers of the preprocessors: keep the last ids, right-pad, `[MASK]` markers.

Core TensorFlow only: they run inside `tf.data` and inside exported serving graphs alike.
"""

import tensorflow as tf


def keep_last(ids, count):
    """The last `count` ids of each row of a ragged (B, (T)) tensor (all if shorter)."""
    lengths = ids.row_lengths()
    position = tf.ragged.range(lengths)
    keep = position >= tf.expand_dims(lengths - tf.cast(count, lengths.dtype), 1)
    return tf.ragged.boolean_mask(ids, keep)


def right_pad(ids, pad_id=0):
    """Ragged (B, (T)) -> `(token_ids, padding_mask)` int32 (B, T_max), right-padded."""
    token_ids = ids.to_tensor(default_value=pad_id)
    padding_mask = tf.sequence_mask(ids.row_lengths(), tf.shape(token_ids)[1], dtype=tf.int32)
    return tf.cast(token_ids, tf.int32), padding_mask


def split_on_marker(texts, marker, tokenizer, marker_id):
    """Tokenize texts in which `marker` (e.g. `"[MASK]"`) stands for the id `marker_id`.

    The tokenizer would split `"[MASK]"` into `[`, `mask`, `]`: instead each text is split on
    the literal marker, the pieces are tokenized, and `marker_id` is put between them.

    Args:
        texts: string (B,).
        marker: str. The literal marker text (case-sensitive).
        tokenizer: a tokenizer layer.
        marker_id: int.

    Returns:
        int32 ragged (B, (T)).
    """
    pieces = tf.strings.split(texts, sep=marker)  # (B, (P)), P = markers + 1
    piece_ids = tf.cast(tokenizer(pieces.flat_values), tf.int32)  # (N, (T))
    piece_ids = piece_ids.with_row_splits_dtype(tf.int64)
    # A marker follows every piece but the last of its text.
    position = tf.ragged.range(pieces.row_lengths()).flat_values  # (N,)
    last = tf.gather(pieces.row_lengths(), pieces.value_rowids()) - 1
    follows = tf.cast(position < last, tf.int64)
    markers = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(follows)], tf.constant(marker_id, tf.int32)), follows
    )
    joined = tf.concat([piece_ids, markers], axis=1)  # (N, (T + 0/1))
    splits = tf.gather(joined.row_splits, pieces.row_splits)
    return tf.RaggedTensor.from_row_splits(joined.values, splits, validate=False)


def trim_to_longest(padding_mask, *tensors, minimum=2):
    """Cut (B, L) tensors to the batch's longest row (at least `minimum` columns).

    Args:
        padding_mask: bool or int (B, L), true on real tokens; rows are 1s then 0s.
        *tensors: further (B, L) tensors cut the same way.
        minimum: int. The narrowest width (an empty batch has no longest row).

    Returns:
        A tuple `(padding_mask, *tensors)`, each (B, W), W = max(longest row, minimum).
    """
    lengths = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1)
    width = tf.maximum(tf.reduce_max(lengths), minimum)
    return tuple(t[:, :width] for t in (padding_mask, *tensors))
