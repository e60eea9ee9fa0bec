"""Encoder-decoder Transformer ("Attention Is All You Need"): a backbone and its LM task."""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_transformer.layers import (
    Dropout,
    LayerNormalization,
    PositionEmbedding,
    SinusoidalPositionEncoding,
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_transformer.layers.position_embedding import check_sequence_length
from keras_transformer.models.backbone import Backbone, GenerativeTask
from keras_transformer.models.generation import check_token_id
from keras_transformer.models.sizes import check_sizes

POSITION_ENCODINGS = ("sinusoidal", "learned")
ENCODER_INPUTS = ("encoder_token_ids", "encoder_padding_mask")
INPUT_NAMES = (*ENCODER_INPUTS, "decoder_token_ids", "decoder_padding_mask")


def seq2seq_inputs():
    """The named inputs of encoder-decoder models: int (B, S) and (B, T)."""
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}


@keras.saving.register_keras_serializable(package="keras_transformer")
class Seq2SeqBackbone(Backbone):
    """An encoder-decoder Transformer backbone: source in, decoder hidden states out.

    The encoder (bidirectional `TransformerEncoderBlock`s) reads the source; the decoder
    (`TransformerDecoderBlock`s with causal self-attention and cross attention to the encoder
    output) reads the target. Source and target share one vocabulary and one token embedding
    (tied to the task's output head), scaled by sqrt(H) as in the original paper.
    `call_with_cache` runs the decoder incrementally with a self-attention key/value cache
    and the cross-attention keys and values of `cross_attention_cache` (computed once per
    source). `cross_attention_weights` returns one decoder block's cross-attention weights
    (B, N, T, S), for inspection.

    Inputs are a dict: `"encoder_token_ids"`, `"encoder_padding_mask"` (B, S) and
    `"decoder_token_ids"`, `"decoder_padding_mask"` (B, T). Padded encoder positions are never
    attended to by cross attention; decoder position t never sees decoder positions > t.

    Args:
        vocabulary_size: int. Shared source/target vocabulary V.
        num_layers: int. Blocks in the encoder and in the decoder.
        num_heads, hidden_dim, intermediate_dim: as in the other models.
        max_sequence_length: int. Longest source or target. Defaults to `256`.
        dropout: float. Defaults to `0.1`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        activation: str. Defaults to `"relu"` (original Transformer).
        normalize_first: bool. Pre-norm blocks. Defaults to `False` (post-norm, original).
        position_encoding: `"sinusoidal"` (original) or `"learned"`. Defaults to
            `"sinusoidal"`.
        attention_chunk_size: int or None. Attention (self and cross) over longer sequences
            runs this many queries at a time, the weights recomputed in the backward pass
            (`MultiHeadAttention`). Defaults to `None` (plain attention).
        dtype: dtype policy.

    Returns:
        (B, T, H) decoder hidden states.

    Example:
    >>> backbone = Seq2SeqBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
    ...                            hidden_dim=16, intermediate_dim=32)
    >>> backbone({"encoder_token_ids": np.ones((2, 7), "int32"),
    ...           "encoder_padding_mask": np.ones((2, 7), "int32"),
    ...           "decoder_token_ids": np.ones((2, 5), "int32"),
    ...           "decoder_padding_mask": np.ones((2, 5), "int32")}).shape
    TensorShape([2, 5, 16])
    """

    CONFIG_KEYS = (
        "vocabulary_size",
        "num_layers",
        "num_heads",
        "hidden_dim",
        "intermediate_dim",
        "max_sequence_length",
        "dropout",
        "layer_norm_epsilon",
        "activation",
        "normalize_first",
        "position_encoding",
        "attention_chunk_size",
    )

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length=256,
        dropout=0.1,
        layer_norm_epsilon=1e-5,
        activation="relu",
        normalize_first=False,
        position_encoding="sinusoidal",
        attention_chunk_size=None,
        dtype=None,
        **kwargs,
    ):
        check_sizes(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            max_sequence_length=max_sequence_length,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
        )
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"`position_encoding` must be one of {POSITION_ENCODINGS}. "
                f"Received: {position_encoding!r}"
            )
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size, hidden_dim, dtype=dtype, name="token_embedding"
        )
        if position_encoding == "sinusoidal":
            self.encoder_position = SinusoidalPositionEncoding(dtype=dtype, name="positions")
            self.decoder_position = self.encoder_position
        else:
            self.encoder_position = PositionEmbedding(
                max_sequence_length, dtype=dtype, name="encoder_position_embedding"
            )
            self.decoder_position = PositionEmbedding(
                max_sequence_length, dtype=dtype, name="decoder_position_embedding"
            )
        self.embeddings_dropout = Dropout(dropout, dtype=dtype)
        block_args = {
            "dropout": dropout,
            "activation": activation,
            "layer_norm_epsilon": layer_norm_epsilon,
            "normalize_first": normalize_first,
            "attention_chunk_size": attention_chunk_size,
            "dtype": dtype,
        }
        self.encoder_blocks = [
            TransformerEncoderBlock(
                num_heads, intermediate_dim, name=f"encoder_block_{i}", **block_args
            )
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            TransformerDecoderBlock(
                num_heads,
                intermediate_dim,
                cross_attention=True,
                name=f"decoder_block_{i}",
                **block_args,
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = self.decoder_norm = None
        if normalize_first:  # pre-norm stacks end with a layer norm
            self.encoder_norm = LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="encoder_norm"
            )
            self.decoder_norm = LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="decoder_norm"
            )
        self._embedding_scale = math.sqrt(hidden_dim)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.normalize_first = normalize_first
        self.attention_chunk_size = attention_chunk_size
        self.position_encoding = position_encoding

        # === Functional model ===
        inputs = seq2seq_inputs()
        encoded = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        outputs = self.decode(
            inputs["decoder_token_ids"],
            encoded,
            inputs["encoder_padding_mask"],
            decoder_padding_mask=inputs["decoder_padding_mask"],
        )
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

    def _embed(self, token_ids, position_layer, start_index=0, training=None):
        x = self.token_embedding(token_ids) * self._embedding_scale  # (B, T, H)
        check_sequence_length(ops.shape(x)[1], self.max_sequence_length)
        x = x + position_layer(x, start_index=start_index)
        return self.embeddings_dropout(x, training=training)

    def encode(self, encoder_token_ids, encoder_padding_mask, training=None):
        """Encodes the source: (B, S) ids and padding mask -> (B, S, H)."""
        x = self._embed(encoder_token_ids, self.encoder_position, training=training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=encoder_padding_mask, training=training)
        return x if self.encoder_norm is None else self.encoder_norm(x)

    def decode(
        self,
        decoder_token_ids,
        encoder_sequence,
        encoder_padding_mask,
        decoder_padding_mask=None,
        training=None,
    ):
        """Decodes (B, T) target ids against the encoder output -> (B, T, H) hidden states.

        One full pass (teacher forcing); incremental decoding is `call_with_cache`.
        """
        x = self._embed(decoder_token_ids, self.decoder_position, training=training)
        for block in self.decoder_blocks:
            x = block(
                x,
                encoder_sequence=encoder_sequence,
                padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                training=training,
            )
        return x if self.decoder_norm is None else self.decoder_norm(x)

    def cross_attention_weights(
        self,
        encoder_token_ids,
        encoder_padding_mask,
        decoder_token_ids,
        decoder_padding_mask=None,
        layer=-1,
    ):
        """The cross-attention weights of one decoder block: which source tokens each target
        token attends to, e.g. for a heat map of output tokens x input tokens.

        Encodes the source and runs the decoder blocks `0 .. layer` on the whole target
        (teacher forcing, inference: no dropout), as `decode` does, and returns the softmax
        weights of block `layer`'s cross attention. Each row sums to 1 over the real source
        tokens and is 0 at padded source positions.

        Args:
            encoder_token_ids: int (B, S) source ids.
            encoder_padding_mask: (B, S), true at real source tokens.
            decoder_token_ids: int (B, T) decoder input ids (the target shifted right, after
                the start token).
            decoder_padding_mask: (B, T), true at real target tokens. Optional.
            layer: int. The decoder block, `0 .. num_layers - 1`, or negative to count from
                the last (`-1`, the default, is the last block).

        Returns:
            (B, N, T, S) weights of block `layer`'s cross attention.

        Example:
        >>> backbone = Seq2SeqBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
        ...                            hidden_dim=16, intermediate_dim=32)
        >>> backbone.cross_attention_weights(np.ones((1, 7), "int32"), np.ones((1, 7), bool),
        ...                                  np.ones((1, 5), "int32"), layer=0).shape
        TensorShape([1, 2, 5, 7])
        """
        num_layers = len(self.decoder_blocks)
        if (
            not isinstance(layer, int | np.integer)
            or isinstance(layer, bool)
            or not -num_layers <= layer < num_layers
        ):
            raise ValueError(
                f"`layer` must be an int in [{-num_layers}, {num_layers - 1}] (this model has "
                f"{num_layers} decoder blocks; negative counts from the last). "
                f"Received: layer={layer!r}"
            )
        layer = int(layer) % num_layers
        encoded = self.encode(encoder_token_ids, encoder_padding_mask, training=False)
        x = self._embed(decoder_token_ids, self.decoder_position, training=False)
        for block in self.decoder_blocks[: layer + 1]:
            x, scores = block(
                x,
                encoder_sequence=encoded,
                padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                training=False,
                return_attention_scores=True,
            )
        return scores["cross_attention"]  # (B, N, T, S)

    def empty_cache(self, batch_size, length):
        """A zero decoder key/value cache, (B, num_layers, 2, length, N, H/N), compute dtype."""
        head_dim = self.hidden_dim // self.num_heads
        shape = (batch_size, self.num_layers, 2, length, self.num_heads, head_dim)
        return ops.zeros(shape, dtype=self.decoder_blocks[0].compute_dtype)

    def cross_attention_cache(self, encoder_sequence):
        """Every decoder block's cross-attention keys and values of one encoded source.

        They depend on the source only: incremental decoding computes them once per source
        and passes them to each `call_with_cache` step.

        Args:
            encoder_sequence: (B, S, H), from `encode`.

        Returns:
            (B, num_layers, 2, S, N, H/N): keys then values, per block.
        """
        caches = []
        for block in self.decoder_blocks:
            attention = block.cross_attention_layer
            # The projections `attention` itself applies to its key and value inputs.
            keys = attention._project(encoder_sequence, attention.key_kernel, attention.key_bias)
            values = attention._project(
                encoder_sequence, attention.value_kernel, attention.value_bias
            )
            caches.append(ops.stack([keys, values], axis=1))  # (B, 2, S, N, H/N)
        return ops.stack(caches, axis=1)

    def call_with_cache(
        self,
        token_ids,
        cache,
        cache_update_index,
        cross_attention_cache,
        encoder_padding_mask,
    ):
        """Runs T new decoder tokens at positions `cache_update_index ..` against the caches.

        Self-attention writes the new tokens' keys and values into `cache` and attends over
        it (causally); cross attention reads the precomputed `cross_attention_cache`, so a
        step projects only its own tokens. Inference only (no dropout). Equal to the
        positions' rows of a full `decode` pass.

        The decoder rows may be K hypotheses per source (beam search): rows `b * K .. b * K
        + K - 1` decode source `b`, and their cross-attention queries are grouped by source
        (B, K * T, H) against that source's keys and values, which are neither repeated
        nor reordered as the beams are.

        Args:
            token_ids: int (B * K, T).
            cache: (B * K, num_layers, 2, T_max, N, H/N), from `empty_cache` or a previous
                call.
            cache_update_index: int or scalar tensor. Position of the first token.
            cross_attention_cache: (B, num_layers, 2, S, N, H/N), from
                `cross_attention_cache`.
            encoder_padding_mask: (B, S), true at real source tokens.

        Returns:
            `(hidden, cache)`: (B * K, T, H) decoder outputs and the updated cache.
        """
        x = self._embed(token_ids, self.decoder_position, cache_update_index, training=False)
        caches = []
        for i, block in enumerate(self.decoder_blocks):
            x, layer_cache = block(
                x,
                encoder_padding_mask=encoder_padding_mask,
                cache=cache[:, i, ...],
                cache_update_index=cache_update_index,
                cross_attention_cache=cross_attention_cache[:, i, ...],
                training=False,
            )
            caches.append(layer_cache)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return x, ops.stack(caches, axis=1)


@keras.saving.register_keras_serializable(package="keras_transformer")
class Seq2SeqTransformer(GenerativeTask):
    """Sequence-to-sequence task: a `Seq2SeqBackbone` and a `LanguageModelHead` tied to its
    shared token embedding.

    Predicts target token t+1 from the source and target tokens <= t. Training uses teacher
    forcing: the decoder input is the target shifted right (starting with a start token) and
    the labels are the target. `compile` defaults to AdamW (lr 1e-3, weight decay 0.01),
    from-logits cross-entropy and accuracy weighted by the sample weights. `generate`
    decodes from a start token (greedy, sampling or beam search) in one `tf.while_loop`:
    the encoder runs once, the cross-attention keys and values are projected once, and each
    step runs one token through the decoder with its self-attention key/value cache.

    Inputs are the backbone's dict (`"encoder_token_ids"`, `"encoder_padding_mask"`,
    `"decoder_token_ids"`, `"decoder_padding_mask"`).

    Args:
        backbone: `Seq2SeqBackbone`.

    Returns:
        (B, T, V) logits.

    Example:
    >>> model = Seq2SeqTransformer(Seq2SeqBackbone(vocabulary_size=100, num_layers=2,
    ...     num_heads=2, hidden_dim=16, intermediate_dim=32))
    >>> model.generate({"encoder_token_ids": np.ones((2, 7), "int32"),
    ...                 "encoder_padding_mask": np.ones((2, 7), "int32")},
    ...                start_token=1, max_new_tokens=5, num_beams=3)["token_ids"].shape
    (2, 6)
    """

    LEARNING_RATE = 1e-3
    WEIGHTED_ACCURACY = True

    def __init__(self, backbone, **kwargs):
        inputs = seq2seq_inputs()
        self.lm_head = self.tied_lm_head(backbone)
        logits = self.lm_head(backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def generate_inputs(self, inputs, max_new_tokens):
        """`(encoder_inputs, start_token)` -> the encoder arrays and a decoder buffer.

        The decoder buffer is (B, 1 + max_new_tokens): the start token, then room.
        """
        encoder_inputs, start_token = inputs
        if not isinstance(encoder_inputs, dict) or set(ENCODER_INPUTS) - set(encoder_inputs):
            is_dict = isinstance(encoder_inputs, dict)
            received = sorted(encoder_inputs) if is_dict else encoder_inputs
            raise ValueError(
                f"`encoder_inputs` must be a dict with {list(ENCODER_INPUTS)}. "
                f"Received: {received!r}"
            )
        check_token_id(start_token, "start_token", self.backbone.vocabulary_size)
        limit = self.backbone.max_sequence_length
        if 1 + max_new_tokens > limit:
            raise ValueError(
                f"1 (the start token) + max_new_tokens {max_new_tokens} exceeds the model's "
                f"max_sequence_length={limit}. Ask for at most {limit - 1} new tokens."
            )
        token_ids = np.asarray(encoder_inputs["encoder_token_ids"]).astype("int32")
        padding_mask = np.asarray(encoder_inputs["encoder_padding_mask"]).astype(bool)
        if token_ids.ndim != 2 or token_ids.shape != padding_mask.shape:
            raise ValueError(
                "`encoder_token_ids` and `encoder_padding_mask` must both be (B, S). Received "
                f"shapes {token_ids.shape} and {padding_mask.shape}."
            )
        batch_size = token_ids.shape[0]
        decoder_token_ids = np.zeros((batch_size, 1 + max_new_tokens), "int32")
        decoder_token_ids[:, 0] = start_token
        decoder_padding_mask = np.zeros(decoder_token_ids.shape, bool)
        decoder_padding_mask[:, 0] = True
        return {
            "encoder_token_ids": token_ids,
            "encoder_padding_mask": padding_mask,
            "decoder_token_ids": decoder_token_ids,
            "decoder_padding_mask": decoder_padding_mask,
        }

    def start_decoding(self, inputs):
        """Encodes the source and projects its cross-attention keys and values, once; the
        step runs the decoder on one token against the caches.

        Only the self-attention cache is decoding state (beam search repeats and reorders
        it with the beams); the step reads the source's cross-attention keys and values and
        padding mask as they are, one copy per source.
        """
        encoder_padding_mask = tf.cast(inputs["encoder_padding_mask"], tf.bool)
        encoded = self.backbone.encode(
            tf.cast(inputs["encoder_token_ids"], tf.int32), encoder_padding_mask, training=False
        )  # (B, S, H), once per source
        cross_cache = self.backbone.cross_attention_cache(encoded)  # (B, layers, 2, S, N, H/N)
        token_ids = tf.cast(inputs["decoder_token_ids"], tf.int32)
        cache = self.backbone.empty_cache(tf.shape(token_ids)[0], tf.shape(token_ids)[1])

        def next_logits(token_ids, cache, index):
            hidden, cache = self.backbone.call_with_cache(
                token_ids, cache, index, cross_cache, encoder_padding_mask
            )
            return self.lm_head(hidden)[:, 0, :], cache

        return next_logits, token_ids, inputs["decoder_padding_mask"], cache

    def generate(
        self,
        encoder_inputs,
        start_token,
        max_new_tokens=32,
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seed=None,
        end_token=None,
        num_beams=1,
        length_penalty=1.0,
    ):
        """Generates a target for each source, from `start_token`, up to `max_new_tokens`.

        Args:
            encoder_inputs: dict with `"encoder_token_ids"` and `"encoder_padding_mask"`
                (B, S).
            start_token: int. The id the decoder starts from (given per call).
            max_new_tokens, temperature, top_k, top_p, seed, end_token, num_beams,
                length_penalty: as in `GenerativeTask.generate`.

        Returns:
            A dict of numpy arrays: `token_ids` and `padding_mask` (B, 1 + max_new_tokens),
            the start token followed by the generated tokens, and `scores` (B,).
        """
        return super().generate(
            (encoder_inputs, start_token),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            end_token=end_token,
            num_beams=num_beams,
            length_penalty=length_penalty,
        )
