"""Scaled dot-product attention in query chunks, with a backward pass that recomputes them.

Plain attention keeps every layer's (B, N, T, S) scores, softmax weights, dropout mask and
dropped weights alive from the forward pass to the backward pass: at T = S = 1024 and 4 heads,
about 64 MiB per sequence and layer in float32, four times over. `chunked_attention` computes
the same result one block of `chunk_size` queries at a time and keeps only its inputs and
output; the backward pass recomputes each block's weights from the queries and keys (the
memory-efficient attention of Rabe & Staats, 2021, and the backward pass of FlashAttention,
Dao et al., 2022, written with core TensorFlow ops). Peak memory of the weights falls from
T x S to `chunk_size` x S per head, at the cost of one more Q Kᵀ product in the backward pass.

Dropout on the weights draws its mask from a stateless generator seeded per call and per
block, so the backward pass regenerates exactly the mask the forward pass used.
"""

import tensorflow as tf

NEGATIVE = -1e9  # the masked score of `MultiHeadAttention._attend`


def _blocks(size, chunk_size):
    """(start, stop) of each block of at most `chunk_size` along a static `size`."""
    return [(start, min(start + chunk_size, size)) for start in range(0, size, chunk_size)]


def _weights(query, key, mask):
    """Softmax weights in float32, (B, N, c, S), as `MultiHeadAttention._attend` computes them."""
    scores = tf.cast(tf.einsum("btnd,bsnd->bnts", query, key), tf.float32)
    if mask is not None:
        scores = tf.where(mask[:, None], scores, tf.constant(NEGATIVE, tf.float32))
    if scores.shape[-1] == 1:
        return tf.ones_like(scores)
    return tf.nn.softmax(scores, axis=-1)


def _dropout_scale(shape, rate, seed, block):
    """The block's dropout factors (0 or 1 / (1 - rate)) in float32, from a stateless draw."""
    uniform = tf.random.stateless_uniform(
        shape, seed=seed + tf.constant([0, 1], seed.dtype) * block
    )
    return tf.where(uniform >= rate, tf.constant(1.0 / (1.0 - rate)), tf.constant(0.0))


def block_output(query, key, value, mask, rate, seed, block):
    """One block's attention output (B, c, N, Dv): what the forward pass computes per block.

    Differentiable with ordinary autodiff, so a test can check the hand-written backward pass
    against it.
    """
    weights = _weights(query, key, mask)
    if rate > 0:
        weights = weights * _dropout_scale(tf.shape(weights), rate, seed, block)
    return tf.einsum("bnts,bsnd->btnd", tf.cast(weights, value.dtype), value)


def chunked_attention(query, key, value, mask=None, chunk_size=128, rate=0.0, seed=None):
    """`dropout(softmax(query keyᵀ)) value` per head, `chunk_size` queries at a time.

    Args:
        query: (B, T, N, D) tensor, already scaled by 1 / sqrt(D); T must be static.
        key: (B, S, N, D) tensor.
        value: (B, S, N, Dv) tensor.
        mask: (B, T, S) bool tensor, True where a query may attend to a key, or (B, 1, S) for
            the same keys at every query, or `None`.
        chunk_size: int. Queries per block.
        rate: float. Dropout rate on the weights, in [0, 1).
        seed: int32 (2,) tensor, the stateless seed of this call's dropout; needed if `rate`.

    Returns:
        (B, T, N, Dv) tensor in the dtype of `value`. Gradients flow to query, key and value.
    """
    length = query.shape[1]
    if length is None:
        raise ValueError(
            "chunked_attention needs a static number of queries; use plain attention for "
            "inputs of unknown length."
        )
    if rate > 0 and seed is None:
        raise ValueError("chunked_attention with dropout needs a `seed`.")
    blocks = _blocks(length, chunk_size)
    seed = tf.zeros((2,), tf.int32) if seed is None else tf.cast(seed, tf.int32)
    masked = mask is not None
    mask = tf.zeros((0,), tf.bool) if mask is None else tf.cast(mask, tf.bool)

    @tf.custom_gradient
    def attend(query, key, value, mask, seed):
        def mask_of(start, stop):  # (B, c, S), or (B, 1, S) for a mask that has no query axis
            if not masked:
                return None
            return mask if mask.shape[1] == 1 else mask[:, start:stop]

        def piece(i, start, stop):
            block_mask = mask_of(start, stop)
            return block_output(query[:, start:stop], key, value, block_mask, rate, seed, i)

        outputs = tf.concat([piece(i, *bounds) for i, bounds in enumerate(blocks)], axis=1)

        def gradient(upstream):
            d_query = []
            d_key, d_value = tf.zeros_like(key, tf.float32), tf.zeros_like(value, tf.float32)
            for i, (start, stop) in enumerate(blocks):
                block_query, block_up = query[:, start:stop], upstream[:, start:stop]
                block_mask = mask_of(start, stop)
                weights = _weights(block_query, key, block_mask)  # (B, N, c, S) float32
                dropped = weights
                if rate > 0:
                    scale = _dropout_scale(tf.shape(weights), rate, seed, i)
                    dropped = weights * scale
                dropped = tf.cast(dropped, value.dtype)
                d_value += tf.cast(tf.einsum("bnts,btnd->bsnd", dropped, block_up), tf.float32)
                d_dropped = tf.cast(tf.einsum("btnd,bsnd->bnts", block_up, value), tf.float32)
                d_weights = d_dropped * scale if rate > 0 else d_dropped
                d_scores = weights * (
                    d_weights - tf.reduce_sum(d_weights * weights, axis=-1, keepdims=True)
                )
                if block_mask is not None:  # the masked scores are a constant
                    d_scores = tf.where(block_mask[:, None], d_scores, tf.zeros_like(d_scores))
                if weights.shape[-1] == 1:  # a single key: the weight is the constant 1
                    d_scores = tf.zeros_like(d_scores)
                d_scores = tf.cast(d_scores, query.dtype)
                d_query.append(tf.einsum("bnts,bsnd->btnd", d_scores, key))
                d_key += tf.cast(tf.einsum("bnts,btnd->bsnd", d_scores, block_query), tf.float32)
            return (
                tf.concat(d_query, axis=1),
                tf.cast(d_key, key.dtype),
                tf.cast(d_value, value.dtype),
                None,
                None,
            )

        return outputs, gradient

    return attend(query, key, value, mask, seed)
