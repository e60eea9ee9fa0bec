"""In-graph text -> model inputs for serving: BERT framing, `[MASK]` markers, GPT prompts.

Every function here is core TensorFlow (runs inside the exported graph). Batches are padded
to their longest row, not to the model's maximum: a batch of short texts costs little.
"""

import tensorflow as tf

from keras_transformer.text import MultiSegmentPacker


def special_token_id(tokenizer, token, required=True):
    """The id of `token` in the tokenizer's vocabulary; `None` if absent and not required."""
    vocabulary = tokenizer.get_vocabulary()
    if token in vocabulary:
        return vocabulary.index(token)
    if required:
        raise ValueError(
            f"The tokenizer's vocabulary lacks {token!r}, which this export needs. Use a "
            "vocabulary that reserves it (e.g. from `train_word_piece_vocabulary`), or pass "
            "the special token ids explicitly."
        )
    return None


class BertPacker(tf.Module):
    """Token ids (B, (T)) -> `[CLS] ids [SEP] [PAD]...` (B, W), W the longest packed row.

    The same `MultiSegmentPacker` as `keras_transformer.data.pipelines.classification_dataset`
    (so serving frames text exactly as training did), then cut to the batch's longest row.

    Args:
        max_sequence_length: int. Rows are truncated to this many tokens, specials included.
        cls_id, sep_id, pad_id: int. The special token ids.

    Call arguments:
        ids: int (B, (T)) ragged token ids.

    Returns:
        `(token_ids, padding_mask)`, both int32 (B, W) with 2 <= W <= max_sequence_length.
    """

    def __init__(self, max_sequence_length, cls_id, sep_id, pad_id, name=None):
        super().__init__(name=name)
        self.max_sequence_length = max_sequence_length
        self.packer = MultiSegmentPacker(max_sequence_length, cls_id, sep_id, pad_id)

    def __call__(self, ids):
        token_ids, _, padding_mask = self.packer([ids])  # (B, L)
        padding_mask = tf.cast(padding_mask, tf.int32)
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(padding_mask, axis=1)), 2)
        return token_ids[:, :width], padding_mask[:, :width]


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
