"""One pooling vocabulary: `cls` = the raw [CLS] vector, `pooler` = BERT's tanh pooler,
`mean` = the masked mean, the same in `pool`, `BertClassifier` and `SentencePooling`."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
from model_checks import assert_close

from keras_transformer.layers.pooling import POOLINGS, masked_mean, pool
from keras_transformer.models import BertBackbone, BertClassifier
from keras_transformer.pretrained import SentencePooling

V = 40
SIZE = {
    "vocabulary_size": V,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 8,
    "intermediate_dim": 16,
    "max_sequence_length": 12,
    "dropout": 0.0,
}


def batch(seed=0, lengths=(6, 3, 1), width=6):
    rng = np.random.default_rng(seed)
    mask = np.arange(width)[None, :] < np.array(lengths)[:, None]
    ids = np.where(mask, rng.integers(1, V, (len(lengths), width)), 0).astype("int32")
    return {"token_ids": ids, "padding_mask": mask.astype("int32")}


def numpy_pool(outputs, mask, pooling):
    """An independent reference: plain numpy on the backbone's outputs."""
    sequence = np.asarray(outputs["sequence_output"], "float64")
    if pooling == "pooler":
        return np.asarray(outputs["pooled_output"], "float64")
    if pooling == "cls":
        return sequence[:, 0, :]
    rows = [sequence[i, : int(mask[i].sum())].mean(axis=0) for i in range(len(sequence))]
    return np.stack(rows)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pool_means_what_its_name_says(pooling):
    keras.utils.set_random_seed(1)
    backbone = BertBackbone(**SIZE)
    x = batch()
    outputs = backbone(x)
    assert_close(
        pool(outputs, x["padding_mask"], pooling), numpy_pool(outputs, x["padding_mask"], pooling)
    )


def test_cls_and_pooler_differ():
    keras.utils.set_random_seed(2)
    backbone = BertBackbone(**SIZE)
    x = batch()
    outputs = backbone(x)
    cls = np.asarray(pool(outputs, x["padding_mask"], "cls"))
    pooler = np.asarray(pool(outputs, x["padding_mask"], "pooler"))
    assert np.abs(cls - pooler).max() > 1e-3
    assert np.abs(pooler).max() <= 1.0  # tanh


def test_masked_mean_of_an_all_padding_row_is_zero():
    sequence = np.ones((2, 3, 4), "float32")
    mask = np.array([[1, 1, 0], [0, 0, 0]], "int32")
    out = np.asarray(masked_mean(sequence, mask))
    np.testing.assert_array_equal(out, [[1.0] * 4, [0.0] * 4])


@pytest.mark.parametrize("pooling", POOLINGS)
def test_classifier_pools_as_named(pooling):
    keras.utils.set_random_seed(3)
    backbone = BertBackbone(**SIZE)
    model = BertClassifier(backbone, num_classes=3, pooling=pooling, dropout=0.0)
    x = batch(seed=4)
    pooled = numpy_pool(backbone(x), x["padding_mask"], pooling).astype("float32")
    expected = model.classification_head(pooled, training=False)
    assert_close(model(x), expected)
    unused = {id(layer) for layer in model.unused_layers()}
    assert (id(backbone.pooler) in unused) == (pooling != "pooler")


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_pooling_agrees_with_pool(pooling):
    keras.utils.set_random_seed(5)
    backbone = BertBackbone(**SIZE)
    x = batch(seed=6)
    outputs = backbone(x)
    sentence = SentencePooling(modes=(pooling,))(outputs["sequence_output"], x["padding_mask"])
    assert_close(sentence, pool(outputs, x["padding_mask"], pooling))


def test_unknown_pooling_names_the_choices():
    with pytest.raises(ValueError, match=r"`pooling` must be one of \('cls', 'pooler', 'mean'\)"):
        BertClassifier(BertBackbone(**SIZE), num_classes=2, pooling="max")


def saved_config(model, folder):
    path = os.path.join(folder, "model.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return path, json.loads(archive.read("config.json"))


def test_a_model_saved_when_cls_named_the_pooler_loads_with_the_pooler(tmp_path):
    keras.utils.set_random_seed(7)
    model = BertClassifier(BertBackbone(**SIZE), num_classes=2, pooling="pooler", dropout=0.0)
    x = batch(seed=8)
    path, config = saved_config(model, tmp_path)
    # Rewrite the archive as the code before 2026-12-02 wrote it: "cls", no version key.
    config["config"]["pooling"] = "cls"
    del config["config"]["pooling_names_version"]
    old = os.path.join(tmp_path, "old.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(config).encode()
            target.writestr(item, data)
    restored = keras.saving.load_model(old)
    assert restored.pooling == "pooler"
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(model(x)))


def test_a_new_cls_model_reloads_as_cls(tmp_path):
    keras.utils.set_random_seed(9)
    model = BertClassifier(BertBackbone(**SIZE), num_classes=2, pooling="cls", dropout=0.0)
    path, config = saved_config(model, tmp_path)
    assert config["config"]["pooling_names_version"] == 2
    restored = keras.saving.load_model(path)
    assert restored.pooling == "cls"
    x = batch(seed=10)
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(model(x)))
