"""Exports of models trained under `mixed_float16`: what dtype the served answers have.

Stated here and checked: an export of a float16-trained model serves **float32 outputs
computed in float16, as trained** (the layers keep their `mixed_float16` policy, so the
SavedModel's graph casts the float32 weights to float16 and computes in float16; the
signatures cast their float outputs to float32). Its answers equal the in-memory model's: the
classifier's logits within float16 rounding, the GPT's greedy tokens exactly.
"""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "serving")
)
from serving_helpers import (  # noqa: E402
    CHARACTER_CORPUS,
    TEXTS,
    bert_backbone,
    bert_inputs,
    causal_lm,
    word_piece_vocabulary,
)

from keras_transformer.models import BertClassifier  # noqa: E402
from keras_transformer.serving import SavedModelPredictor, export  # noqa: E402
from keras_transformer.text import CharacterTokenizer, WordPieceTokenizer  # noqa: E402
from keras_transformer.training.precision import using_precision  # noqa: E402


def _half_ops(predictor, signature):
    """Op types of the signature's graph (and the functions it calls) that compute in float16."""
    graph = predictor.loaded.signatures[signature].graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    half = tf.float16.as_datatype_enum
    return {n.op for n in nodes if n.attr["T"].type == half or n.attr["DstT"].type == half}


@pytest.fixture(scope="module")
def classifier_export(tmp_path_factory):
    import keras

    word_pieces = WordPieceTokenizer(word_piece_vocabulary())
    with using_precision("float16"):
        model = BertClassifier(bert_backbone(word_pieces.vocabulary_size(), seed=1), num_classes=3)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    (x,) = bert_inputs(word_pieces, ["the movie was great"])
    x = {key: np.repeat(value, 4, axis=0) for key, value in x.items()}
    model.fit(x, np.array([0, 1, 2, 1]), epochs=2, verbose=0)  # trained with loss scaling
    root = tmp_path_factory.mktemp("float16-export")
    result = export(model, word_pieces, root, name="classifier", class_names=["a", "b", "c"])
    return model, word_pieces, SavedModelPredictor(result.path)


def test_a_float16_classifier_serves_float32_computed_in_float16(classifier_export):
    model, word_pieces, predictor = classifier_export
    assert model.dtype_policy.name == "mixed_float16"
    outputs = predictor("serving_default", texts=TEXTS[:3])
    assert outputs["logits"].dtype == np.float32
    assert outputs["probabilities"].dtype == np.float32
    assert {"MatMul", "BatchMatMulV2"} & _half_ops(predictor, "serving_default")  # as trained
    expected = np.concatenate(
        [
            np.asarray(model(x, training=False), "float32")
            for x in bert_inputs(word_pieces, TEXTS[:3])
        ]
    )
    assert expected.dtype == np.float32
    # The same float16 computation; only batching (padding rows) changes float16 rounding.
    np.testing.assert_allclose(outputs["logits"], expected, atol=2e-2, rtol=0)
    np.testing.assert_array_equal(outputs["logits"].argmax(-1), expected.argmax(-1))
    assert np.isfinite(outputs["probabilities"]).all()


def test_a_float16_gpt_generates_the_in_memory_models_tokens(tmp_path):
    characters = CharacterTokenizer.from_text(CHARACTER_CORPUS)
    with using_precision("float16"):
        lm = causal_lm(characters.vocabulary_size(), seed=4)
        lm.compile(optimizer="adam")
    result = export(lm, characters, tmp_path, name="causal_lm", max_new_tokens=6)
    predictor = SavedModelPredictor(result.path)
    outputs = predictor("generate", texts=["To be"])
    assert "MatMul" in _half_ops(predictor, "generate") or "BatchMatMulV2" in _half_ops(
        predictor, "generate"
    )
    assert outputs["token_ids"].dtype == np.int32
    eos = characters.token_to_id("[EOS]")  # the export starts each prompt with it
    tokens = [eos, *characters(["To be"]).to_list()[0]]
    new = []
    for _ in range(6):  # greedy, one full pass per token, in memory (float16 compute)
        ids = np.array([tokens], "int32")
        logits = lm({"token_ids": ids, "padding_mask": np.ones_like(ids)}, training=False)
        tokens.append(int(np.asarray(logits)[0, -1].argmax()))
        if tokens[-1] == eos:
            break
        new.append(tokens[-1])
    length = int(outputs["padding_mask"][0].sum())
    assert outputs["token_ids"][0, :length].tolist() == new
