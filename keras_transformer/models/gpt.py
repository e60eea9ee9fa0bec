"""GPT-style models: a causal decoder backbone and a causal language model with generation."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_transformer.layers import (
    Dropout,
    LayerNormalization,
    PositionEmbedding,
    TokenEmbedding,
    TransformerDecoderBlock,
)
from keras_transformer.models.backbone import Backbone, GenerativeTask
from keras_transformer.models.generation import pad_prompts
from keras_transformer.models.sizes import check_sizes


def causal_lm_inputs():
    """The named inputs of causal LMs: token_ids and padding_mask, int (B, T)."""
    return {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
    }


@keras.saving.register_keras_serializable(package="keras_transformer")
class GPTBackbone(Backbone):
    """A GPT-2-style decoder-only Transformer: causal self-attention, pre-norm blocks.

    Token + learned position embeddings and dropout, `num_layers` pre-norm
    `TransformerDecoderBlock`s with causal self-attention (no cross attention), then a final
    layer norm. Position t only sees positions <= t, so changing a later token never changes an
    earlier output. `call_with_cache` runs the same layers incrementally with a key/value cache.

    Inputs are a dict: `"token_ids"` int (B, T) and `"padding_mask"` (B, T), 1 at real tokens.

    Args:
        vocabulary_size: int. V.
        num_layers: int. Number of decoder blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        hidden_dim: int. Width H.
        intermediate_dim: int. Feed-forward inner width.
        max_sequence_length: int. Longest sequence (context length). Defaults to `1024`.
        dropout: float. Defaults to `0.1`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        activation: str. Feed-forward activation. Defaults to `"gelu_approximate"` (GPT-2).
        attention_chunk_size: int or None. Self-attention over longer sequences runs this many
            queries at a time, with the weights recomputed in the backward pass
            (`MultiHeadAttention`): training memory of attention grows with T instead of T².
            Defaults to `None` (plain attention).
        dtype: dtype policy. Defaults to the global policy.

    Returns:
        (B, T, H) tensor.

    Example:
    >>> backbone = GPTBackbone.from_size("tiny", vocabulary_size=1000, max_sequence_length=64)
    >>> backbone({"token_ids": np.ones((2, 8), "int32"),
    ...           "padding_mask": np.ones((2, 8), "int32")}).shape
    TensorShape([2, 8, 128])
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
        "attention_chunk_size",
    )

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length=1024,
        dropout=0.1,
        layer_norm_epsilon=1e-5,
        activation="gelu_approximate",
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
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size, hidden_dim, dtype=dtype, name="token_embedding"
        )
        self.position_embedding = PositionEmbedding(
            max_sequence_length, dtype=dtype, name="position_embedding"
        )
        self.embeddings_dropout = Dropout(dropout, dtype=dtype)
        self.transformer_blocks = [
            TransformerDecoderBlock(
                num_heads,
                intermediate_dim,
                dropout=dropout,
                activation=activation,
                layer_norm_epsilon=layer_norm_epsilon,
                attention_chunk_size=attention_chunk_size,
                normalize_first=True,
                dtype=dtype,
                name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )

        # === Functional model ===
        inputs = causal_lm_inputs()
        x = self.token_embedding(inputs["token_ids"])  # (B, T, H)
        x = self.embeddings_dropout(x + self.position_embedding(x))
        for block in self.transformer_blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        outputs = self.final_norm(x)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

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
        self.attention_chunk_size = attention_chunk_size

    def empty_cache(self, batch_size, length):
        """A zero key/value cache, (B, num_layers, 2, length, N, H/N), in the compute dtype."""
        head_dim = self.hidden_dim // self.num_heads
        shape = (batch_size, self.num_layers, 2, length, self.num_heads, head_dim)
        return ops.zeros(shape, dtype=self.transformer_blocks[0].compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Runs T new tokens at positions `cache_update_index ..` against the cache.

        Args:
            token_ids: int (B, T).
            cache: (B, num_layers, 2, S_max, N, H/N), from `empty_cache` or a previous call.
            cache_update_index: int or scalar tensor. Position of the first token.

        Returns:
            `(hidden, cache)`: (B, T, H) outputs and the updated cache.
        """
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding(x, start_index=cache_update_index)
        caches = []
        for i, block in enumerate(self.transformer_blocks):
            x, layer_cache = block(
                x, cache=cache[:, i, ...], cache_update_index=cache_update_index, training=False
            )
            caches.append(layer_cache)
        return self.final_norm(x), ops.stack(caches, axis=1)


@keras.saving.register_keras_serializable(package="keras_transformer")
class GPTCausalLM(GenerativeTask):
    """Causal language model: a `GPTBackbone` and a `LanguageModelHead` tied to its embedding.

    Predicts token t+1 from tokens <= t at every position. Train with targets = inputs shifted
    by one and sample weights = the padding mask (see `keras_transformer.data.pipelines`).
    `compile` defaults to AdamW (lr 3e-4, weight decay 0.01), from-logits cross-entropy and
    accuracy weighted by the sample weights. `generate` continues prompts (greedy, sampling
    or beam search) with the key/value cache, in one `tf.while_loop`.

    Args:
        backbone: `GPTBackbone`.

    Returns:
        (B, T, V) logits.

    Example:
    >>> model = GPTCausalLM(GPTBackbone.from_size("tiny", vocabulary_size=100,
    ...                                           max_sequence_length=64))
    >>> model.generate([[1, 2, 3]], max_new_tokens=5)["token_ids"].shape
    (1, 8)
    >>> model.generate([[1, 2, 3]], max_new_tokens=5, num_beams=4, end_token=2)["scores"].shape
    (1,)
    """

    LEARNING_RATE = 3e-4
    WEIGHTED_ACCURACY = True

    def __init__(self, backbone, **kwargs):
        inputs = causal_lm_inputs()
        self.lm_head = self.tied_lm_head(backbone)
        logits = self.lm_head(backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def generate_inputs(self, prompts, max_new_tokens):
        """Prompts -> `token_ids`, `padding_mask` (B, T + max_new_tokens), right-padded.

        Args:
            prompts: a list of lists of token ids (any lengths), a (B, T) array, or a dict
                with right-padded `"token_ids"` and `"padding_mask"`.
            max_new_tokens: int.
        """
        token_ids, padding_mask = pad_prompts(prompts)
        total = token_ids.shape[1] + max_new_tokens
        limit = self.backbone.max_sequence_length
        if total > limit:
            raise ValueError(
                f"Prompt length {token_ids.shape[1]} + max_new_tokens {max_new_tokens} = {total} "
                f"exceeds the model's max_sequence_length={limit}. Shorten the prompt or ask "
                "for fewer tokens."
            )
        pad = ((0, 0), (0, max_new_tokens))
        return {"token_ids": np.pad(token_ids, pad), "padding_mask": np.pad(padding_mask, pad)}

    def start_decoding(self, inputs):
        """Prefills the cache with the whole (B, L) buffer; the step feeds one token."""
        token_ids = tf.cast(inputs["token_ids"], tf.int32)
        padding_mask = tf.cast(inputs["padding_mask"], tf.bool)
        cache = self.backbone.empty_cache(tf.shape(token_ids)[0], tf.shape(token_ids)[1])
        _, cache = self.backbone.call_with_cache(token_ids, cache, 0)  # prefill

        def next_logits(token_ids, cache, index):
            hidden, cache = self.backbone.call_with_cache(token_ids, cache, index)
            return self.lm_head(hidden)[:, 0, :], cache  # (B, V)

        return next_logits, token_ids, padding_mask, cache

    def generate(
        self,
        prompts,
        max_new_tokens=32,
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seed=None,
        end_token=None,
        num_beams=1,
        length_penalty=1.0,
    ):
        """Continues each prompt: the buffer is the longest prompt + `max_new_tokens`.

        Each row is generated in place after its own prompt, to the buffer's end (a shorter
        prompt gets more new tokens), or until `end_token`.

        Args:
            prompts: a list of lists of token ids (any lengths), a (B, T) array, or a dict with
                right-padded `"token_ids"` and `"padding_mask"`.
            max_new_tokens, temperature, top_k, top_p, seed, end_token, num_beams,
                length_penalty: as in `GenerativeTask.generate`.

        Returns:
            A dict of numpy arrays: `token_ids` and `padding_mask` (B, T + max_new_tokens),
            the prompts followed by the generated tokens, and `scores` (B,).
        """
        return super().generate(
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            end_token=end_token,
            num_beams=num_beams,
            length_penalty=length_penalty,
        )
