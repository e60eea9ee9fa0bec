"""Request builders for TF Serving's REST (JSON) and gRPC (`PredictRequest`) APIs.

    body = rest_request({"text": ["Great film!"]}, signature_name="serving_default")
    requests.post(rest_url("classifier"), json=body)           # -> {"outputs": {...}}

    request = grpc_request("classifier", {"text": ["Great film!"]})
    response = stub.Predict(request, 10.0)                     # PredictionServiceStub
    outputs = outputs_from_response(response)                  # {name: numpy array}

REST has two forms. Columnar (`"inputs"`, the default here) sends each input whole and takes
scalars such as `max_new_tokens`; the response is `{"outputs": ...}`. Row (`"instances"`)
sends one entry per example; every input must have the batch dimension, so scalar inputs
cannot be sent (their defaults apply); the response is `{"predictions": [...]}`. Strings are
JSON strings; bytes that are not valid UTF-8 are sent as `{"b64": ...}`, as TF Serving wants.
"""

import base64

import numpy as np

from keras_transformer.serving.warmup import predict_request

FORMS = ("inputs", "instances")


def rest_url(model_name, host="localhost", port=8501, version=None, verb="predict"):
    """`http://HOST:PORT/v1/models/NAME[/versions/V]:predict`."""
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model_name}{version_part}:{verb}"


def _json_value(value):
    """Numpy/Python values -> JSON-able lists; bytes -> str, or {"b64": ...} if not UTF-8."""
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "SU":
            return (
                [_json_value(v) for v in value.tolist()]
                if value.ndim
                else _json_value(value.item())
            )
        if value.dtype == np.float32:  # The shortest float32 digits, as TF Serving prints.
            shortest = [float(str(x)) for x in value.ravel()]
            return np.array(shortest, np.float64).reshape(value.shape).tolist()
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.float32):
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_batched(value):
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, (list, tuple))


def _batch_size(inputs):
    sizes = {name: len(value) for name, value in inputs.items() if _is_batched(value)}
    scalars = [name for name, value in inputs.items() if not _is_batched(value)]
    if scalars:
        raise ValueError(
            f"Scalar inputs {scalars} cannot be sent in the 'instances' (row) form: every "
            "input there has the batch dimension. Use form='inputs', or leave them out to use "
            "the signature's defaults."
        )
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Inputs must share the batch size in the 'instances' form: {sizes}")
    return next(iter(sizes.values())) if sizes else 0


def rest_request(inputs, signature_name=None, form="inputs"):
    """The JSON body of a TF Serving REST `:predict` request.

    Args:
        inputs: dict `{input name: value}` (lists, numpy arrays, scalars; strings or bytes).
        signature_name: str or None. Left out: `serving_default`.
        form: `"inputs"` (columnar) or `"instances"` (row). Defaults to `"inputs"`.

    Returns:
        A JSON-able dict.

    Example:
    >>> rest_request({"text": ["Loved it."]}, "serving_default", form="instances")
    {'signature_name': 'serving_default', 'instances': ['Loved it.']}
    """
    if form not in FORMS:
        raise ValueError(f"`form` must be one of {FORMS}. Received: form={form!r}")
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError("`inputs` must be a non-empty dict {input name: value}.")
    body = {} if signature_name is None else {"signature_name": signature_name}
    if form == "inputs":
        body["inputs"] = {name: _json_value(value) for name, value in inputs.items()}
        return body
    size = _batch_size(inputs)
    names = list(inputs)
    if len(names) == 1:
        body["instances"] = [_json_value(inputs[names[0]][i]) for i in range(size)]
    else:
        body["instances"] = [
            {name: _json_value(inputs[name][i]) for name in names} for i in range(size)
        ]
    return body


def rest_response(outputs, form="inputs"):
    """The JSON TF Serving answers for `outputs` (`{name: numpy array}`) of a request of `form`.

    Columnar requests get `{"outputs": {name: value}}` (`{"outputs": value}` for a single
    output); row requests get `{"predictions": [one entry per example]}`, each entry a dict
    of outputs (or the value alone for a single output).
    """
    if form not in FORMS:
        raise ValueError(f"`form` must be one of {FORMS}. Received: form={form!r}")
    names = sorted(outputs)
    if form == "inputs":
        values = {name: _json_value(np.asarray(outputs[name])) for name in names}
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    size = _batch_size(outputs)
    rows = []
    for i in range(size):
        row = {name: _json_value(np.asarray(outputs[name])[i]) for name in names}
        rows.append(row[names[0]] if len(names) == 1 else row)
    return {"predictions": rows}


def _coerce(value):
    """Python ints and floats -> int32 / float32, the dtypes of our signatures' inputs."""
    array = np.asarray(value)
    if array.dtype.kind in "iu" and not isinstance(value, np.ndarray):
        return array.astype(np.int32)
    if array.dtype.kind == "f" and not isinstance(value, np.ndarray):
        return array.astype(np.float32)
    if array.dtype.kind == "U":
        return np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
    return array


def grpc_request(model_name, inputs, signature_name="serving_default", version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for the gRPC `Predict` call.

    Args:
        model_name: str. The served model's name.
        inputs: dict `{input name: value}`. Python ints and floats become int32 and float32
            (our signatures' dtypes); numpy arrays keep their dtype; str becomes UTF-8 bytes.
        signature_name: str. Defaults to `"serving_default"`.
        version: int or None. A specific version; `None`: the latest.

    Returns:
        `PredictRequest`.
    """
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError("`inputs` must be a non-empty dict {input name: value}.")
    coerced = {name: _coerce(value) for name, value in inputs.items()}
    return predict_request(model_name, signature_name, coerced, version=version)


def outputs_from_response(response):
    """`{name: numpy array}` from a `PredictResponse`."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
