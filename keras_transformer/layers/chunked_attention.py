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


def _heads(tensor):
    """(B, T, N, D) -> (B, N, T, D), the layout in which each head's products are matmuls."""
    return tf.transpose(tensor, [0, 2, 1, 3])


def _after(previous, tensor):
    """`tensor`, but only once `previous` has been computed (`previous` None: `tensor`).

    The blocks are independent, so a graph executor would otherwise compute several blocks'
    (B, N, c, S) weights at once, and the memory that chunks save would be spent again: each
    block starts from its queries, and its queries wait for the previous block's result.
    """
    if previous is None:
        return tensor
    with tf.control_dependencies([previous]):
        return tf.identity(tensor)


def _weights(query, key, mask):
    """Softmax weights in float32, (B, N, c, S), as `MultiHeadAttention._attend` computes them,
    from head-major queries (B, N, c, D) and keys (B, N, S, D)."""
    scores = tf.cast(tf.matmul(query, key, transpose_b=True), tf.float32)
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


def _weights_and_dropout(query, key, mask, rate, seed, block):
    """A block's softmax weights (float32) and its dropout factors (`None` without dropout):
    the forward pass and the backward pass's recomputation both take them from here."""
    weights = _weights(query, key, mask)
    scale = _dropout_scale(tf.shape(weights), rate, seed, block) if rate > 0 else None
    return weights, scale


def _block_heads(query, key, value, mask, rate, seed, block):
    """One block's output (B, N, c, Dv) from head-major query, key and value."""
    weights, scale = _weights_and_dropout(query, key, mask, rate, seed, block)
    dropped = weights if scale is None else weights * scale
    return tf.matmul(tf.cast(dropped, value.dtype), value)


def block_output(query, key, value, mask, rate, seed, block):
    """One block's attention output (B, c, N, Dv) from query (B, c, N, D), key and value
    (B, S, N, D): what the forward pass computes per block.

    Differentiable with ordinary autodiff, so a test can check the hand-written backward pass
    against it.
    """
    outputs = _block_heads(_heads(query), _heads(key), _heads(value), mask, rate, seed, block)
    return _heads(outputs)


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
        # Head-major once, so every block's products are plain batched matmuls.
        query_h, key_h, value_h = _heads(query), _heads(key), _heads(value)

        def mask_of(start, stop):  # (B, c, S), or (B, 1, S) for a mask that has no query axis
            if not masked:
                return None
            return mask if mask.shape[1] == 1 else mask[:, start:stop]

        pieces = []
        for i, (a, b) in enumerate(blocks):
            block_query = _after(pieces[-1] if pieces else None, query_h[:, :, a:b])
            pieces.append(_block_heads(block_query, key_h, value_h, mask_of(a, b), rate, seed, i))
        outputs = _heads(tf.concat(pieces, axis=2))  # (B, T, N, Dv)

        def gradient(upstream):
            upstream_h = _heads(upstream)  # (B, N, T, Dv)
            d_query = []
            d_key = tf.zeros_like(key_h, tf.float32)
            d_value = tf.zeros_like(value_h, tf.float32)
            for i, (start, stop) in enumerate(blocks):
                block_query = _after(d_query[-1] if d_query else None, query_h[:, :, start:stop])
                block_up = upstream_h[:, :, start:stop]
                block_mask = mask_of(start, stop)
                weights, scale = _weights_and_dropout(  # (B, N, c, S) float32
                    block_query, key_h, block_mask, rate, seed, i
                )
                dropped = tf.cast(weights if scale is None else weights * scale, value.dtype)
                d_value += tf.cast(tf.matmul(dropped, block_up, transpose_a=True), tf.float32)
                d_dropped = tf.cast(tf.matmul(block_up, value_h, transpose_b=True), tf.float32)
                d_weights = d_dropped if scale is None else d_dropped * scale
                d_scores = weights * (
                    d_weights - tf.reduce_sum(d_weights * weights, axis=-1, keepdims=True)
                )
                if block_mask is not None:  # the masked scores are a constant
                    d_scores = tf.where(block_mask[:, None], d_scores, tf.zeros_like(d_scores))
                if weights.shape[-1] == 1:  # a single key: the weight is the constant 1
                    d_scores = tf.zeros_like(d_scores)
                d_scores = tf.cast(d_scores, query.dtype)
                d_query.append(tf.matmul(d_scores, key_h))
                d_key += tf.cast(tf.matmul(d_scores, block_query, transpose_a=True), tf.float32)
            return (
                _heads(tf.concat(d_query, axis=2)),
                _heads(tf.cast(d_key, key.dtype)),
                _heads(tf.cast(d_value, value.dtype)),
                None,
                None,
            )

        return outputs, gradient

    return attend(query, key, value, mask, seed)
