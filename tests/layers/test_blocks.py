import numpy as np
import pytest
from layer_checks import assert_close, run_layer_checks, run_mixed_precision

from keras_transformer.layers import (
    FeedForward,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)

RNG = np.random.default_rng(1)


def random(*shape):
    return RNG.normal(size=shape).astype("float32")


def test_feed_forward_checks():
    x = random(2, 3, 8)
    run_layer_checks(FeedForward, {"intermediate_dim": 16, "dropout": 0.1}, [x], num_weights=4)
    run_mixed_precision(FeedForward, {"intermediate_dim": 16}, [x])


def test_feed_forward_hand_example():
    layer = FeedForward(intermediate_dim=2, activation="relu")
    x = np.array([[[1.0, -2.0]]], "float32")
    layer(x)
    w1 = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")  # identity then relu -> [1, 0]
    w2 = np.array([[2.0, 0.0], [0.0, 3.0]], "float32")
    layer.set_weights([w1, np.zeros(2, "float32"), w2, np.array([0.5, 0.5], "float32")])
    assert_close(layer(x)[0, 0], [2.5, 0.5])


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_block_checks(normalize_first):
    x = random(2, 5, 8)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], "int32")
    kwargs = {"num_heads": 2, "intermediate_dim": 16, "normalize_first": normalize_first}
    run_layer_checks(TransformerEncoderBlock, kwargs, [x], num_weights=16)
    run_layer_checks(TransformerEncoderBlock, kwargs, [x, mask])
    run_mixed_precision(TransformerEncoderBlock, kwargs, [x], {"padding_mask": mask})


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_padding_never_changes_real_outputs(normalize_first):
    block = TransformerEncoderBlock(2, 16, normalize_first=normalize_first)
    x = random(2, 6, 8)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], bool)
    before = np.asarray(block(x, padding_mask=mask))
    changed = np.where(mask[..., None], x, random(2, 6, 8) * 10)
    after = np.asarray(block(changed, padding_mask=mask))
    assert_close(after[mask], before[mask])
    # More padding appended changes nothing either.
    longer = np.concatenate([x, random(2, 3, 8)], axis=1)
    longer_mask = np.concatenate([mask, np.zeros((2, 3), bool)], axis=1)
    assert_close(np.asarray(block(longer, padding_mask=longer_mask))[:, :6][mask], before[mask])


def test_pre_and_post_norm_differ():
    x = random(1, 4, 8)
    post = TransformerEncoderBlock(2, 16, normalize_first=False)
    pre = TransformerEncoderBlock(2, 16, normalize_first=True)
    post(x)
    pre(x)
    pre.set_weights(post.get_weights())
    assert not np.allclose(pre(x), post(x))
    # Post-norm output is layer-normalised (mean 0, variance 1 per position).
    out = np.asarray(post(x))
    assert_close(out.mean(-1), np.zeros((1, 4)), atol=1e-5)
    assert_close(out.var(-1), np.ones((1, 4)), atol=1e-3)


def test_decoder_block_checks():
    x, encoded = random(2, 4, 8), random(2, 6, 8)
    run_layer_checks(
        TransformerDecoderBlock, {"num_heads": 2, "intermediate_dim": 16}, [x], num_weights=16
    )
    kwargs = {"num_heads": 2, "intermediate_dim": 16, "cross_attention": True}
    run_layer_checks(TransformerDecoderBlock, kwargs, [x, encoded], num_weights=26)
    run_mixed_precision(TransformerDecoderBlock, kwargs, [x], {"encoder_sequence": encoded})


def test_decoder_is_causal():
    block = TransformerDecoderBlock(2, 16, normalize_first=True)
    x = random(1, 6, 8)
    before = np.asarray(block(x))
    for t in range(5):
        changed = x.copy()
        changed[:, t + 1 :] = random(1, 5 - t, 8)
        assert_close(np.asarray(block(changed))[:, : t + 1], before[:, : t + 1])


def test_cross_attention_ignores_padded_encoder_positions():
    block = TransformerDecoderBlock(2, 16, cross_attention=True)
    x, encoded = random(2, 4, 8), random(2, 6, 8)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    before = block(x, encoder_sequence=encoded, encoder_padding_mask=mask)
    changed = np.where(mask[..., None], encoded, random(2, 6, 8) * 10)
    assert_close(block(x, encoder_sequence=changed, encoder_padding_mask=mask), before)


def test_decoder_cache_equals_full_pass():
    block = TransformerDecoderBlock(2, 16, cross_attention=True)
    x, encoded = random(2, 5, 8), random(2, 3, 8)
    full = np.asarray(block(x, encoder_sequence=encoded))
    cache = np.zeros((2, 2, 5, 2, 4), "float32")
    steps = []
    for t in range(5):
        out, cache = block(
            x[:, t : t + 1], encoder_sequence=encoded, cache=cache, cache_update_index=t
        )
        steps.append(np.asarray(out))
    assert_close(np.concatenate(steps, axis=1), full)


def test_cross_attention_cache_with_beams_equals_the_encoder_sequence():
    """Keys and values projected once per source, read by K = 3 hypotheses of each of 2
    sources, step by step: the outputs of passing each hypothesis its source's sequence."""
    block = TransformerDecoderBlock(2, 16, cross_attention=True)
    encoded, mask = random(2, 4, 8), np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    x = random(6, 5, 8)  # rows 0-2 decode source 0, rows 3-5 source 1
    repeated, repeated_mask = np.repeat(encoded, 3, axis=0), np.repeat(mask, 3, axis=0)
    full = np.asarray(block(x, encoder_sequence=repeated, encoder_padding_mask=repeated_mask))
    attention = block.cross_attention_layer
    keys = attention._project(encoded, attention.key_kernel, attention.key_bias)
    values = attention._project(encoded, attention.value_kernel, attention.value_bias)
    cross_cache = np.stack([keys, values], axis=1)  # (2, 2, S, N, H/N)
    cache, steps = np.zeros((6, 2, 5, 2, 4), "float32"), []
    for t in range(5):
        out, cache = block(x[:, t : t + 1], encoder_padding_mask=mask, cache=cache,
                           cache_update_index=t, cross_attention_cache=cross_cache)  # fmt: skip
        steps.append(np.asarray(out))
    assert_close(np.concatenate(steps, axis=1), full)
    with pytest.raises(ValueError, match="not both"):
        block(x, encoder_sequence=repeated, cross_attention_cache=cross_cache)


def test_decoder_cross_attention_arguments():
    x = random(1, 2, 8)
    with pytest.raises(ValueError, match="cross_attention=True"):
        TransformerDecoderBlock(2, 16, cross_attention=True)(x)
    with pytest.raises(ValueError, match="no cross attention"):
        TransformerDecoderBlock(2, 16)(x, encoder_sequence=x)


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="hidden_dim=10, num_heads=3"):
        TransformerEncoderBlock(3, 16)(random(1, 2, 10))
