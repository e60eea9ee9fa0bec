"""Save and load a tokenizer as one JSON file: its Keras config, vocabulary included.

    save_tokenizer(tokenizer, "runs/x/tokenizer.json")
    tokenizer = load_tokenizer("runs/x/tokenizer.json")

Any tokenizer layer of `keras_transformer.text` round-trips (`WordPieceTokenizer`,
`CharacterTokenizer`, `BytePairTokenizer`): the file holds
`keras.saving.serialize_keras_object(tokenizer)`, so the class is recorded with its registered
name and rebuilt from its config. The write goes through a temporary file and a rename, so a
reader never sees half a file.
"""

import json
import os
import tempfile

import keras

# Importing the modules registers the tokenizer classes with Keras.
from keras_transformer.text import byte_pair, char_tokenizer, wordpiece  # noqa: F401


def save_tokenizer(tokenizer, path):
    """Write `tokenizer` as JSON to `path` (atomically). Returns `path`.

    Args:
        tokenizer: a `keras.layers.Layer` tokenizer, e.g. `WordPieceTokenizer`.
        path: str. The JSON file to write; its folder is created.
    """
    if not isinstance(tokenizer, keras.layers.Layer):
        raise ValueError(
            "`tokenizer` must be a tokenizer layer such as WordPieceTokenizer or "
            f"CharacterTokenizer. Received: {type(tokenizer).__name__}"
        )
    return write_serialized(tokenizer, path)


def load_tokenizer(path):
    """Read a tokenizer written by `save_tokenizer`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a serialized tokenizer.
    """
    tokenizer = read_serialized(path, "tokenizer", "keras_transformer.text.io.save_tokenizer")
    if not isinstance(tokenizer, keras.layers.Layer) or not hasattr(tokenizer, "detokenize"):
        raise ValueError(f"{path!r} holds a {type(tokenizer).__name__}, not a tokenizer.")
    return tokenizer


def write_serialized(layer, path):
    """Writes `keras.saving.serialize_keras_object(layer)` as JSON to `path`, atomically.

    The JSON goes to a temporary file in the same folder (created if needed), then one
    `os.replace` puts it in place: a reader never sees half a file. Returns `path`.
    """
    data = keras.saving.serialize_keras_object(layer)
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


def read_serialized(path, what, writer):
    """The object a `write_serialized` JSON file holds, rebuilt by Keras.

    Args:
        path: str.
        what: str. What the file should hold (`"tokenizer"`), for the error messages.
        writer: str. The function that writes such files, for the error messages.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not JSON, or not a serialized Keras object.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what.capitalize()} file not found: {path!r}")
    with open(path, encoding="utf-8") as file:
        try:
            data = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path!r} is not JSON ({error}).") from error
    if not isinstance(data, dict) or "class_name" not in data or "config" not in data:
        raise ValueError(
            f"{path!r} does not hold a serialized {what} (expected the JSON written by {writer})."
        )
    return keras.saving.deserialize_keras_object(data)
