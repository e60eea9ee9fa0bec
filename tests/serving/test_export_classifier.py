"""The classifier export: its signatures give the in-memory model's outputs; bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import TEXTS, bert_inputs, padded_bert_batch

from keras_transformer.serving import SavedModelPredictor, read_warmup_requests
from keras_transformer.serving.predict import signature_defs

CLASS_NAMES = np.array([b"negative", b"neutral", b"positive"])


@pytest.fixture(scope="module")
def predictor(exports):
    return SavedModelPredictor(exports.results["classifier"].path)


def expected_logits(exports, texts):
    return np.concatenate(
        [
            np.asarray(exports.classifier(x, training=False))
            for x in bert_inputs(exports.word_pieces, texts)
        ]
    )


@pytest.mark.parametrize("size", [1, 3, 5])
def test_text_signature_equals_in_memory_model(exports, predictor, size):
    texts = TEXTS[:size]
    outputs = predictor("serving_default", texts=texts)
    logits = expected_logits(exports, texts)
    np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        outputs["probabilities"], tf.nn.softmax(logits).numpy(), atol=1e-5, rtol=0
    )
    np.testing.assert_array_equal(outputs["label"], CLASS_NAMES[logits.argmax(-1)])


def test_token_ids_signature_equals_in_memory_model(exports, predictor):
    token_ids, padding_mask = padded_bert_batch(exports.word_pieces, TEXTS[:3])
    outputs = predictor("from_token_ids", token_ids=token_ids, padding_mask=padding_mask)
    np.testing.assert_allclose(
        outputs["logits"], expected_logits(exports, TEXTS[:3]), atol=1e-5, rtol=0
    )


def test_truncation_at_the_model_maximum(exports, predictor):
    long_text = "the movie was great " * 5_000  # 100k characters.
    outputs = predictor("serving_default", texts=[long_text, "great"])
    logits = expected_logits(exports, [long_text, "great"])
    np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5, rtol=0)


def test_bad_text_gives_well_formed_outputs(predictor):
    texts = [
        b"\xff\xfe invalid \xc3 utf-8",
        "🙂" * 1000,
        "x" * 100_000,
        "\x00\x01 control",
        "",
    ]
    outputs = predictor("serving_default", texts=texts)
    assert outputs["logits"].shape == (5, 3)
    assert np.isfinite(outputs["logits"]).all()
    assert set(outputs["label"]) <= set(CLASS_NAMES)
    assert predictor("serving_default", texts=[])["logits"].shape == (0, 3)


def test_wrong_dtype_or_shape_gives_a_signature_error(predictor):
    function = predictor.loaded.signatures["serving_default"]
    signature_errors = (TypeError, ValueError, tf.errors.InvalidArgumentError)
    with pytest.raises(signature_errors, match="string"):
        function(text=tf.constant([1, 2]))
    with pytest.raises(signature_errors):
        function(text=tf.constant([["a", "b"]]))
    ids = predictor.loaded.signatures["from_token_ids"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocabulary size"):
        ids(token_ids=tf.constant([[2, 10_000]]), padding_mask=tf.constant([[1, 1]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same shape"):
        ids(token_ids=tf.constant([[2, 3]]), padding_mask=tf.constant([[1, 1, 1]]))


def test_variables_are_stored_once(exports):
    result = exports.results["classifier"]
    assert result.size_ratio <= 1.1, result
    assert result.variables_bytes >= result.weights_bytes


def test_warmup_records_match_the_signatures(exports):
    path = exports.results["classifier"].path
    definitions = signature_defs(path)
    records = read_warmup_requests(path)
    assert {signature for _, signature, _ in records} == {"serving_default", "from_token_ids"}
    for model_name, signature, inputs in records:
        assert model_name == "classifier"
        specs = definitions[signature].inputs
        assert set(inputs) == set(specs)
        for name, value in inputs.items():
            assert tf.as_dtype(specs[name].dtype) == tf.as_dtype(value.dtype), name
            assert value.ndim == len(specs[name].tensor_shape.dim), name
        SavedModelPredictor(path)(signature, **inputs)  # Each record runs.


def test_saved_model_cli_lists_the_signatures(exports):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    assert os.path.exists(cli), f"saved_model_cli (installed by tensorflow) is not at {cli}."
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    shown = subprocess.run(
        [cli, "show", "--dir", exports.results["classifier"].path, "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    for text in (
        "signature_def['serving_default']",
        "signature_def['from_token_ids']",
        "inputs['text'] tensor_info",
        "outputs['label'] tensor_info",
        "outputs['probabilities'] tensor_info",
    ):
        assert text in shown, text
