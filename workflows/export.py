"""export: a trained model (or the pretrained MiniLM) -> a SavedModel version for TF Serving.

Writes saved_models/NAME/VERSION/ (the next free version unless --version), atomically, with
signatures that take raw strings (the run's preprocessor runs inside the graph, core
TensorFlow ops only, so stock TF Serving loads it) and warm-up requests in assets.extra/:

    python -m workflows export --run runs/transfer-x --name sentiment
    python -m workflows export --run runs/pretrain-x --name shakespeare
    python -m workflows export --run runs/seq2seq-x --name g2p
    python -m workflows export --model-path other/model.keras \\
        --tokenizer-path other/tokenizer.json --name other
    python -m workflows export --pretrained minilm --name minilm
    python -m workflows export --huggingface path/to/gpt2 --name gpt2

--run takes a run folder's model.keras and preprocessor.json (the tokenizer, sequence length
and special tokens its training and evaluation used: served text is truncated at the run's
--sequence-length, not the model's maximum), and for a classifier its labels.json (the label
names in class-index order, written by transfer, finetune, scratch and distill), so the served
`label` is the dataset's own label string; --class-names overrides it. A run folder from
before preprocessor.json existed falls back to its tokenizer.json and the sequence_length of
its config.json (with a printed note). --max-sequence-length overrides the truncation.
A seq2seq run's preprocessor.json holds its Seq2SeqPreprocessor (source and target
tokenizers, encoder and decoder lengths): the served `generate` frames sources as its
training did and decodes up to its decoder length unless --max-new-tokens says otherwise.

--huggingface takes a Hugging Face checkpoint folder (BERT, MiniLM / sentence-transformers,
DistilBERT or GPT-2: config.json, model.safetensors and the tokenizer files; or a repo id
already in the huggingface_hub cache), read by `keras_transformer.pretrained.from_huggingface`.
A GPT-2 prompt is framed as `transformers` frames it: no start token, its last
max_sequence_length - max_new_tokens tokens kept, generation stopping at the checkpoint's
eos_token_id; so greedy `generate` gives the text of `model.generate(tokenizer(prompt)
.input_ids)` on those tokens.

Classifiers get `serving_default` (label, probabilities, logits), encoders `embed`, masked
LMs `fill_mask`, causal LMs and seq2seq models `generate` (in-graph decoding); every model
`from_token_ids`.

--jit-compile on (causal LMs only; default off) XLA-compiles the decoding loop of `generate`
and `from_token_ids`: the same tokens, faster (`python benchmarks/serving_latency.py --only
generation` prints both exports' tokens/s side by side). The SavedModel loads
and answers in any TensorFlow process and TF1 Session, but stock TF Serving runs it only when
started with --xla_cpu_compilation_enabled=true (without it, the first request fails).
See docs/SERVING.md for the signatures and example requests.
"""

import dataclasses
import json
import os

import keras

from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    BertMaskedLM,
    GPTCausalLM,
    Seq2SeqTransformer,
)
from keras_transformer.preprocessing import (
    CausalLMPreprocessor,
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
    Seq2SeqPreprocessor,
    load_preprocessor,
)
from keras_transformer.serving import export
from keras_transformer.text.io import load_tokenizer
from workflows.config import setting

PREPROCESSORS = (
    (BertClassifier, ClassifierPreprocessor),
    (BertMaskedLM, MaskedLMPreprocessor),
    (BertBackbone, ClassifierPreprocessor),
    (GPTCausalLM, CausalLMPreprocessor),
    (Seq2SeqTransformer, Seq2SeqPreprocessor),
)

DEFAULT_NAMES = {
    "BertClassifier": "classifier",
    "BertBackbone": "encoder",
    "BertMaskedLM": "masked_lm",
    "GPTCausalLM": "causal_lm",
    "Seq2SeqTransformer": "seq2seq",
}


# `--jit-compile` of the export: on or off (no `auto`: the serving machine decides, not this one).
JIT_COMPILE_CHOICES = ("off", "on")


@dataclasses.dataclass(frozen=True)
class Config:
    run: str | None = setting(
        None, "a run folder (model.keras, preprocessor.json or tokenizer.json, labels.json)"
    )
    model_path: str | None = setting(None, "a saved .keras model, when not a run folder")
    tokenizer_path: str | None = setting(None, "its tokenizer JSON (save_tokenizer's format)")
    pretrained: str | None = setting(None, "export a pretrained model instead", ("minilm",))
    huggingface: str | None = setting(
        None, "a Hugging Face checkpoint folder (BERT, MiniLM, GPT-2) to export instead"
    )
    output_dir: str = setting("saved_models", "folder holding the models' base folders")
    name: str | None = setting(None, "model name (folder); default: from the model kind")
    version: int | None = setting(None, "version number (default: the next free one)")
    overwrite: bool = setting(False, "replace an existing version")
    class_names: str | None = setting(
        None, "comma-separated label names of a classifier (default: the run's labels.json)"
    )
    pooling: str = setting("auto", "encoder sentence pooling", ("auto", "mean", "cls", "pooler"))
    max_sequence_length: int | None = setting(
        None, "truncate inputs to this many tokens (default: the run's sequence length)"
    )
    top_k: int = setting(5, "fill_mask: candidates per [MASK]")
    max_new_tokens: int | None = setting(
        None, "generate: default number of new tokens (default: 32; seq2seq: the run's T)"
    )
    warmup: bool = setting(True, "write assets.extra/tf_serving_warmup_requests")
    jit_compile: str = setting(
        "off",
        "causal LM generate: XLA-compile the decoding loop (faster; stock TF Serving then "
        "needs --xla_cpu_compilation_enabled=true)",
        JIT_COMPILE_CHOICES,
        legacy={True: "on", False: "off"},  # YAML 1.1 reads `on` / `off` as booleans
    )


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


def read_label_names(path):
    """The label names in a run's `labels.json` (a JSON list of strings, class-index order)."""
    try:
        with open(path, encoding="utf-8") as file:
            names = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error}). Pass --class-names instead.") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"{path} must hold a JSON list of label names in class-index order. Received: "
            f"{names!r}. Pass --class-names instead."
        )
    return names


def run_files(run):
    """The paths of a run folder's model, tokenizer and label names (None if it has none).

    Raises:
        FileNotFoundError: `run` is not a folder, or lacks `model.keras` or `tokenizer.json`.
    """
    if not os.path.isdir(run):
        raise FileNotFoundError(
            f"--run {run!r} is not a folder. Give a run folder (holding model.keras and "
            "tokenizer.json), or --model-path for a .keras file elsewhere."
        )
    model_path = os.path.join(run, "model.keras")
    tokenizer_path = os.path.join(run, "tokenizer.json")
    for path, what in ((model_path, "model"), (tokenizer_path, "tokenizer")):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--run {run!r} holds no {what} ({os.path.basename(path)} is missing): the run "
                "did not finish, or this is not a run folder. Rerun it with the same "
                "--output-dir to resume, or give --model-path and --tokenizer-path."
            )
    labels_path = os.path.join(run, "labels.json")
    return model_path, tokenizer_path, labels_path if os.path.isfile(labels_path) else None


def preprocessor_for(model, preprocessor):
    """The preprocessor kind `model`'s export takes, keeping `preprocessor`'s tokenizer and length.

    A masked-LM run's `MaskedLMPreprocessor` frames text as a `ClassifierPreprocessor` does, so
    its encoder (`BertBackbone`) is served with one of those at the same sequence length. A
    `Seq2SeqTransformer` is served only with its own `Seq2SeqPreprocessor`.

    Raises:
        ValueError: a seq2seq model with another preprocessor, or the other way round.
    """
    if isinstance(model, Seq2SeqTransformer) != isinstance(preprocessor, Seq2SeqPreprocessor):
        raise ValueError(
            f"A {type(model).__name__} cannot be served with a "
            f"{type(preprocessor).__name__}: a Seq2SeqTransformer and a Seq2SeqPreprocessor "
            "go together. Check that preprocessor.json belongs to the run's model.keras."
        )
    for model_class, preprocessor_class in PREPROCESSORS:
        if isinstance(model, model_class):
            if isinstance(preprocessor, preprocessor_class):
                return preprocessor
            return preprocessor_class(preprocessor.tokenizer, preprocessor.sequence_length)
    return preprocessor


def run_preprocessor(run, model):
    """A run folder's preprocessor for exporting `model`: its preprocessor.json if it has one.

    Older run folders hold only tokenizer.json: the preprocessor is rebuilt from it and the
    `sequence_length` of the run's config.json (what its training and evaluation used), with a
    printed note; without either length, the export truncates at the model's maximum.
    """
    path = os.path.join(run, "preprocessor.json")
    if os.path.isfile(path):
        return preprocessor_for(model, load_preprocessor(path))
    if isinstance(model, Seq2SeqTransformer):
        raise FileNotFoundError(
            f"--run {run!r} holds a Seq2SeqTransformer but no preprocessor.json (its source "
            "and target tokenizers and lengths, written by `python -m workflows seq2seq`): "
            "the run did not finish, or pass --model-path and --tokenizer-path (one tokenizer "
            "for sources and targets)."
        )
    tokenizer = load_tokenizer(os.path.join(run, "tokenizer.json"))
    config_path = os.path.join(run, "config.json")
    length = None
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as file:
            length = json.load(file).get("sequence_length")
    kind = next((p for m, p in PREPROCESSORS if isinstance(model, m)), None)
    if not isinstance(length, int) or kind is None:
        print(
            f"[export] note: {run} has no preprocessor.json and its config.json gives no "
            "sequence_length: inputs are truncated at the model's max_sequence_length.",
            flush=True,
        )
        return tokenizer
    print(
        f"[export] note: {run} has no preprocessor.json (a run from before it was saved): "
        f"using tokenizer.json and sequence_length={length} from config.json.",
        flush=True,
    )
    return kind(tokenizer, length)


def load_huggingface(path):
    """A Hugging Face checkpoint folder -> `(PretrainedModel, preprocessor or None, name)`.

    GPT-2 gets its `make_preprocessor()` (no start token, as `transformers` frames prompts);
    encoders take their tokenizer and pooling from the `PretrainedModel` itself.

    Raises:
        FileNotFoundError: no such folder or cached repo, or a file it needs is missing.
        ValueError: an unsupported or malformed checkpoint; the message names the flag.
    """
    from keras_transformer.pretrained import from_huggingface

    try:
        pretrained = from_huggingface(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--huggingface {path!r}: {error}") from None
    except ValueError as error:
        raise ValueError(f"--huggingface {path!r}: {error}") from None
    text = None
    if not pretrained.is_encoder and pretrained.tokenizer is not None:
        text = pretrained.make_preprocessor()
    return pretrained, text, DEFAULT_NAMES.get(type(pretrained.model).__name__, "model")


def load_model_and_tokenizer(config):
    """The model (or `PretrainedModel`), its preprocessor or tokenizer, label names and default
    name that a config names (`--run`: the run's preprocessor, see `run_preprocessor`)."""
    given = [
        flag
        for flag, value in (
            ("--run", config.run),
            ("--pretrained", config.pretrained),
            ("--huggingface", config.huggingface),
            ("--model-path", config.model_path),
        )
        if value
    ]
    if len(given) > 1 or (config.tokenizer_path and not config.model_path):
        flags = given + ["--tokenizer-path"] * bool(config.tokenizer_path)
        raise ValueError(
            f"Give one of --run (a run folder), --model-path (with --tokenizer-path), "
            f"--pretrained minilm or --huggingface PATH, not {' and '.join(flags)}."
        )
    if config.pretrained:
        from keras_transformer.pretrained import load_minilm

        return load_minilm(), None, None, config.pretrained
    if config.huggingface:
        model, text, name = load_huggingface(config.huggingface)
        return model, text, None, name
    label_names = None
    if config.run:
        model_path, _, labels_path = run_files(config.run)
        label_names = read_label_names(labels_path) if labels_path else None
        model = keras.saving.load_model(model_path, compile=False)
        text = run_preprocessor(config.run, model)
    elif config.model_path:
        if not os.path.isfile(config.model_path):
            raise FileNotFoundError(f"--model-path {config.model_path!r}: no such file.")
        model = keras.saving.load_model(config.model_path, compile=False)
        text = load_tokenizer(config.tokenizer_path) if config.tokenizer_path else None
    else:
        raise ValueError(
            "Give --run (a run folder), --model-path (a .keras file), --pretrained minilm or "
            "--huggingface PATH (a Hugging Face checkpoint folder)."
        )
    return model, text, label_names, DEFAULT_NAMES.get(type(model).__name__, "model")


def class_names_for(config, model, label_names):
    """A classifier's label names: `--class-names`, else the run's `labels.json`, else None.

    Raises:
        ValueError: `labels.json` names more or fewer labels than the model has classes.
    """
    if config.class_names:
        return [name.strip() for name in config.class_names.split(",")]
    if label_names is not None and len(label_names) != getattr(model, "num_classes", None):
        raise ValueError(
            f"{os.path.join(config.run, 'labels.json')} names {len(label_names)} labels, but "
            f"the model in {config.run} has {getattr(model, 'num_classes', 'no')} classes. "
            "Pass --class-names with one name per class."
        )
    return label_names


def run(config):
    model, tokenizer, label_names, default_name = load_model_and_tokenizer(config)
    class_names = class_names_for(config, model, label_names)
    options = {
        "class_names": class_names,
        "pooling": None if config.pooling == "auto" else config.pooling,
        "max_sequence_length": config.max_sequence_length,
        "top_k": config.top_k,
        "max_new_tokens": config.max_new_tokens,
    }
    if config.jit_compile not in JIT_COMPILE_CHOICES:
        raise ValueError(
            f"Unknown --jit-compile {config.jit_compile!r}: expected one of "
            f"{', '.join(JIT_COMPILE_CHOICES)}."
        )
    result = export(
        model,
        tokenizer,
        config.output_dir,
        name=config.name or default_name,
        version=config.version,
        overwrite=config.overwrite,
        warmup=config.warmup,
        jit_compile=config.jit_compile == "on",
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
