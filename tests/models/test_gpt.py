import keras
import numpy as np
import pytest
import tensorflow as tf
from model_checks import assert_close, assert_fit_lowers_loss, assert_save_reload_identical

from keras_transformer.models import GPTBackbone, GPTCausalLM

V = 40
RNG = np.random.default_rng(4)


def tiny_lm(**kwargs):
    args = {
        "vocabulary_size": V,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 16,
        "intermediate_dim": 32,
        "max_sequence_length": 24,
        "dropout": 0.0,
        **kwargs,
    }
    return GPTCausalLM(GPTBackbone(**args))


def inputs_of(ids):
    ids = np.asarray(ids, "int32")
    return {"token_ids": ids, "padding_mask": np.ones_like(ids)}


def test_logits_shape_and_config():
    model = tiny_lm()
    assert model(inputs_of(RNG.integers(0, V, (2, 7)))).shape == (2, 7, V)
    clone = GPTCausalLM.from_config(model.get_config())
    assert clone.count_params() == model.count_params()


def test_no_future_token_leakage():
    model = tiny_lm()
    ids = RNG.integers(0, V, (2, 10))
    before = np.asarray(model(inputs_of(ids)))
    for t in range(9):
        changed = ids.copy()
        changed[:, t + 1 :] = RNG.integers(0, V, (2, 9 - t))
        after = np.asarray(model(inputs_of(changed)))
        assert_close(after[:, : t + 1], before[:, : t + 1])


def test_right_padding_does_not_change_real_logits():
    model = tiny_lm()
    ids = RNG.integers(1, V, (1, 6))
    before = np.asarray(model(inputs_of(ids)))
    padded = {
        "token_ids": np.pad(ids, ((0, 0), (0, 3))),
        "padding_mask": np.pad(np.ones_like(ids), ((0, 0), (0, 3))),
    }
    assert_close(np.asarray(model(padded))[:, :6], before)


def test_cached_decoding_equals_full_pass():
    """Prefill a 4-token prompt into the cache, then feed two single tokens one at a time: each
    step's logits equal a full (uncached) pass over the tokens so far, and each call writes the
    cache at the next index and nowhere after it."""
    model = tiny_lm()
    ids = RNG.integers(1, V, (2, 6)).astype("int32")
    backbone = model.backbone
    cache = np.asarray(backbone.empty_cache(2, 8))
    assert not cache.any()

    hidden, cache = backbone.call_with_cache(ids[:, :4], cache, 0)  # prefill
    full = np.asarray(model(inputs_of(ids[:, :4])))
    assert_close(np.asarray(model.lm_head(hidden)), full)
    cache = np.asarray(cache)  # (B, layers, 2, S_max, N, H/N)
    assert all(cache[:, :, :, slot].any() for slot in range(4))  # slots 0..3 written
    assert not cache[:, :, :, 4:].any()

    for index in (4, 5):  # two single steps
        hidden, cache = backbone.call_with_cache(ids[:, index : index + 1], cache, index)
        assert hidden.shape == (2, 1, 16)
        full = np.asarray(model(inputs_of(ids[:, : index + 1])))[:, -1:]
        assert_close(np.asarray(model.lm_head(hidden)), full)
        cache = np.asarray(cache)
        assert cache[:, :, :, index].any()  # the index advanced: this step wrote its slot
        assert not cache[:, :, :, index + 1 :].any()


def greedy_by_full_passes(model, prompt, steps):
    ids = list(prompt)
    for _ in range(steps):
        logits = np.asarray(model(inputs_of([ids])))
        ids.append(int(logits[0, -1].argmax()))
    return ids


def test_greedy_generate_equals_full_pass_argmax():
    model = tiny_lm()
    out = model.generate([[1, 2, 3, 4], [5, 6]], max_new_tokens=6)
    assert out["token_ids"].shape == (2, 10)
    assert out["token_ids"][0].tolist() == greedy_by_full_passes(model, [1, 2, 3, 4], 6)
    # The shorter prompt generates 8 tokens in its row, in place after its own prompt.
    assert out["token_ids"][1].tolist() == greedy_by_full_passes(model, [5, 6], 8)
    assert out["padding_mask"].all()


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    model = tiny_lm()
    prompt = [[1, 2, 3]]
    first = model.generate(prompt, 8, temperature=1.0, top_p=0.9, seed=7)["token_ids"]
    again = model.generate(prompt, 8, temperature=1.0, top_p=0.9, seed=7)["token_ids"]
    np.testing.assert_array_equal(first, again)
    samples = {
        tuple(model.generate(prompt, 8, temperature=1.0, seed=s)["token_ids"][0]) for s in range(5)
    }
    assert len(samples) > 1
    greedy = model.generate(prompt, 8)["token_ids"]
    top1 = model.generate(prompt, 8, temperature=1.0, top_k=1, seed=3)["token_ids"]
    np.testing.assert_array_equal(top1, greedy)


def path_probability(model, ids, start, temperature):
    """The probability that sampling at `temperature` draws `ids[start:]` after `ids[:start]`."""
    logits = np.asarray(model(inputs_of([ids])), "float64")[0] / temperature  # (T, V)
    logits -= logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(np.exp(sum(log_p[t - 1, ids[t]] for t in range(start, len(ids)))))


def test_temperature_sampling_differs_from_greedy():
    model = tiny_lm()
    prompt, steps = [1, 2, 3], 16
    greedy = model.generate([prompt], steps)["token_ids"][0].tolist()
    # Sampling reproduces the greedy tokens with this probability: negligible.
    assert path_probability(model, greedy, len(prompt), 1.0) < 1e-9
    for seed in (0, 1):
        sampled = model.generate([prompt], steps, temperature=1.0, seed=seed)
        tokens = sampled["token_ids"][0].tolist()
        assert tokens[:3] == prompt and tokens != greedy
        assert sampled["padding_mask"].all() and max(tokens) < V
    again = model.generate([prompt], steps, temperature=1.0, seed=1)
    assert again["token_ids"][0].tolist() == tokens  # a fixed seed repeats


def test_unseeded_generation_works_and_varies():
    """`seed=None` (the documented default) draws a new seed per call."""
    model = tiny_lm()
    prompt, steps = [1, 2, 3], 16
    runs = [model.generate([prompt], steps, temperature=1.0)["token_ids"][0] for _ in range(2)]
    for tokens in runs:
        assert tokens.shape == (19,) and tokens[:3].tolist() == prompt and tokens.max() < V
        # Any one sampled continuation has a negligible probability, so two equal runs would
        # mean the seed did not change.
        assert path_probability(model, tokens.tolist(), len(prompt), 1.0) < 1e-9
    assert runs[0].tolist() != runs[1].tolist()


def test_top_k_sampling_stays_in_the_top_k():
    from keras_transformer.models.generation import sample_next_token

    logits = tf.constant(np.log([[0.5, 0.3, 0.15, 0.05]]), tf.float32)
    drawn = {
        int(sample_next_token(logits, 1.0, 2, 1.0, tf.constant([s, 0]))[0]) for s in range(200)
    }
    assert drawn == {0, 1}
    drawn = {
        int(sample_next_token(logits, 1.0, 0, 0.7, tf.constant([s, 0]))[0]) for s in range(200)
    }
    assert drawn == {0, 1}  # 0.5 < 0.7 <= 0.8: the nucleus is the two most likely tokens


def test_end_token_stops_a_row():
    model = tiny_lm()
    greedy = model.generate([[1, 2, 3]], max_new_tokens=6)["token_ids"][0]
    end = int(greedy[4])  # the second generated token
    out = model.generate([[1, 2, 3]], max_new_tokens=6, end_token=end)
    first_end = 3 + list(greedy[3:]).index(end)
    assert out["token_ids"][0, : first_end + 1].tolist() == greedy[: first_end + 1].tolist()
    assert not out["padding_mask"][0, first_end + 1 :].any()
    assert (out["token_ids"][0, first_end + 1 :] == 0).all()


def test_fit_lowers_loss_and_reload():
    model = tiny_lm()
    ids = RNG.integers(0, V, (4, 9))
    x, y = inputs_of(ids[:, :-1]), ids[:, 1:]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_fit_lowers_loss(model, x, y, np.ones_like(y, "float32"))
    assert_save_reload_identical(model, x)


def test_mixed_bfloat16_trains_and_generates():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tiny_lm()
    ids = RNG.integers(0, V, (4, 9))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_fit_lowers_loss(model, inputs_of(ids[:, :-1]), ids[:, 1:])
    assert model.generate([[1, 2]], max_new_tokens=3)["token_ids"].shape == (1, 5)


def test_generation_bad_input():
    model = tiny_lm()
    with pytest.raises(ValueError, match="exceeds the model's max_sequence_length=24"):
        model.generate([[1] * 20], max_new_tokens=10)
    with pytest.raises(ValueError, match="at least one token"):
        model.generate([[1, 2], []], max_new_tokens=2)
    with pytest.raises(ValueError, match="temperature"):
        model.generate([[1]], max_new_tokens=2, temperature=-1.0)
