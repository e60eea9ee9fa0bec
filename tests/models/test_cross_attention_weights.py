"""Attention weights of the decoder: `TransformerDecoderBlock(return_attention_scores=True)`
and `Seq2SeqBackbone.cross_attention_weights` (the source-target heat map)."""

import numpy as np
import pytest
from model_checks import assert_close

from keras_transformer.layers import TransformerDecoderBlock
from keras_transformer.models import Seq2SeqBackbone

V = 30
RNG = np.random.default_rng(11)
SOURCE_LENGTHS = (7, 4)


def random_backbone(normalize_first=True):
    """A tiny backbone whose weights are moved far from their small initial values, so its
    attention weights are far from uniform."""
    backbone = Seq2SeqBackbone(
        vocabulary_size=V,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
        dropout=0.0,
        normalize_first=normalize_first,
    )
    backbone.set_weights(
        [w + RNG.normal(0.0, 0.5, w.shape).astype(w.dtype) for w in backbone.get_weights()]
    )
    return backbone


def batch(target_width=5):
    width = 7
    source_mask = np.arange(width)[None, :] < np.array(SOURCE_LENGTHS)[:, None]
    return {
        "encoder_token_ids": np.where(source_mask, RNG.integers(3, V, (2, width)), 0),
        "encoder_padding_mask": source_mask,
        "decoder_token_ids": RNG.integers(3, V, (2, target_width)),
        "decoder_padding_mask": np.ones((2, target_width), bool),
    }


def layer_norm(x, norm):
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    normed = (x - mean) / np.sqrt(variance + norm.epsilon)
    return normed * np.asarray(norm.gamma) + np.asarray(norm.beta)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def project(x, kernel, bias):
    return np.einsum("bth,hnd->btnd", x, np.asarray(kernel)) + np.asarray(bias)


def hand_cross_attention_weights(backbone, inputs, layer):
    """Block `layer`'s cross-attention weights of a pre-norm backbone, from its kernels:
    softmax(q kᵀ / sqrt(d)) over the real source tokens, q from the cross-attention-normed
    decoder stream, k from the encoder output."""
    source_mask = inputs["encoder_padding_mask"]
    encoded = np.asarray(
        backbone.encode(inputs["encoder_token_ids"], source_mask, training=False)
    )  # (B, S, H)
    x = np.asarray(
        backbone._embed(inputs["decoder_token_ids"], backbone.decoder_position, training=False)
    )
    for block in backbone.decoder_blocks[:layer]:
        x = np.asarray(
            block(
                x,
                encoder_sequence=encoded,
                padding_mask=inputs["decoder_padding_mask"],
                encoder_padding_mask=source_mask,
                training=False,
            )
        )
    block = backbone.decoder_blocks[layer]
    normed = layer_norm(x, block.attention_norm)
    x = x + np.asarray(
        block.self_attention(
            normed, normed, value_mask=inputs["decoder_padding_mask"], use_causal_mask=True
        )
    )  # pre-norm residual around causal self-attention
    attention = block.cross_attention_layer
    q = project(
        layer_norm(x, block.cross_attention_norm), attention.query_kernel, attention.query_bias
    )  # (B, T, N, D)
    k = project(encoded, attention.key_kernel, attention.key_bias)  # (B, S, N, D)
    logits = np.einsum("btnd,bsnd->bnts", q, k) / np.sqrt(q.shape[-1])  # (B, N, T, S)
    logits = np.where(source_mask[:, None, None, :], logits, -np.inf)
    return softmax(logits)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_rows_sum_to_one_over_real_source_tokens_and_padding_gets_zero(normalize_first):
    backbone = random_backbone(normalize_first)
    inputs = batch()
    for layer in (0, 1, -1):
        weights = np.asarray(backbone.cross_attention_weights(**inputs, layer=layer))
        assert weights.shape == (2, 2, 5, 7)  # (B, N, T, S)
        for row, length in enumerate(SOURCE_LENGTHS):
            assert_close(weights[row, ..., :length].sum(-1), np.ones((2, 5)))
            assert np.all(weights[row, ..., length:] == 0.0)
        assert weights.max() > 0.4  # far from uniform (at most 1/4 here): peaked rows


@pytest.mark.parametrize("layer", [0, 1, -1, -2])
def test_weights_equal_a_hand_computation_from_the_kernels(layer):
    backbone = random_backbone(normalize_first=True)
    inputs = batch()
    expected = hand_cross_attention_weights(backbone, inputs, layer % 2)
    actual = np.asarray(backbone.cross_attention_weights(**inputs, layer=layer))
    assert_close(actual, expected, atol=1e-5)


def test_layers_differ_and_last_is_the_default():
    backbone = random_backbone()
    inputs = batch()
    last = np.asarray(backbone.cross_attention_weights(**inputs))
    assert_close(last, backbone.cross_attention_weights(**inputs, layer=1), atol=0)
    assert not np.allclose(last, backbone.cross_attention_weights(**inputs, layer=0), atol=1e-3)


@pytest.mark.parametrize("layer", [2, -3, 1.0, True, "last"])
def test_layer_out_of_range_raises(layer):
    backbone = random_backbone()
    with pytest.raises(ValueError, match=r"in \[-2, 1\].*Received: layer="):
        backbone.cross_attention_weights(**batch(), layer=layer)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_block_outputs_with_scores_equal_outputs_without(normalize_first):
    x = RNG.normal(size=(2, 4, 8)).astype("float32")
    encoded = RNG.normal(size=(2, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    block = TransformerDecoderBlock(2, 16, cross_attention=True, normalize_first=normalize_first)
    plain = np.asarray(block(x, encoder_sequence=encoded, encoder_padding_mask=mask))
    outputs, scores = block(
        x, encoder_sequence=encoded, encoder_padding_mask=mask, return_attention_scores=True
    )
    np.testing.assert_array_equal(np.asarray(outputs), plain)
    assert sorted(scores) == ["cross_attention", "self_attention"]
    self_weights = np.asarray(scores["self_attention"])  # (B, N, T, T), causal
    assert self_weights.shape == (2, 2, 4, 4)
    assert_close(self_weights.sum(-1), np.ones((2, 2, 4)))
    assert np.all(self_weights[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] == 0)
    cross = np.asarray(scores["cross_attention"])  # (B, N, T, S)
    assert cross.shape == (2, 2, 4, 6)
    assert np.all(cross[1, ..., 3:] == 0) and np.all(cross[0] > 0)

    no_cross = TransformerDecoderBlock(2, 16, normalize_first=normalize_first)
    plain = np.asarray(no_cross(x))
    outputs, scores = no_cross(x, return_attention_scores=True)
    np.testing.assert_array_equal(np.asarray(outputs), plain)
    assert list(scores) == ["self_attention"]


def test_block_scores_with_cache_raise():
    block = TransformerDecoderBlock(2, 16)
    x = RNG.normal(size=(1, 1, 8)).astype("float32")
    cache = np.zeros((1, 2, 3, 2, 4), "float32")
    with pytest.raises(ValueError, match="not supported with a `cache`"):
        block(x, cache=cache, cache_update_index=0, return_attention_scores=True)
