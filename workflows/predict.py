"""predict: run a signature of an exported SavedModel on text and print JSON.

Texts come from --text, from a file (--input-file, one text per line) or from stdin
(--input-file -). Other inputs of the signature go in --inputs as JSON; inputs left out take
the defaults recorded in the SavedModel, as in TF Serving:

    python -m workflows predict --model saved_models/sentiment --text "Loved it!"
    python -m workflows predict --model saved_models/shakespeare --signature generate \\
        --text "ROMEO:" --inputs '{"max_new_tokens": 40, "temperature": 0.8, "seed": 1}'
    cat sentences.txt | python -m workflows predict --model saved_models/minilm \\
        --signature embed --input-file - --outputs sentence_embedding

--model is a version folder or a base folder (then its latest version). Prints one JSON
object holding a list of predictions, one per text. Needs only TensorFlow to run the model.
"""

import dataclasses
import json
import sys

from keras_transformer.serving.layout import latest_version_path
from keras_transformer.serving.predict import predict


def setting(default, help):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Config:
    model: str | None = setting(None, "SavedModel version folder, or base folder (latest)")
    signature: str = setting("serving_default", "signature to run")
    text: str | None = setting(None, "one input text")
    input_file: str | None = setting(None, "a file of texts, one a line ('-': stdin)")
    inputs: str | None = setting(None, 'other inputs as JSON, e.g. {"max_new_tokens": 20}')
    outputs: str | None = setting(None, "comma-separated output names to print (default: all)")
    batch_size: int = setting(32, "texts per call")


@dataclasses.dataclass(frozen=True)
class Result:
    model_path: str
    signature: str
    count: int
    predictions: list


def read_texts(config, stdin=None):
    """The texts a config names: --text, or the lines of --input-file ('-': stdin)."""
    if (config.text is None) == (config.input_file is None):
        raise ValueError("Give exactly one of --text or --input-file (use '-' for stdin).")
    if config.text is not None:
        return [config.text]
    if config.input_file == "-":
        lines = (stdin or sys.stdin).read().splitlines()
    else:
        with open(config.input_file, encoding="utf-8", errors="surrogateescape") as file:
            lines = file.read().splitlines()
    return [line.encode("utf-8", errors="surrogateescape") for line in lines]


def run(config, stdin=None):
    if not config.model:
        raise ValueError("Give --model: a SavedModel folder such as saved_models/NAME.")
    path = latest_version_path(config.model)
    texts = read_texts(config, stdin)
    inputs = json.loads(config.inputs) if config.inputs else {}
    if not isinstance(inputs, dict):
        raise ValueError(f"--inputs must be a JSON object. Received: {config.inputs!r}")
    outputs = [name.strip() for name in config.outputs.split(",")] if config.outputs else None
    predictions = predict(
        path,
        texts,
        signature=config.signature,
        batch_size=config.batch_size,
        outputs=outputs,
        **inputs,
    )
    return Result(path, config.signature, len(predictions), predictions)
