"""Mask helpers shared by the attention layers and blocks.

Conventions: a mask is boolean, `True` where attention is allowed. A padding mask has shape
(B, T) and is `True` (or 1) at real tokens. An attention mask has shape (B, T, S): query position
t may attend to key position s where it is `True`.
"""

from keras import ops


def compute_causal_mask(batch_size, query_length, key_length, cache_index=0):
    """Returns the causal attention mask, shape (B, T, S), boolean.

    Query t sits at absolute position `cache_index + t`; it may attend to key s iff
    `s <= cache_index + t`. With a key/value cache, `key_length` is the cache length and
    `cache_index` the position of the first query token, so slots not yet written are hidden too.

    Args:
        batch_size: int or scalar tensor. B.
        query_length: int or scalar tensor. T.
        key_length: int or scalar tensor. S.
        cache_index: int or scalar tensor. Absolute position of the first query. Defaults to `0`.
    """
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(cache_index, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    mask = ops.expand_dims(key_positions, 0) <= ops.expand_dims(query_positions, 1)  # (T, S)
    return ops.broadcast_to(ops.expand_dims(mask, 0), (batch_size, query_length, key_length))


def padding_to_attention_mask(query_padding_mask=None, key_padding_mask=None):
    """Turns (B, T) and (B, S) padding masks into one (B, T, S) attention mask, or `None`.

    Only the key side decides what may be attended to; the query side is kept as well (as in
    `keras.layers.MultiHeadAttention`), so fully padded query rows attend nowhere and their outputs
    are defined but meaningless.
    """
    mask = None
    if key_padding_mask is not None:
        mask = ops.expand_dims(ops.cast(key_padding_mask, "bool"), 1)  # (B, 1, S)
    if query_padding_mask is not None:
        query = ops.expand_dims(ops.cast(query_padding_mask, "bool"), 2)  # (B, T, 1)
        mask = query if mask is None else ops.logical_and(query, mask)
    return mask


def merge_masks(*masks):
    """Logical AND of the given boolean masks (broadcasting), ignoring `None`s."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged
