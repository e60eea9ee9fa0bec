"""Encoder-decoder Transformer ("Attention Is All You Need") with cross attention."""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_transformer.layers import (
    Dropout,
    LanguageModelHead,
    LayerNormalization,
    PositionEmbedding,
    SinusoidalPositionEncoding,
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_transformer.layers.position_embedding import check_sequence_length
from keras_transformer.models.backbone import Backbone
from keras_transformer.models.generation import sample_next_token, sampler_settings
from keras_transformer.models.sizes import check_sizes

POSITION_ENCODINGS = ("sinusoidal", "learned")


@keras.saving.register_keras_serializable(package="keras_transformer")
class Seq2SeqTransformer(Backbone):
    """An encoder-decoder Transformer for sequence-to-sequence tasks.

    The encoder (bidirectional `TransformerEncoderBlock`s) reads the source; the decoder
    (`TransformerDecoderBlock`s with causal self-attention and cross attention to the encoder
    output) predicts the target one token ahead. Source and target share one vocabulary and one
    token embedding, tied to the output head, scaled by sqrt(H) as in the original paper.
    Training uses teacher forcing: the decoder input is the target shifted right (starting
    with a start token) and the labels are the target. `generate` decodes with a key/value cache.

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
        dtype: dtype policy.

    Returns:
        (B, T, V) logits.
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
        self.lm_head = LanguageModelHead(
            vocabulary_size, token_embedding=self.token_embedding, dtype=dtype, name="lm_head"
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
        self.position_encoding = position_encoding
        self._generate_function = None

        # === Functional model ===
        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in (
                "encoder_token_ids",
                "encoder_padding_mask",
                "decoder_token_ids",
                "decoder_padding_mask",
            )
        }
        encoded = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        logits = self.decode(
            inputs["decoder_token_ids"],
            encoded,
            inputs["encoder_padding_mask"],
            decoder_padding_mask=inputs["decoder_padding_mask"],
        )
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)

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
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        """Decodes (B, T) target ids against the encoder output -> (B, T, V) logits.

        With `cache` (B, num_layers, 2, T_max, N, H/N) and `cache_update_index`, runs the new
        tokens incrementally and returns `(logits, cache)`.
        """
        start = 0 if cache_update_index is None else cache_update_index
        x = self._embed(decoder_token_ids, self.decoder_position, start, training=training)
        caches = []
        for i, block in enumerate(self.decoder_blocks):
            outputs = block(
                x,
                encoder_sequence=encoder_sequence,
                padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                cache=None if cache is None else cache[:, i, ...],
                cache_update_index=cache_update_index,
                training=training,
            )
            if cache is None:
                x = outputs
            else:
                x, layer_cache = outputs
                caches.append(layer_cache)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        logits = self.lm_head(x)
        return logits if cache is None else (logits, ops.stack(caches, axis=1))

    def compile(self, optimizer="auto", loss="auto", weighted_metrics="auto", **kwargs):
        """Compiles with AdamW (lr 1e-3), from-logits cross-entropy and weighted accuracy."""
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.01)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics, **kwargs)

    def generate_ids(
        self,
        encoder_token_ids,
        encoder_padding_mask,
        max_length,
        start_token_id,
        end_token_id,
        temperature,
        top_k,
        top_p,
        seed,
    ):
        """The decoding loop in graph ops: returns (B, max_length) ids and mask, start first."""
        encoded = self.encode(encoder_token_ids, encoder_padding_mask, training=False)
        batch_size = tf.shape(encoder_token_ids)[0]
        head_dim = self.hidden_dim // self.num_heads
        cache = tf.zeros(
            [batch_size, self.num_layers, 2, max_length, self.num_heads, head_dim],
            dtype=self.decoder_blocks[0].compute_dtype,
        )
        token_ids = tf.concat(
            [
                tf.fill([batch_size, 1], tf.cast(start_token_id, tf.int32)),
                tf.zeros([batch_size, max_length - 1], tf.int32),
            ],
            axis=1,
        )
        mask = tf.concat(
            [tf.ones([batch_size, 1], tf.bool), tf.zeros([batch_size, max_length - 1], tf.bool)],
            axis=1,
        )

        def keep_going(index, token_ids, mask, cache, done):
            return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(done)))

        def step(index, token_ids, mask, cache, done):
            previous = token_ids[:, index - 1 : index]
            logits, cache = self.decode(
                previous,
                encoded,
                encoder_padding_mask,
                cache=cache,
                cache_update_index=index - 1,
                training=False,
            )
            step_seed = tf.stack([seed[0], seed[1] + index])
            sampled = sample_next_token(logits[:, 0, :], temperature, top_k, top_p, step_seed)
            active = tf.logical_not(done)
            new = tf.where(active, sampled, 0)
            done = tf.logical_or(done, tf.logical_and(active, tf.equal(new, end_token_id)))
            token_ids = ops.slice_update(token_ids, [0, index], new[:, tf.newaxis])
            mask = ops.slice_update(mask, [0, index], active[:, tf.newaxis])
            return index + 1, token_ids, mask, cache, done

        done = tf.zeros([batch_size], tf.bool)
        _, token_ids, mask, _, _ = tf.while_loop(
            keep_going, step, (tf.constant(1), token_ids, mask, cache, done)
        )
        return token_ids, mask

    def generate(
        self,
        encoder_inputs,
        start_token_id,
        end_token_id=None,
        max_length=32,
        sampler="greedy",
        temperature=1.0,
        top_k=50,
        top_p=0.9,
        seed=None,
    ):
        """Translates each source: decodes up to `max_length` target tokens (start included).

        Args:
            encoder_inputs: dict with `"encoder_token_ids"` and `"encoder_padding_mask"`.
            start_token_id: int. The first decoder token.
            end_token_id: int or `None`. A row stops after it.
            max_length: int. Target length including the start token.
            sampler, temperature, top_k, top_p, seed: as in `GPTCausalLM.generate`.

        Returns:
            dict of numpy arrays `"token_ids"` and `"padding_mask"`, (B, max_length).
        """
        if not isinstance(max_length, int) or not 1 < max_length <= self.max_sequence_length:
            raise ValueError(
                f"`max_length` must be an integer in [2, {self.max_sequence_length}]. "
                f"Received: {max_length}"
            )
        temperature, top_k, top_p = sampler_settings(sampler, temperature, top_k, top_p)
        if seed is None:
            seed = np.random.randint(0, 2**31 - 1)
        if self._generate_function is None:
            self._generate_function = tf.function(self.generate_ids, reduce_retracing=True)
        ids, mask = self._generate_function(
            tf.constant(np.asarray(encoder_inputs["encoder_token_ids"]), tf.int32),
            tf.constant(np.asarray(encoder_inputs["encoder_padding_mask"]).astype(bool)),
            tf.constant(max_length),
            tf.constant(start_token_id),
            tf.constant(-1 if end_token_id is None else end_token_id),
            tf.constant(temperature, tf.float32),
            tf.constant(top_k),
            tf.constant(top_p, tf.float32),
            tf.constant([seed, 0], tf.int32),
        )
        return {"token_ids": ids.numpy(), "padding_mask": mask.numpy()}
