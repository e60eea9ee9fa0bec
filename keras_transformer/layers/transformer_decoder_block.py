"""Transformer decoder block: causal self-attention, optional cross attention, feed-forward."""

import keras
from keras import ops

from keras_transformer.layers.dropout import Dropout
from keras_transformer.layers.initializers import clone_initializer
from keras_transformer.layers.multi_head_attention import MultiHeadAttention
from keras_transformer.layers.transformer_encoder_block import (
    TransformerEncoderBlock,
    check_block_sizes,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerDecoderBlock(TransformerEncoderBlock):
    """One decoder layer: masked self-attention, optional cross attention, feed-forward.

    Each sublayer has a residual connection and layer norm, post-norm or pre-norm as in
    `TransformerEncoderBlock`. Self-attention is causal by default (position t sees only
    positions <= t). With `cross_attention=True` a second attention lets every decoder position
    attend to the encoder output (queries from the decoder, keys and values from the encoder,
    masked by `encoder_padding_mask`), as in the original encoder-decoder Transformer.

    Key/value cache for incremental decoding: pass `cache` (B, 2, S_max, N, H/N) and
    `cache_update_index`; the block writes the new tokens' keys and values at that index, attends
    over the cache with the causal mask offset accordingly, and returns `(outputs, cache)`.
    Cross attention recomputes its keys and values from `encoder_sequence` at each call, unless
    they are given once for all steps as `cross_attention_cache` (B, 2, S, N, H/N) instead of
    `encoder_sequence`: its queries then come in K consecutive rows per source (beam search,
    (B * K, T, H) inputs), grouped by source against that source's keys and values, which are
    neither repeated nor reordered with the beams.

    Attention weights: with `return_attention_scores=True` the block also returns the softmax
    weights of its attentions (before attention dropout, as `TransformerEncoderBlock` does), for
    inspection such as a source-target heat map. Padded or causally hidden keys get weight 0.
    Not supported together with `cache`.

    Args:
        num_heads, intermediate_dim, dropout, activation, layer_norm_epsilon, normalize_first,
        kernel_initializer, attention_chunk_size: as in `TransformerEncoderBlock`.
        cross_attention: bool. Add the encoder-decoder attention sublayer. Defaults to `False`.

    Call arguments:
        inputs: (B, T, H) decoder sequence.
        encoder_sequence: (B, S, H) encoder output; required iff `cross_attention`.
        padding_mask: (B, T) decoder padding mask. Optional.
        encoder_padding_mask: (B, S) encoder padding mask. Optional.
        attention_mask: (B, T, T) extra self-attention mask. Optional.
        cache: (B, 2, S_max, N, H/N) self-attention key/value cache. Optional.
        cache_update_index: int or scalar tensor; the position of the first of the T tokens.
        cross_attention_cache: (B, 2, S, N, H/N) the cross attention's projected keys and
            values, in place of `encoder_sequence` (inputs of B * K rows). Optional.
        use_causal_mask: bool. Defaults to `True`.
        training: bool.
        return_attention_scores: bool. Also return the attention weights. Defaults to `False`.

    Returns:
        (B, T, H) tensor, or `(outputs, cache)` when a cache is given, or
        `(outputs, scores)` with `return_attention_scores`: `scores` is a dict with
        `"self_attention"` (B, N, T, T) and, if the block has cross attention,
        `"cross_attention"` (B, N, T, S).

    Example:
    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=32, cross_attention=True)
    >>> x, encoded = np.random.rand(1, 5, 16), np.random.rand(1, 7, 16)
    >>> outputs, scores = block(x, encoder_sequence=encoded, return_attention_scores=True)
    >>> scores["cross_attention"].shape
    TensorShape([1, 2, 5, 7])
    """

    def __init__(self, num_heads, intermediate_dim, cross_attention=False, **kwargs):
        super().__init__(num_heads, intermediate_dim, **kwargs)
        self.cross_attention = cross_attention

    def build(self, inputs_shape, encoder_sequence_shape=None):
        super().build(inputs_shape)
        if self.cross_attention:
            hidden_dim = inputs_shape[-1]
            check_block_sizes(hidden_dim, self.num_heads)
            encoder_shape = encoder_sequence_shape or inputs_shape
            self.cross_attention_layer = MultiHeadAttention(
                num_heads=self.num_heads,
                key_dim=hidden_dim // self.num_heads,
                dropout=self.dropout,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                attention_chunk_size=self.attention_chunk_size,
                dtype=self.dtype_policy,
                name="cross_attention",
            )
            self.cross_attention_layer.build(inputs_shape, encoder_shape)
            self.cross_attention_norm = self._layer_norm("cross_attention_norm", inputs_shape)
            self.cross_attention_dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(
        self,
        inputs,
        encoder_sequence=None,
        padding_mask=None,
        encoder_padding_mask=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        cross_attention_cache=None,
        use_causal_mask=True,
        training=None,
        return_attention_scores=False,
    ):
        encoder_given = encoder_sequence is not None or cross_attention_cache is not None
        if self.cross_attention and not encoder_given:
            raise ValueError(
                "This decoder block was built with `cross_attention=True`: pass "
                "`encoder_sequence` (or its `cross_attention_cache`)."
            )
        if not self.cross_attention and encoder_given:
            raise ValueError(
                "`encoder_sequence` or `cross_attention_cache` was given but this block has no "
                "cross attention; build it with `cross_attention=True`."
            )
        if encoder_sequence is not None and cross_attention_cache is not None:
            raise ValueError(
                "Pass `encoder_sequence` or `cross_attention_cache`, not both: the cache holds "
                "the keys and values the block would project from the sequence."
            )
        if return_attention_scores and (cache is not None or cross_attention_cache is not None):
            raise ValueError(
                "`return_attention_scores=True` is not supported with a `cache` (incremental "
                "decoding). Run the full sequence without `cache` to get the attention weights."
            )
        new_cache = []
        scores = {}

        def self_attend(x):
            outputs = self.self_attention(
                x,
                x,
                value_mask=padding_mask,
                attention_mask=attention_mask,
                use_causal_mask=use_causal_mask,
                cache=cache,
                cache_update_index=cache_update_index,
                return_attention_scores=return_attention_scores,
                training=training,
            )
            if cache is not None:
                outputs, updated = outputs
                new_cache.append(updated)
            if return_attention_scores:
                outputs, scores["self_attention"] = outputs  # (B, N, T, T)
            return self.attention_dropout(outputs, training=training)

        def cross_attend_cached(x):
            shape = ops.shape(x)  # (B * K, T, H)
            # A source's K rows attend to its keys together, (B, K * T, H); queries never
            # attend to each other here, so grouping them changes no output.
            sources = ops.shape(cross_attention_cache)[0]
            per_source = shape[0] // ops.maximum(sources, 1) * shape[1]  # K * T (no rows: 0)
            grouped = ops.reshape(x, (sources, per_source, shape[-1]))
            # A cache without `cache_update_index` is read as it is (nothing is projected).
            outputs, _ = self.cross_attention_layer(
                grouped,
                grouped,
                value_mask=encoder_padding_mask,
                cache=cross_attention_cache,
                training=training,
            )
            return self.cross_attention_dropout(ops.reshape(outputs, shape), training=training)

        def cross_attend(x):
            if cross_attention_cache is not None:
                return cross_attend_cached(x)
            outputs = self.cross_attention_layer(
                x,
                encoder_sequence,
                value_mask=encoder_padding_mask,
                return_attention_scores=return_attention_scores,
                training=training,
            )
            if return_attention_scores:
                outputs, scores["cross_attention"] = outputs  # (B, N, T, S)
            return self.cross_attention_dropout(outputs, training=training)

        x = self._sublayer(inputs, self.attention_norm, self_attend)  # (B, T, H)
        if self.cross_attention:
            x = self._sublayer(x, self.cross_attention_norm, cross_attend)
        x = self._sublayer(
            x, self.feed_forward_norm, lambda y: self.feed_forward(y, training=training)
        )
        if return_attention_scores:
            return x, scores
        return (x, new_cache[0]) if cache is not None else x

    def get_config(self):
        config = super().get_config()
        config.update({"cross_attention": self.cross_attention})
        return config
