import keras
import numpy as np
import pytest
from model_checks import assert_close, assert_fit_lowers_loss, assert_save_reload_identical

from keras_transformer.models import BertBackbone, BertClassifier, BertMaskedLM

V = 50
RNG = np.random.default_rng(3)


def tiny_backbone(**kwargs):
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
    return BertBackbone(**args)


def batch(lengths=(8, 5, 3), width=8):
    mask = np.arange(width)[None, :] < np.array(lengths)[:, None]
    ids = np.where(mask, RNG.integers(1, V, (len(lengths), width)), 0).astype("int32")
    return {"token_ids": ids, "padding_mask": mask.astype("int32")}


def test_outputs_and_config_round_trip():
    backbone = tiny_backbone()
    out = backbone(batch())
    assert out["sequence_output"].shape == (3, 8, 16)
    assert out["pooled_output"].shape == (3, 16)
    config = backbone.get_config()
    assert config["vocabulary_size"] == V and config["num_layers"] == 2
    clone = BertBackbone.from_config(config)
    assert clone.count_params() == backbone.count_params()


def test_padding_never_changes_real_outputs():
    backbone = tiny_backbone()
    inputs = batch()
    mask = inputs["padding_mask"].astype(bool)
    before = np.asarray(backbone(inputs)["sequence_output"])
    # Different ids under the padding.
    changed = dict(
        inputs, token_ids=np.where(mask, inputs["token_ids"], RNG.integers(1, V, mask.shape))
    )
    after = np.asarray(backbone(changed)["sequence_output"])
    assert_close(after[mask], before[mask])
    # More padding appended.
    longer = {k: np.pad(v, ((0, 0), (0, 4))) for k, v in inputs.items()}
    after = np.asarray(backbone(longer)["sequence_output"])[:, :8]
    assert_close(after[mask], before[mask])


def test_segment_ids_are_optional_and_used():
    backbone = tiny_backbone()
    inputs = batch()
    zeros = dict(inputs, segment_ids=np.zeros_like(inputs["token_ids"]))
    assert_close(backbone(inputs)["sequence_output"], backbone(zeros)["sequence_output"], atol=0)
    ones = dict(inputs, segment_ids=np.ones_like(inputs["token_ids"]))
    assert not np.allclose(backbone(ones)["sequence_output"], backbone(zeros)["sequence_output"])


def test_masked_lm_trains_and_reloads():
    model = BertMaskedLM(tiny_backbone())
    inputs = batch()
    inputs["mask_positions"] = np.array([[1, 2], [0, 4], [2, 0]], "int32")
    targets = np.array([[5, 6], [7, 8], [9, 0]], "int32")
    weights = np.array([[1, 1], [1, 1], [1, 0]], "float32")
    assert model(inputs).shape == (3, 2, V)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_fit_lowers_loss(model, inputs, targets, weights)
    restored = assert_save_reload_identical(model, inputs)
    # Our custom compile was restored too: the same optimizer, its state carried over.
    assert isinstance(restored.optimizer, keras.optimizers.Adam)
    assert float(restored.optimizer.learning_rate) == pytest.approx(1e-2)
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) > 0


def test_masked_lm_head_is_tied_to_the_embedding():
    model = BertMaskedLM(tiny_backbone())
    embedding_vars = [w for w in model.weights if w is model.backbone.token_embedding.embeddings]
    assert len(embedding_vars) == 1
    assert not any("output_kernel" in w.path for w in model.masked_lm_head.weights)


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean"])
def test_classifier_trains_and_reloads(pooling):
    model = BertClassifier(tiny_backbone(), num_classes=3, pooling=pooling, dropout=0.0)
    inputs = batch()
    assert model(inputs).shape == (3, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_fit_lowers_loss(model, inputs, np.array([0, 1, 2]))
    assert_save_reload_identical(model, inputs)


def test_mean_pooling_ignores_padding():
    model = BertClassifier(tiny_backbone(), num_classes=2, pooling="mean")
    inputs = batch()
    mask = inputs["padding_mask"].astype(bool)
    changed = dict(inputs, token_ids=np.where(mask, inputs["token_ids"], 7))
    assert_close(model(changed), model(inputs))


def test_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = BertMaskedLM(tiny_backbone())
    inputs = dict(batch(), mask_positions=np.array([[1, 2], [0, 4], [2, 0]], "int32"))
    assert all(w.dtype == "float32" for w in model.weights)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_fit_lowers_loss(model, inputs, np.array([[5, 6], [7, 8], [9, 0]]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_dim": 18, "num_heads": 4}, "divisible by `num_heads`"),
        ({"num_layers": 0}, "num_layers"),
        ({"vocabulary_size": -3}, "vocabulary_size"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_backbone(**kwargs)


def test_too_long_and_out_of_range():
    backbone = tiny_backbone()
    with pytest.raises(ValueError, match="max_sequence_length=16"):
        backbone(batch(lengths=(20,), width=20))
    inputs = batch()
    inputs["token_ids"][0, 0] = V
    with pytest.raises(ValueError, match=f"Token id {V} is out of range"):
        backbone(inputs)


def test_from_size():
    backbone = BertBackbone.from_size("tiny", vocabulary_size=V)
    assert (backbone.num_layers, backbone.hidden_dim, backbone.num_heads) == (2, 128, 2)
    with pytest.raises(ValueError, match="Unknown size"):
        BertBackbone.from_size("huge", vocabulary_size=V)
