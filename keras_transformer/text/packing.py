"""Pack token ids into fixed-length model inputs: start/end tokens, segments, truncation, padding.

Core TensorFlow only, so the packers run in `tf.data` and inside exported serving graphs alike.
They are plain `tf.Module`s with no weights: `StartEndPacker` for one segment (`[BOS] ... [EOS]`,
`[CLS] ... [SEP]`) and `MultiSegmentPacker` for BERT's `[CLS] a [SEP] b [SEP]`.
"""

import tensorflow as tf

TRUNCATE_STRATEGIES = ("round_robin", "waterfall")


def _to_ragged(ids, name):
    if isinstance(ids, tf.RaggedTensor):
        ragged = ids
    else:
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank != 2:
            raise ValueError(
                f"`{name}` must be token ids of shape (B, T), dense or ragged. "
                f"Received: shape {ids.shape}"
            )
        ragged = tf.RaggedTensor.from_tensor(ids)
    if ragged.shape.rank != 2 or not ragged.dtype.is_integer:
        raise ValueError(
            f"`{name}` must be integer token ids of shape (B, (T)). "
            f"Received: shape {ragged.shape}, dtype {ragged.dtype.name}"
        )
    return tf.cast(ragged, tf.int32).with_row_splits_dtype(tf.int64)


def _check_length(sequence_length, reserved):
    if not isinstance(sequence_length, int) or sequence_length <= reserved:
        raise ValueError(
            f"`sequence_length` must be an int larger than the {reserved} special token(s) it "
            f"holds. Received: sequence_length={sequence_length!r}"
        )


class StartEndPacker(tf.Module):
    """Add start/end ids to each sequence, truncate and pad to a fixed length.

    The content is truncated so that the end id always fits: a (B, (T)) batch becomes
    `[start] ids[:L - 2] [end] [pad]...` of shape (B, L).

    Args:
        sequence_length: int. L, the output length.
        start_value: int or None. Id put first (e.g. `[CLS]` or `[BOS]`). Defaults to `None`.
        end_value: int or None. Id put last (e.g. `[SEP]` or `[EOS]`). Defaults to `None`.
        pad_value: int. Id filling the rest. Defaults to `0`.
        name: str. The module name.

    Call arguments:
        ids: int (B, (T)) ragged or (B, T) dense token ids (dense inputs are taken whole).

    Returns:
        A tuple `(token_ids, padding_mask)`: int32 (B, L) and bool (B, L), true on real tokens
        (the start and end ids included).

    Example:
    >>> packer = StartEndPacker(6, start_value=2, end_value=3)
    >>> token_ids, mask = packer(tf.ragged.constant([[7, 8], [7, 8, 9, 10, 11]]))
    >>> token_ids.numpy().tolist()
    [[2, 7, 8, 3, 0, 0], [2, 7, 8, 9, 10, 3]]
    """

    def __init__(self, sequence_length, start_value=None, end_value=None, pad_value=0, name=None):
        super().__init__(name=name)
        reserved = (start_value is not None) + (end_value is not None)
        _check_length(sequence_length, reserved)
        self.sequence_length = sequence_length
        self.start_value = start_value
        self.end_value = end_value
        self.pad_value = pad_value

    def __call__(self, ids):
        ids = _to_ragged(ids, "ids")
        batch_size = ids.nrows(out_type=tf.int32)
        reserved = (self.start_value is not None) + (self.end_value is not None)
        ids = ids[:, : self.sequence_length - reserved]
        parts = []
        if self.start_value is not None:
            parts.append(tf.fill([batch_size, 1], self.start_value))
        parts.append(ids)
        if self.end_value is not None:
            parts.append(tf.fill([batch_size, 1], self.end_value))
        packed = tf.concat(parts, axis=1) if len(parts) > 1 else ids
        token_ids = packed.to_tensor(
            default_value=self.pad_value, shape=[None, self.sequence_length]
        )
        padding_mask = tf.sequence_mask(packed.row_lengths(), self.sequence_length)
        return token_ids, padding_mask


class MultiSegmentPacker(tf.Module):
    """Pack several segments BERT-style: `[CLS] a [SEP] b [SEP]`, with segment ids.

    Segments are truncated together to fit `sequence_length`: `"round_robin"` gives one token to
    each segment in turn (so a short segment stays whole and the long one is cut), `"waterfall"`
    keeps the first segments whole and cuts the last ones. Both match keras-hub's
    `MultiSegmentPacker`.

    Args:
        sequence_length: int. L, the output length.
        start_value: int. Id put first (`[CLS]`).
        end_value: int. Id put after each segment (`[SEP]`).
        pad_value: int. Id filling the rest. Defaults to `0`.
        truncate: str. `"round_robin"` or `"waterfall"`. Defaults to `"round_robin"`.
        name: str. The module name.

    Call arguments:
        segments: a list or tuple of int (B, (T_i)) ragged or (B, T_i) dense token ids.

    Returns:
        A tuple `(token_ids, segment_ids, padding_mask)`: int32 (B, L), int32 (B, L) (segment i
        for its tokens and the `[SEP]` after them; `[CLS]` is segment 0; padding 0) and bool
        (B, L).

    Example:
    >>> packer = MultiSegmentPacker(8, start_value=2, end_value=3)
    >>> token_ids, segment_ids, mask = packer(
    ...     [tf.ragged.constant([[7, 8, 9]]), tf.ragged.constant([[10, 11, 12, 13]])]
    ... )
    >>> token_ids.numpy().tolist(), segment_ids.numpy().tolist()
    ([[2, 7, 8, 3, 10, 11, 12, 3]], [[0, 0, 0, 0, 1, 1, 1, 1]])
    """

    def __init__(
        self,
        sequence_length,
        start_value,
        end_value,
        pad_value=0,
        truncate="round_robin",
        name=None,
    ):
        super().__init__(name=name)
        if truncate not in TRUNCATE_STRATEGIES:
            raise ValueError(
                f"`truncate` must be one of {TRUNCATE_STRATEGIES}. Received: truncate={truncate!r}"
            )
        _check_length(sequence_length, 2)
        self.sequence_length = sequence_length
        self.start_value = start_value
        self.end_value = end_value
        self.pad_value = pad_value
        self.truncate = truncate

    def __call__(self, segments):
        if not isinstance(segments, (list, tuple)) or not segments:
            raise ValueError(
                "`segments` must be a non-empty list of token id batches, e.g. [ids_a, ids_b]. "
                f"Received: {type(segments).__name__}"
            )
        segments = [_to_ragged(s, f"segments[{i}]") for i, s in enumerate(segments)]
        budget = self.sequence_length - 1 - len(segments)  # Room left by [CLS] and the [SEP]s.
        if budget < 0:
            raise ValueError(
                f"sequence_length={self.sequence_length} cannot hold {len(segments)} segments "
                f"and their {len(segments) + 1} special tokens. Use a longer sequence_length."
            )
        lengths = tf.stack([tf.cast(s.row_lengths(), tf.int32) for s in segments], axis=1)
        if self.truncate == "round_robin":
            kept = _round_robin(lengths, budget)
        else:
            kept = _waterfall(lengths, budget)
        batch_size = tf.shape(lengths)[0]
        parts = [tf.fill([batch_size, 1], self.start_value)]
        segment_parts = [tf.zeros([batch_size, 1], tf.int32)]
        for index, segment in enumerate(segments):
            segment = _take_prefix(segment, kept[:, index])
            with_end = tf.concat([segment, tf.fill([batch_size, 1], self.end_value)], axis=1)
            parts.append(with_end)
            segment_parts.append(tf.ones_like(with_end) * index)
        packed = tf.concat(parts, axis=1)
        segment_ids = tf.concat(segment_parts, axis=1)
        shape = [None, self.sequence_length]
        return (
            packed.to_tensor(default_value=self.pad_value, shape=shape),
            segment_ids.to_tensor(default_value=0, shape=shape),
            tf.sequence_mask(packed.row_lengths(), self.sequence_length),
        )


def _take_prefix(ragged, lengths):
    """The first `lengths[i]` items of each row of a (B, (T)) ragged tensor."""
    positions = tf.ragged.range(tf.cast(ragged.row_lengths(), tf.int32))
    keep = positions < tf.expand_dims(lengths, 1)
    return tf.ragged.boolean_mask(ragged, keep)


def _round_robin(lengths, budget):
    """Per-row lengths kept when `budget` tokens go one at a time to each segment in turn.

    Args:
        lengths: int32 (B, S) segment lengths.
        budget: int. Tokens available per row.

    Returns:
        int32 (B, S).
    """
    levels = tf.range(budget + 1)  # (K,) candidate "full rounds" counts.
    # Tokens used after k full rounds: sum_i min(len_i, k).
    used = tf.reduce_sum(tf.minimum(lengths[:, None, :], levels[None, :, None]), axis=2)  # (B, K)
    rounds = tf.reduce_sum(tf.cast(used <= budget, tf.int32), axis=1) - 1  # (B,)
    kept = tf.minimum(lengths, rounds[:, None])
    left = budget - tf.reduce_sum(kept, axis=1)  # Tokens of the last, partial round.
    wants_more = tf.cast(lengths > kept, tf.int32)
    order = tf.cumsum(wants_more, axis=1)  # 1-based rank among segments that want more.
    extra = wants_more * tf.cast(order <= left[:, None], tf.int32)
    return kept + extra


def _waterfall(lengths, budget):
    """Per-row lengths kept when the first segments are kept whole, the last ones cut."""
    before = tf.cumsum(lengths, axis=1, exclusive=True)
    return tf.clip_by_value(budget - before, 0, lengths)
