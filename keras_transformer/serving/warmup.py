"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays the requests in this file (a TFRecord file of `PredictionLog` protos, at
most 1000) when it loads a version, before it marks the version available, so the first real
request does not pay for graph initialization. The protos come from `tensorflow-serving-api`
(protos and gRPC stubs only; it adds no code to the SavedModel).

Each record sends every input of its signature, scalar inputs with defaults included: TF
Serving releases before default-value support reject requests with missing inputs, and a
failing warm-up request makes the version fail to load.
"""

import os

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # TF Serving reads no more.


def serving_apis():
    """The `tensorflow_serving.apis` protos, with a clear message if they are not installed."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Warm-up records and gRPC requests need the TF Serving protos: "
            "pip install tensorflow-serving-api==2.21.0"
        ) from error
    return predict_pb2, prediction_log_pb2


def predict_request(model_name, signature_name, inputs, version=None):
    """A `PredictRequest` proto for `inputs` (`{name: array-like}`)."""
    predict_pb2, _ = serving_apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup_requests(saved_model_dir, model_name, requests):
    """Write `requests` as PredictionLog records to the version's warm-up file.

    Args:
        saved_model_dir: str. The version folder (holding `saved_model.pb`).
        model_name: str. The model name put in each request's `model_spec`.
        requests: list of `(signature_name, {input name: numpy array})`.

    Returns:
        The path of the file written.
    """
    _, prediction_log_pb2 = serving_apis()
    if not requests:
        raise ValueError("`requests` is empty: give at least one warm-up request.")
    if len(requests) > MAX_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_RECORDS} warm-up records.")
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(predict_request(model_name, signature_name, inputs))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir):
    """Parse a version's warm-up file.

    Returns:
        A list of `(model_name, signature_name, {input name: numpy array})`.
    """
    _, prediction_log_pb2 = serving_apis()
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    records = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(raw)
        request = log.predict_log.request
        inputs = {name: np.asarray(tf.make_ndarray(t)) for name, t in request.inputs.items()}
        records.append((request.model_spec.name, request.model_spec.signature_name, inputs))
    return records
