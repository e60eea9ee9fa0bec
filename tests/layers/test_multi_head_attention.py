import keras
import numpy as np
import pytest
from layer_checks import assert_close, run_layer_checks, run_mixed_precision

from keras_transformer.layers import MultiHeadAttention, compute_causal_mask

RNG = np.random.default_rng(0)


def random(*shape):
    return RNG.normal(size=shape).astype("float32")


def pair(num_heads=4, key_dim=4, query=None, value=None, **kwargs):
    """Ours and Keras', built on the same inputs, with Keras' weights copied into ours."""
    theirs = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, **kwargs)
    ours = MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, **kwargs)
    theirs(query, value)
    ours(query, value)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def test_standard_checks():
    x = random(2, 5, 16)
    run_layer_checks(
        MultiHeadAttention, {"num_heads": 4, "key_dim": 4, "dropout": 0.1}, [x, x], num_weights=8
    )
    run_mixed_precision(MultiHeadAttention, {"num_heads": 4, "key_dim": 4}, [x, x])


@pytest.mark.parametrize("masking", ["none", "attention_mask", "padding", "causal", "all"])
def test_equals_keras_multi_head_attention(masking):
    query, value = random(3, 6, 16), random(3, 6, 16)
    ours, theirs = pair(query=query, value=value)
    kwargs = {}
    if masking in ("attention_mask", "all"):
        kwargs["attention_mask"] = RNG.random((3, 6, 6)) > 0.3
        kwargs["attention_mask"][:, :, 0] = True  # no fully masked rows
    if masking in ("padding", "all"):
        kwargs["query_mask"] = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
        kwargs["value_mask"] = kwargs["query_mask"]
    if masking in ("causal", "all"):
        kwargs["use_causal_mask"] = True
    out_ours, w_ours = ours(query, value, return_attention_scores=True, **kwargs)
    out_theirs, w_theirs = theirs(query, value, return_attention_scores=True, **kwargs)
    rows = np.ones((3, 6), bool) if "query_mask" not in kwargs else kwargs["query_mask"]
    assert_close(np.asarray(out_ours)[rows], np.asarray(out_theirs)[rows])
    assert_close(
        np.asarray(w_ours)[rows[:, None, :].repeat(4, 1)],
        np.asarray(w_theirs)[rows[:, None, :].repeat(4, 1)],
    )


def test_cross_attention_equals_keras():
    query, value, key = random(2, 3, 16), random(2, 7, 12), random(2, 7, 8)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=5, value_dim=6)
    ours = MultiHeadAttention(num_heads=2, key_dim=5, value_dim=6)
    theirs(query, value, key)
    ours(query, value, key)
    ours.set_weights(theirs.get_weights())
    mask = np.array([[1] * 7, [1] * 3 + [0] * 4], bool)
    expected = theirs(query, value, key, value_mask=mask, key_mask=mask)
    assert_close(ours(query, value, key, key_mask=mask), expected)


def test_hand_computed_example():
    # One head, identity projections, no biases: output = softmax(q·k / sqrt(2)) @ v.
    layer = MultiHeadAttention(num_heads=1, key_dim=2, use_bias=False)
    query = np.array([[[1.0, 0.0]]], "float32")  # (1, 1, 2)
    value = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # (1, 2, 2)
    layer(query, value)
    eye = np.eye(2, dtype="float32")
    layer.set_weights([eye[:, None, :], eye[:, None, :], eye[:, None, :], eye[None, :, :]])
    # scores = [1/sqrt(2), 0] -> weights = [sigmoid(0.70711), 1 - sigmoid(0.70711)]
    output, weights = layer(query, value, return_attention_scores=True)
    assert_close(weights[0, 0, 0], [0.6697615, 0.3302385])
    assert_close(output[0, 0], [0.6697615, 0.3302385])


def test_padding_hides_keys():
    query, value = random(1, 4, 8), random(1, 6, 8)
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    mask = np.array([[1, 1, 1, 0, 0, 0]], bool)
    before = layer(query, value, value_mask=mask)
    changed = value.copy()
    changed[:, 3:] = random(1, 3, 8) * 100
    assert_close(layer(query, changed, value_mask=mask), before)
    _, weights = layer(query, value, value_mask=mask, return_attention_scores=True)
    assert np.all(np.asarray(weights)[..., 3:] == 0)


def test_causal_mask_blocks_the_future():
    x = random(2, 6, 8)
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    before = np.asarray(layer(x, x, use_causal_mask=True))
    for t in range(5):
        changed = x.copy()
        changed[:, t + 1 :] = random(2, 5 - t, 8)
        after = np.asarray(layer(changed, changed, use_causal_mask=True))
        assert_close(after[:, : t + 1], before[:, : t + 1])
        assert not np.allclose(after[:, t + 1 :], before[:, t + 1 :])


def test_compute_causal_mask_with_offset():
    mask = np.asarray(compute_causal_mask(1, 2, 5, cache_index=2))
    assert mask[0].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]


def test_cache_decoding_equals_full_pass():
    x = random(2, 5, 16)
    layer = MultiHeadAttention(num_heads=4, key_dim=4)
    full = np.asarray(layer(x, x, use_causal_mask=True))
    cache = np.zeros((2, 2, 5, 4, 4), "float32")
    steps = []
    for t in range(5):
        out, cache = layer(
            x[:, t : t + 1],
            x[:, t : t + 1],
            use_causal_mask=True,
            cache=cache,
            cache_update_index=t,
        )
        steps.append(np.asarray(out))
    assert_close(np.concatenate(steps, axis=1), full)
    # A prefill of 3 tokens then 2 single steps gives the same too.
    cache = np.zeros((2, 2, 5, 4, 4), "float32")
    head, cache = layer(x[:, :3], x[:, :3], use_causal_mask=True, cache=cache, cache_update_index=0)
    assert_close(head, full[:, :3])


def test_dropout_only_in_training():
    x = random(2, 5, 16)
    layer = MultiHeadAttention(num_heads=4, key_dim=4, dropout=0.5)
    assert_close(layer(x, x), layer(x, x, training=False))
    assert not np.allclose(layer(x, x, training=True), layer(x, x))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0, "key_dim": 4}, "num_heads"),
        ({"num_heads": 2, "key_dim": -1}, "key_dim"),
        ({"num_heads": 2, "key_dim": 4, "dropout": 1.5}, "dropout"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)
