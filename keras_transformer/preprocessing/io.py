"""Save and load a preprocessor as one JSON file: its Keras config, tokenizer included.

    save_preprocessor(preprocessor, "runs/x/preprocessor.json")
    preprocessor = load_preprocessor("runs/x/preprocessor.json")

The file holds `keras.saving.serialize_keras_object(preprocessor)` (the tokenizer, its
vocabulary, the sequence lengths and the special tokens), written through a temporary file
and a rename, so a reader never sees half a file. A run folder saves one, and
`workflows export --run` restores it, so the export frames text exactly as the run trained.
"""

import json
import os
import tempfile

import keras

# Importing the modules registers the preprocessor and tokenizer classes with Keras.
from keras_transformer.preprocessing import (  # noqa: F401
    causal_lm_preprocessor,
    classifier_preprocessor,
    masked_lm_preprocessor,
    seq2seq_preprocessor,
)
from keras_transformer.preprocessing.preprocessor import Preprocessor
from keras_transformer.text import char_tokenizer, wordpiece  # noqa: F401


def save_preprocessor(preprocessor, path):
    """Write `preprocessor` as JSON to `path` (atomically). Returns `path`.

    Args:
        preprocessor: a `Preprocessor` of `keras_transformer.preprocessing`.
        path: str. The JSON file to write; its folder is created.
    """
    if not isinstance(preprocessor, Preprocessor):
        raise ValueError(
            "`preprocessor` must be a preprocessor of keras_transformer.preprocessing, such as "
            f"ClassifierPreprocessor. Received: {type(preprocessor).__name__}"
        )
    data = keras.saving.serialize_keras_object(preprocessor)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def load_preprocessor(path):
    """Read a preprocessor written by `save_preprocessor`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a serialized preprocessor.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Preprocessor file not found: {path!r}")
    with open(path, encoding="utf-8") as file:
        try:
            data = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path!r} is not JSON ({error}).") from error
    if not isinstance(data, dict) or "class_name" not in data or "config" not in data:
        raise ValueError(
            f"{path!r} does not hold a serialized preprocessor (expected the JSON written by "
            "keras_transformer.preprocessing.save_preprocessor)."
        )
    preprocessor = keras.saving.deserialize_keras_object(data)
    if not isinstance(preprocessor, Preprocessor):
        raise ValueError(f"{path!r} holds a {type(preprocessor).__name__}, not a preprocessor.")
    return preprocessor
