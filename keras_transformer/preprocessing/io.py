"""Save and load a preprocessor as one JSON file: its Keras config, tokenizer included.

    save_preprocessor(preprocessor, "runs/x/preprocessor.json")
    preprocessor = load_preprocessor("runs/x/preprocessor.json")

The file holds `keras.saving.serialize_keras_object(preprocessor)` (the tokenizer, its
vocabulary, the sequence lengths and the special tokens), written through a temporary file
and a rename, so a reader never sees half a file. A run folder saves one, and
`workflows export --run` restores it, so the export frames text exactly as the run trained.
"""

# Importing the modules registers the preprocessor and tokenizer classes with Keras.
from keras_transformer.preprocessing import (  # noqa: F401
    causal_lm_preprocessor,
    classifier_preprocessor,
    masked_lm_preprocessor,
    seq2seq_preprocessor,
)
from keras_transformer.preprocessing.preprocessor import Preprocessor
from keras_transformer.text import char_tokenizer, wordpiece  # noqa: F401
from keras_transformer.text.io import read_serialized, write_serialized


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
    return write_serialized(preprocessor, path)


def load_preprocessor(path):
    """Read a preprocessor written by `save_preprocessor`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a serialized preprocessor.
    """
    preprocessor = read_serialized(
        path, "preprocessor", "keras_transformer.preprocessing.save_preprocessor"
    )
    if not isinstance(preprocessor, Preprocessor):
        raise ValueError(f"{path!r} holds a {type(preprocessor).__name__}, not a preprocessor.")
    return preprocessor
