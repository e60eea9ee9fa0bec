"""Multi-head scaled dot-product attention, built from learned Wq, Wk, Wv and Wo."""

import math

import keras
from keras import ops

from keras_transformer.layers.chunked_attention import NEGATIVE, chunked_attention
from keras_transformer.layers.dropout import Dropout
from keras_transformer.layers.initializers import clone_initializer
from keras_transformer.layers.masks import (
    compute_causal_mask,
    merge_masks,
    padding_to_attention_mask,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention: `softmax(Q Kᵀ / sqrt(d)) V`, per head, then an output projection.

    Each of the N heads projects the query sequence (B, T, Hq) and the key and value sequences
    (B, S, Hk), (B, S, Hv) with its own learned matrices Wq, Wk (Hx × key_dim) and Wv
    (Hv × value_dim); scores are the scaled dot products of queries and keys, turned into weights
    by a softmax over the keys (computed in float32 under mixed precision), dropped out in
    training, and used to average the values. The heads' results are concatenated and projected
    back by Wo to the query width (or `output_shape`).

    The weights have the shapes and order of `keras.layers.MultiHeadAttention` (query, key, value,
    output; kernel then bias), and the call takes its arguments, so one can replace the other:
    `ours.set_weights(theirs.get_weights())` gives the same outputs.

    Masks: `True` (or 1) means "may attend". `attention_mask` (B, T, S) is explicit;
    `query_mask` (B, T) and `value_mask` / `key_mask` (B, S) are padding masks;
    `use_causal_mask=True` adds the causal mask (query t sees keys s <= t). All given masks are
    combined with a logical AND. A query row with no key to attend to gets uniform weights (as in
    Keras); its output is meaningless and should be masked downstream.

    Key/value cache: pass `cache` (B, 2, S_max, N, key_dim) and `cache_update_index` (the
    position of the first query token). The keys and values of the current `key`/`value` tokens
    are written into the cache at that index, attention runs over the whole cache, and the call
    returns the updated cache last. With `use_causal_mask=True` the causal mask is offset by
    `cache_update_index`, so slots not written yet are never attended to. With `cache` but no
    `cache_update_index`, the cache is used as it is (precomputed cross-attention keys/values).

    Args:
        num_heads: int. Number of attention heads N.
        key_dim: int. Size of each head for queries and keys.
        value_dim: int. Size of each head for values. Defaults to `key_dim`.
        dropout: float. Dropout rate on the attention weights. Defaults to `0.0`.
        use_bias: bool. Whether the projections have biases. Defaults to `True`.
        output_shape: int. Width of the output. Defaults to the query width.
        kernel_initializer: initializer of the four projection kernels, each of which gets its
            own clone (`clone_initializer`). Defaults to `"glorot_uniform"`, with Keras' fans
            for 3-D kernels as in `keras.layers.MultiHeadAttention`: Wq (Hq, N, D) has std
            sqrt(2 / ((N + D) · Hq)).
        bias_initializer: initializer of the biases (one clone each). Defaults to `"zeros"`.
        attention_chunk_size: int or None. If set, a call with more queries than this (and a
            static number of them) attends `attention_chunk_size` queries at a time and the
            backward pass recomputes each block's weights (`chunked_attention`): the
            (B, N, T, S) weights are never held whole, so long sequences train in a fraction
            of the memory, for one more Q Kᵀ product. Same outputs to float rounding; the
            dropout masks come from a stateless generator instead of the plain path's. Calls
            that return the attention weights, or whose length is unknown (a serving
            signature), use the plain path. Defaults to `None` (always the plain path).

    Call arguments:
        query: (B, T, Hq) tensor.
        value: (B, S, Hv) tensor.
        key: (B, S, Hk) tensor. Defaults to `value`.
        query_mask, value_mask, key_mask: (B, T) / (B, S) padding masks.
        attention_mask: (B, T, S) boolean mask.
        return_attention_scores: bool. Also return the attention weights (B, N, T, S).
        training: bool. Dropout is active only in training.
        use_causal_mask: bool. Apply the causal mask.
        cache: (B, 2, S_max, N, key_dim) key/value cache, or `None`.
        cache_update_index: int or scalar tensor. Where the new keys/values are written.

    Returns:
        The output (B, T, output_shape); then the attention weights if
        `return_attention_scores`; then the updated cache if `cache` was given.

    Example:
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=8)
    >>> x = np.random.rand(1, 5, 16).astype("float32")
    >>> layer(x, x, use_causal_mask=True).shape
    TensorShape([1, 5, 16])
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        attention_chunk_size=None,
        **kwargs,
    ):
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        if value_dim is not None and (not isinstance(value_dim, int) or value_dim <= 0):
            raise ValueError(
                f"`value_dim` must be a positive integer or None. Received: value_dim={value_dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if attention_chunk_size is not None and (
            not isinstance(attention_chunk_size, int) or attention_chunk_size <= 0
        ):
            raise ValueError(
                "`attention_chunk_size` must be a positive integer or None. Received: "
                f"attention_chunk_size={attention_chunk_size}"
            )
        super().__init__(**kwargs)
        self.attention_chunk_size = attention_chunk_size
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self._output_shape = output_shape
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)
        self.supports_masking = False

    def _projection(self, name, input_dim, head_dim):
        kernel = self.add_weight(
            name=f"{name}_kernel",
            shape=(input_dim, self.num_heads, head_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias",
                shape=(self.num_heads, head_dim),
                initializer=clone_initializer(self.bias_initializer),
            )
        return kernel, bias

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        self.query_kernel, self.query_bias = self._projection(
            "query", query_shape[-1], self.key_dim
        )
        self.key_kernel, self.key_bias = self._projection("key", key_shape[-1], self.key_dim)
        self.value_kernel, self.value_bias = self._projection(
            "value", value_shape[-1], self.value_dim
        )
        output_dim = self._output_shape or query_shape[-1]
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(self.num_heads, self.value_dim, output_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.output_bias = None
        if self.use_bias:
            self.output_bias = self.add_weight(
                name="output_bias",
                shape=(output_dim,),
                initializer=clone_initializer(self.bias_initializer),
            )
        self.built = True

    @staticmethod
    def _project(inputs, kernel, bias):
        # (B, T, H) x (H, N, D) -> (B, T, N, D), as one (B·T, H) x (H, N·D) matmul. (Keras runs
        # the einsum "bth,hnd->btnd" as a batch matmul broadcast over B, whose kernel gradient
        # is B small matmuls and a sum.)
        input_dim, num_heads, head_dim = kernel.shape
        outputs = ops.matmul(inputs, ops.reshape(kernel, (input_dim, num_heads * head_dim)))
        shape = ops.shape(inputs)
        outputs = ops.reshape(outputs, (shape[0], shape[1], num_heads, head_dim))
        return outputs if bias is None else outputs + bias

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        cache=None,
        cache_update_index=None,
    ):
        if key is None:
            key = value
            key_mask = value_mask if key_mask is None else key_mask
        query_heads = self._project(query, self.query_kernel, self.query_bias)  # (B, T, N, D)
        if cache is not None and cache_update_index is None:
            key_heads, value_heads = cache[:, 0, ...], cache[:, 1, ...]  # (B, S, N, D)
        else:
            key_heads = self._project(key, self.key_kernel, self.key_bias)  # (B, S, N, D)
            value_heads = self._project(value, self.value_kernel, self.value_bias)
            if cache is not None:
                start = [0, cache_update_index, 0, 0]
                key_heads = ops.slice_update(cache[:, 0, ...], start, key_heads)
                value_heads = ops.slice_update(cache[:, 1, ...], start, value_heads)
                cache = ops.stack([key_heads, value_heads], axis=1)

        mask = self._attention_mask(
            query_heads,
            key_heads,
            query_mask=query_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            cache_index=0 if cache_update_index is None else cache_update_index,
        )
        query_heads = query_heads * ops.cast(1.0 / math.sqrt(self.key_dim), query_heads.dtype)
        weights = None
        if self._chunked(query_heads, return_attention_scores):
            output = self._attend_in_chunks(query_heads, key_heads, value_heads, mask, training)
        else:
            output, weights = self._attend(query_heads, key_heads, value_heads, mask, training)
        outputs = (output,)
        if return_attention_scores:
            outputs += (weights,)
        if cache is not None:
            outputs += (cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _attention_mask(
        self,
        query_heads,
        key_heads,
        query_mask,
        key_mask,
        attention_mask,
        use_causal_mask,
        cache_index,
    ):
        causal = None
        if use_causal_mask:
            shape_q, shape_k = ops.shape(query_heads), ops.shape(key_heads)
            causal = compute_causal_mask(shape_q[0], shape_q[1], shape_k[1], cache_index)
        return merge_masks(padding_to_attention_mask(query_mask, key_mask), attention_mask, causal)

    def _chunked(self, query_heads, return_attention_scores):
        """Whether this call runs `chunked_attention` (see `attention_chunk_size`)."""
        length = query_heads.shape[1]
        return (
            self.attention_chunk_size is not None
            and not return_attention_scores
            and length is not None
            and length > self.attention_chunk_size
        )

    def _attend_in_chunks(self, query_heads, key_heads, value_heads, mask, training):
        rate = self.dropout if training else 0.0
        seed = None
        if rate > 0:
            seed = keras.random.randint(
                (2,), 0, 2**31 - 1, dtype="int32", seed=self.dropout_layer.seed_generator
            )
        if mask is not None:
            mask = ops.cast(mask, "bool")
        context = chunked_attention(
            query_heads, key_heads, value_heads, mask, self.attention_chunk_size, rate, seed
        )
        return self._output_projection(context)

    def _output_projection(self, context):
        num_heads, head_dim, output_dim = self.output_kernel.shape
        shape = ops.shape(context)
        context = ops.reshape(context, (shape[0], shape[1], num_heads * head_dim))  # (B, T, N·D)
        kernel = ops.reshape(self.output_kernel, (num_heads * head_dim, output_dim))
        output = ops.matmul(context, kernel)  # (B, T, H), one 2-D matmul as in `_project`
        if self.output_bias is not None:
            output = output + self.output_bias
        return output

    def _attend(self, query_heads, key_heads, value_heads, mask, training):
        scores = ops.einsum("btnd,bsnd->bnts", query_heads, key_heads)  # (B, N, T, S)
        scores = ops.cast(scores, "float32")
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, "bool"), 1)  # (B, 1, T, S)
            scores = ops.where(mask, scores, ops.cast(NEGATIVE, "float32"))
        if scores.shape[-1] == 1:  # one key: the softmax is 1 (Keras warns on size-1 softmax)
            weights = ops.ones_like(scores, dtype=self.compute_dtype)
        else:
            weights = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        dropped = self.dropout_layer(weights, training=training)
        context = ops.einsum("bnts,bsnd->btnd", dropped, value_heads)  # (B, T, N, D)
        return self._output_projection(context), weights

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_shape": self._output_shape,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "attention_chunk_size": self.attention_chunk_size,
            }
        )
        return config
