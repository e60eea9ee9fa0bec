"""export: a trained model (or the pretrained MiniLM) -> a SavedModel version for TF Serving.

Writes saved_models/NAME/VERSION/ (the next free version unless --version), atomically, with
signatures that take raw strings (the tokenizer runs inside the graph, core TensorFlow ops
only, so stock TF Serving loads it) and warm-up requests in assets.extra/:

    python -m workflows export --model-path runs/x/model.keras \\
        --tokenizer-path runs/x/tokenizer.json --name shakespeare
    python -m workflows export --pretrained minilm --name minilm

Classifiers get `serving_default` (label, probabilities, logits), encoders `embed`, masked
LMs `fill_mask`, causal LMs `generate` (in-graph decoding); every model `from_token_ids`.
See saved_models/SERVING.md for the signatures and example requests.
"""

import dataclasses

import keras

from keras_transformer.serving import export
from keras_transformer.text.io import load_tokenizer

DEFAULT_NAMES = {
    "BertClassifier": "classifier",
    "BertBackbone": "encoder",
    "BertMaskedLM": "masked_lm",
    "GPTCausalLM": "causal_lm",
}


def setting(default, help, choices=None):
    metadata = {"help": help}
    if choices:
        metadata["choices"] = choices
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Config:
    model_path: str | None = setting(None, "a saved .keras model (from pretrain or finetune)")
    tokenizer_path: str | None = setting(None, "its tokenizer JSON (save_tokenizer's format)")
    pretrained: str | None = setting(None, "export a pretrained model instead", ("minilm",))
    output_dir: str = setting("saved_models", "folder holding the models' base folders")
    name: str | None = setting(None, "model name (folder); default: from the model kind")
    version: int | None = setting(None, "version number (default: the next free one)")
    overwrite: bool = setting(False, "replace an existing version")
    class_names: str | None = setting(None, "comma-separated label names of a classifier")
    pooling: str = setting("auto", "encoder sentence pooling", ("auto", "mean", "cls", "pooler"))
    max_sequence_length: int | None = setting(None, "truncate inputs to this many tokens")
    top_k: int = setting(5, "fill_mask: candidates per [MASK]")
    max_new_tokens: int = setting(32, "generate: default number of new tokens")
    warmup: bool = setting(True, "write assets.extra/tf_serving_warmup_requests")


@dataclasses.dataclass(frozen=True)
class Result:
    path: str
    version: int
    signatures: tuple
    weights_bytes: int
    variables_bytes: int
    size_ratio: float
    warmup_records: int
    seconds: float


def load_model_and_tokenizer(config):
    """The model (or `PretrainedModel`) and tokenizer a config names, and a default name."""
    if config.pretrained:
        if config.model_path or config.tokenizer_path:
            raise ValueError("Give either --pretrained or --model-path, not both.")
        from keras_transformer.pretrained import load_minilm

        return load_minilm(), None, config.pretrained
    if not config.model_path:
        raise ValueError("Give --model-path (a .keras file) or --pretrained minilm.")
    model = keras.saving.load_model(config.model_path, compile=False)
    tokenizer = load_tokenizer(config.tokenizer_path) if config.tokenizer_path else None
    return model, tokenizer, DEFAULT_NAMES.get(type(model).__name__, "model")


def run(config):
    model, tokenizer, default_name = load_model_and_tokenizer(config)
    class_names = None
    if config.class_names:
        class_names = [name.strip() for name in config.class_names.split(",")]
    options = {
        "class_names": class_names,
        "pooling": None if config.pooling == "auto" else config.pooling,
        "max_sequence_length": config.max_sequence_length,
        "top_k": config.top_k,
        "max_new_tokens": config.max_new_tokens,
    }
    result = export(
        model,
        tokenizer,
        config.output_dir,
        name=config.name or default_name,
        version=config.version,
        overwrite=config.overwrite,
        warmup=config.warmup,
        **options,
    )
    print(f"[export] wrote {result.path} ({', '.join(result.signatures)})", flush=True)
    return Result(
        path=result.path,
        version=result.version,
        signatures=result.signatures,
        weights_bytes=result.weights_bytes,
        variables_bytes=result.variables_bytes,
        size_ratio=result.size_ratio,
        warmup_records=result.warmup_records,
        seconds=result.seconds,
    )
