"""Run an exported SavedModel's signatures from Python, as TF Serving would.

    predictor = SavedModelPredictor("saved_models/sentiment")   # the latest version
    predictor("serving_default", texts=["Loved it!"])          # {"label": ..., ...}
    predictor("generate", texts=["ROMEO:"], max_new_tokens=20)  # defaults fill the rest

Needs only TensorFlow (not this package's models or tokenizers): the SavedModel holds them.
Inputs missing from a call take the defaults recorded in the SignatureDef, as TF Serving does.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_transformer.serving.layout import latest_version_path


def signature_defs(path):
    """`{signature name: SignatureDef proto}` read from a version's `saved_model.pb`."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        proto.ParseFromString(file.read())
    for meta_graph in proto.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    raise ValueError(f"{path!r} has no MetaGraph tagged 'serve'.")


def to_jsonable(outputs):
    """`{name: numpy array}` -> JSON-able lists (bytes as UTF-8 text; invalid bytes as U+FFFD)."""

    def convert(value):
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {name: convert(np.asarray(value).tolist()) for name, value in outputs.items()}


def rows(outputs):
    """`{name: (B, ...)}` -> a list of B dicts, one per example (JSON-able)."""
    data = to_jsonable(outputs)
    size = len(next(iter(data.values()))) if data else 0
    return [{name: value[i] for name, value in data.items()} for i in range(size)]


class SavedModelPredictor:
    """Loads a SavedModel (a version folder, or a base folder: its latest version) and runs
    its signatures with inputs checked and defaults filled.

    Args:
        path: str. `saved_models/NAME/VERSION` or `saved_models/NAME`.

    Call arguments:
        signature: str. Signature name. Defaults to `"serving_default"`.
        texts: list of str or None. Fed to the signature's single string input (`text` or
            `prompts`).
        **inputs: other inputs by name (Python values are cast to the signature's dtypes).

    Returns:
        `{output name: numpy array}`.
    """

    def __init__(self, path):
        self.path = latest_version_path(os.fspath(path))
        self.signature_defs = signature_defs(self.path)
        self.loaded = tf.saved_model.load(self.path)

    @property
    def signatures(self):
        """Signature names."""
        return sorted(self.signature_defs)

    def inputs_of(self, signature):
        """`{input name: (tf.DType, shape list)}` of a signature."""
        definition = self._definition(signature)
        return {
            name: (
                tf.dtypes.as_dtype(info.dtype),
                [d.size for d in info.tensor_shape.dim],
            )
            for name, info in definition.inputs.items()
        }

    def defaults_of(self, signature):
        """`{input name: numpy value}` of the defaults recorded in the signature."""
        definition = self._definition(signature)
        return {name: tf.make_ndarray(proto) for name, proto in definition.defaults.items()}

    def _definition(self, signature):
        if signature not in self.signature_defs:
            raise ValueError(
                f"{self.path!r} has no signature {signature!r}. Its signatures: {self.signatures}."
            )
        return self.signature_defs[signature]

    def __call__(self, signature="serving_default", texts=None, **inputs):
        specs = self.inputs_of(signature)
        if texts is not None:
            strings = [name for name, (dtype, _) in specs.items() if dtype == tf.string]
            if len(strings) != 1:
                raise ValueError(
                    f"Signature {signature!r} has no single text input (its inputs: "
                    f"{sorted(specs)}); pass its inputs by name."
                )
            if isinstance(texts, (str, bytes)):
                texts = [texts]
            inputs[strings[0]] = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise ValueError(
                f"Signature {signature!r} has no inputs {unknown}. Its inputs: {sorted(specs)}."
            )
        feeds = dict(self.defaults_of(signature))
        feeds.update(inputs)
        missing = sorted(set(specs) - set(feeds))
        if missing:
            raise ValueError(f"Signature {signature!r} needs the inputs {missing}.")
        tensors = {
            name: tf.constant(np.asarray(value) if dtype != tf.string else value, dtype=dtype)
            for name, value in feeds.items()
            for dtype in [specs[name][0]]
        }
        outputs = self.loaded.signatures[signature](**tensors)
        return {name: value.numpy() for name, value in outputs.items()}


def predict(path, texts, signature="serving_default", batch_size=32, outputs=None, **inputs):
    """Run `signature` of the SavedModel at `path` on `texts`, in batches.

    Args:
        path: str. A version folder or a base folder (its latest version).
        texts: list of str.
        signature: str. Defaults to `"serving_default"`.
        batch_size: int. Texts per call. Defaults to `32`.
        outputs: list of str or None. Output names to keep; `None`: all.
        **inputs: other inputs of the signature (e.g. `max_new_tokens=20`).

    Returns:
        A list of dicts, one per text, `{output name: JSON-able value}`.

    Example:
    >>> predict("saved_models/sentiment", ["Loved it!"])
    [{'label': 'positive', 'logits': [...], 'probabilities': [...]}]
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: {batch_size!r}")
    predictor = path if isinstance(path, SavedModelPredictor) else SavedModelPredictor(path)
    results = []
    for start in range(0, len(texts), batch_size):
        batch = predictor(signature, texts=list(texts[start : start + batch_size]), **inputs)
        if outputs is not None:
            unknown = sorted(set(outputs) - set(batch))
            if unknown:
                raise ValueError(
                    f"Signature {signature!r} has no outputs {unknown}. Its outputs: "
                    f"{sorted(batch)}."
                )
            batch = {name: batch[name] for name in outputs}
        results.extend(rows(batch))
    return results
