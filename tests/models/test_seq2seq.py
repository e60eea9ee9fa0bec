import keras
import numpy as np
import pytest
from model_checks import assert_close, assert_fit_lowers_loss, assert_save_reload_identical

from keras_transformer.models import Seq2SeqBackbone, Seq2SeqTransformer

V = 30
RNG = np.random.default_rng(5)


def tiny_model(**kwargs):
    args = {
        "vocabulary_size": V,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 16,
        "intermediate_dim": 32,
        "max_sequence_length": 16,
        "dropout": 0.0,
        **kwargs,
    }
    return Seq2SeqTransformer(Seq2SeqBackbone(**args))


def batch(source_lengths=(7, 4), target_width=5):
    width = 7
    source_mask = np.arange(width)[None, :] < np.array(source_lengths)[:, None]
    return {
        "encoder_token_ids": np.where(source_mask, RNG.integers(3, V, (2, width)), 0),
        "encoder_padding_mask": source_mask.astype("int32"),
        "decoder_token_ids": RNG.integers(3, V, (2, target_width)),
        "decoder_padding_mask": np.ones((2, target_width), "int32"),
    }


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_is_causal(position_encoding, normalize_first):
    model = tiny_model(position_encoding=position_encoding, normalize_first=normalize_first)
    inputs = batch()
    before = np.asarray(model(inputs))
    assert before.shape == (2, 5, V)
    for t in range(4):
        changed = dict(inputs)
        changed["decoder_token_ids"] = inputs["decoder_token_ids"].copy()
        changed["decoder_token_ids"][:, t + 1 :] = RNG.integers(3, V, (2, 4 - t))
        assert_close(np.asarray(model(changed))[:, : t + 1], before[:, : t + 1])


def test_cross_attention_ignores_encoder_padding():
    model = tiny_model()
    inputs = batch()
    mask = inputs["encoder_padding_mask"].astype(bool)
    changed = dict(inputs, encoder_token_ids=np.where(mask, inputs["encoder_token_ids"], 9))
    assert_close(model(changed), model(inputs))
    longer = dict(
        inputs,
        encoder_token_ids=np.pad(inputs["encoder_token_ids"], ((0, 0), (0, 3))),
        encoder_padding_mask=np.pad(inputs["encoder_padding_mask"], ((0, 0), (0, 3))),
    )
    assert_close(model(longer), model(inputs))


def test_generate_equals_full_pass_greedy():
    model = tiny_model()
    inputs = batch()
    out = model.generate(inputs, start_token=1, max_new_tokens=5)
    for row in range(2):
        ids = [1]
        source = {k: v[row : row + 1] for k, v in inputs.items() if k.startswith("encoder")}
        for _ in range(5):
            logits = np.asarray(
                model(
                    {
                        **source,
                        "decoder_token_ids": np.array([ids]),
                        "decoder_padding_mask": np.ones((1, len(ids)), "int32"),
                    }
                )
            )
            ids.append(int(logits[0, -1].argmax()))
        assert out["token_ids"][row].tolist() == ids


def test_learns_to_copy_and_reloads():
    model = tiny_model()
    source = RNG.integers(3, V, (8, 5))
    inputs = {
        "encoder_token_ids": source,
        "encoder_padding_mask": np.ones_like(source),
        "decoder_token_ids": np.concatenate([np.ones((8, 1), int), source[:, :-1]], axis=1),
        "decoder_padding_mask": np.ones_like(source),
    }
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_fit_lowers_loss(model, inputs, source, epochs=10)
    assert_save_reload_identical(model, inputs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="position_encoding"):
        tiny_model(position_encoding="rotary")
    with pytest.raises(ValueError, match="max_sequence_length=16"):
        tiny_model().generate(batch(), start_token=1, max_new_tokens=100)


def test_default_compile_comes_from_the_task_class():
    """`Task.compile` with the class defaults: AdamW at the task's learning rate, accuracy
    weighted by the sample weights; given metrics replace the default accuracy."""
    from keras_transformer.models import GPTBackbone, GPTCausalLM

    gpt = GPTCausalLM(GPTBackbone(V, 1, 2, 16, 32, max_sequence_length=16))
    for model, learning_rate in ((tiny_model(), 1e-3), (gpt, 3e-4)):
        model.compile()
        assert isinstance(model.optimizer, keras.optimizers.AdamW)
        assert np.isclose(float(model.optimizer.learning_rate), learning_rate)
        assert model.optimizer.weight_decay == 0.01
        config = model.get_compile_config()
        assert config["metrics"] is None and len(config["weighted_metrics"]) == 1
    model = tiny_model()
    model.compile(metrics=["accuracy"])
    config = model.get_compile_config()
    assert config["weighted_metrics"] is None and config["metrics"] == ["accuracy"]
