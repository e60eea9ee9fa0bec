"""REST and gRPC request builders, the predict helper, and the export/predict workflows."""

import argparse
import base64
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import bert_inputs

from keras_transformer.serving import (
    SavedModelPredictor,
    grpc_request,
    outputs_from_response,
    predict,
    rest_request,
    rest_response,
    rest_url,
)
from keras_transformer.text.io import load_tokenizer, save_tokenizer
from workflows import export as export_workflow
from workflows import predict as predict_workflow
from workflows.config import add_arguments, config_from_args


def test_rest_request_columnar_and_row_forms():
    inputs = {"prompts": ["ROMEO:", b"\xff bad"], "max_new_tokens": 5}
    assert rest_request(inputs, "generate") == {
        "signature_name": "generate",
        "inputs": {
            "prompts": ["ROMEO:", {"b64": base64.b64encode(b"\xff bad").decode()}],
            "max_new_tokens": 5,
        },
    }
    assert rest_request({"text": np.array(["a", "b"])}, form="instances") == {
        "instances": ["a", "b"]
    }
    ids = {"token_ids": np.array([[2, 5, 3]]), "padding_mask": np.array([[1, 1, 1]])}
    assert rest_request(ids, "from_token_ids", form="instances")["instances"] == [
        {"token_ids": [2, 5, 3], "padding_mask": [1, 1, 1]}
    ]
    with pytest.raises(ValueError, match="Scalar inputs"):
        rest_request(inputs, "generate", form="instances")
    assert rest_url("gpt", version=3) == "http://localhost:8501/v1/models/gpt/versions/3:predict"


def test_rest_response_forms():
    outputs = {"label": np.array([b"positive", b"negative"]), "logits": np.array([[0.5], [1.5]])}
    assert rest_response(outputs) == {
        "outputs": {"label": ["positive", "negative"], "logits": [[0.5], [1.5]]}
    }
    assert rest_response(outputs, form="instances") == {
        "predictions": [
            {"label": "positive", "logits": [0.5]},
            {"label": "negative", "logits": [1.5]},
        ]
    }


def test_grpc_request_round_trip():
    request = grpc_request(
        "gpt", {"prompts": ["ROMEO:", "é"], "max_new_tokens": 4, "temperature": 0.5}, "generate", 2
    )
    assert request.model_spec.name == "gpt"
    assert request.model_spec.signature_name == "generate"
    assert request.model_spec.version.value == 2
    assert request.inputs["max_new_tokens"].dtype == tf.int32.as_datatype_enum
    assert request.inputs["temperature"].dtype == tf.float32.as_datatype_enum
    prompts = tf.make_ndarray(request.inputs["prompts"])
    assert prompts.tolist() == [b"ROMEO:", "é".encode()]
    # The response side: a PredictResponse decodes to numpy arrays.
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.outputs["label"].CopyFrom(tf.make_tensor_proto(np.array([b"x"])))
    assert outputs_from_response(response)["label"].tolist() == [b"x"]


def test_predictor_fills_defaults_and_checks_names(exports):
    predictor = SavedModelPredictor(exports.results["causal_lm"].base)  # Base folder: latest.
    assert predictor.path == exports.results["causal_lm"].path
    assert {"generate", "from_token_ids", "serving_default"} <= set(predictor.signatures)
    assert predictor.inputs_of("generate")["prompts"] == (tf.string, [-1])
    with pytest.raises(ValueError, match="no signature 'nope'"):
        predictor("nope", texts=["a"])
    with pytest.raises(ValueError, match="no inputs"):
        predictor("generate", texts=["a"], temperatur=1.0)


def test_predict_helper_batches_and_filters(exports):
    path = exports.results["classifier"].path
    rows = predict(path, ["good", "bad", ""], batch_size=2, outputs=["label"])
    assert len(rows) == 3 and all(set(row) == {"label"} for row in rows)
    whole = SavedModelPredictor(path)("serving_default", texts=["good", "bad", ""])
    assert [row["label"] for row in rows] == [x.decode() for x in whole["label"]]
    with pytest.raises(ValueError, match="no outputs"):
        predict(path, ["good"], outputs=["labels"])


def test_tokenizer_json_round_trip(exports, tmp_path):
    for tokenizer in (exports.word_pieces, exports.characters):
        path = save_tokenizer(tokenizer, str(tmp_path / "tok" / "tokenizer.json"))
        restored = load_tokenizer(path)
        assert type(restored) is type(tokenizer)
        assert restored.get_config() == tokenizer.get_config()
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="serialized tokenizer"):
        load_tokenizer(str(tmp_path / "bad.json"))


def parse(module, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, module.Config)
    return config_from_args(module.Config, parser.parse_args(argv))


def test_export_and_predict_workflows(exports, tmp_path):
    model_path = str(tmp_path / "model.keras")
    exports.classifier.save(model_path)
    tokenizer_path = save_tokenizer(exports.word_pieces, str(tmp_path / "tokenizer.json"))
    config = parse(
        export_workflow,
        [
            "--model-path",
            model_path,
            "--tokenizer-path",
            tokenizer_path,
            "--output-dir",
            str(tmp_path / "saved_models"),
            "--class-names",
            "negative, neutral, positive",
            "--no-warmup",
        ],
    )
    result = export_workflow.run(config)
    assert result.path == str(tmp_path / "saved_models" / "classifier" / "1")
    assert result.signatures == ("from_token_ids", "preprocess", "serving_default")
    assert result.warmup_records == 0
    json.dumps(result.__dict__)

    texts = ["The movie was great!", "\xff"]
    config = parse(
        predict_workflow,
        ["--model", str(tmp_path / "saved_models" / "classifier"), "--input-file", "-"],
    )
    output = predict_workflow.run(config, stdin=io.StringIO("\n".join(texts)))
    assert output.count == 2
    x = bert_inputs(exports.word_pieces, texts[:1])[0]
    expected = keras.ops.convert_to_numpy(exports.classifier(x, training=False))[0]
    np.testing.assert_allclose(output.predictions[0]["logits"], expected, atol=1e-5)
    assert output.predictions[0]["label"] in ("negative", "neutral", "positive")
    with pytest.raises(ValueError, match="exactly one"):
        predict_workflow.run(parse(predict_workflow, ["--model", result.path]))
    with pytest.raises(ValueError, match="--model-path"):
        export_workflow.run(parse(export_workflow, []))
