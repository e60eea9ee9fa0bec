"""`export`: a model and its preprocessor -> a SavedModel version that stock TF Serving loads.

The SavedModel takes raw strings (the task's preprocessor from `keras_transformer.preprocessing`
runs inside its graph, built from core TensorFlow ops only: no tensorflow-text, no
`py_function`), and is written in TF Serving's layout (`BASE/VERSION/`) atomically, with
warm-up requests. Pass the preprocessor the model trained with (a run folder's
`preprocessor.json`) and the export frames text exactly as training did; given only a
tokenizer, a default preprocessor is built (truncation at `max_sequence_length`, else the
model's maximum).
"""

import dataclasses
import logging
import os
import time

import numpy as np
import tensorflow as tf

from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
    Seq2SeqTransformer,
)
from keras_transformer.preprocessing import Preprocessor
from keras_transformer.serving.generation import CausalLMModule
from keras_transformer.serving.layout import atomic_version_dir, resolve_version_path
from keras_transformer.serving.seq2seq import Seq2SeqModule
from keras_transformer.serving.signatures import ClassifierModule, EncoderModule, MaskedLMModule
from keras_transformer.serving.warmup import write_warmup_requests

logger = logging.getLogger(__name__)

# Keras' own SavedModel export stored every weight twice here (keras issue 23553); ours must
# stay within this multiple of the weights' bytes.
MAX_SIZE_RATIO = 1.1


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export` wrote.

    Attributes:
        path: str. The version folder.
        base: str. The base folder TF Serving watches.
        version: int.
        signatures: tuple of str. Signature names.
        weights_bytes: int. Bytes of the model's weights (each variable once).
        variables_bytes: int. Bytes of the SavedModel's `variables/` folder.
        size_ratio: float. `variables_bytes / weights_bytes`.
        warmup_records: int. Warm-up requests written (0: none).
        seconds: float. Time the export took.
    """

    path: str
    base: str
    version: int
    signatures: tuple
    weights_bytes: int
    variables_bytes: int
    size_ratio: float
    warmup_records: int
    seconds: float


def _unwrap_pretrained(model, tokenizer, options):
    """A `keras_transformer.pretrained.PretrainedModel` -> its model, tokenizer and settings."""
    if not (hasattr(model, "special_tokens") and hasattr(model, "pooling")):
        return model, tokenizer
    pretrained = model
    if tokenizer is None and pretrained.architecture == "gpt2" and pretrained.tokenizer:
        # Framed as `transformers` frames a GPT-2 prompt (no start token, its eos_token_id).
        return pretrained.model, pretrained.make_preprocessor()
    if tokenizer is None:
        tokenizer = pretrained.tokenizer
        special = pretrained.special_tokens
        if special is not None:
            ids = {"cls_id": special.cls_id, "sep_id": special.sep_id, "pad_id": special.pad_id}
            if special.mask_id is not None:
                ids["mask_id"] = special.mask_id
            options.setdefault("special_ids", ids)
    pooling = pretrained.pooling
    if pooling is not None:
        options.setdefault("pooling", pooling)
        if pooling.max_sequence_length:
            options.setdefault("max_sequence_length", pooling.max_sequence_length)
    return pretrained.model, tokenizer


def serving_module(model, tokenizer=None, preprocessor=None, **options):
    """The `tf.Module` whose signatures `export` saves, for a model of any supported kind.

    | model            | module           | text signature                 |
    | ---------------- | ---------------- | ------------------------------ |
    | `BertClassifier` | `ClassifierModule` | `serving_default`            |
    | `BertBackbone`   | `EncoderModule`  | `embed`                        |
    | `BertMaskedLM`   | `MaskedLMModule` | `fill_mask`                    |
    | `GPTCausalLM`    | `CausalLMModule` | `generate`                     |
    | `Seq2SeqTransformer` | `Seq2SeqModule` | `generate`                  |

    Args:
        model: one of the models above, or a `PretrainedModel` (its tokenizer, special
            tokens and pooling are used).
        tokenizer: tokenizer layer or None (token-id signatures only); a preprocessor here is
            taken as `preprocessor`.
        preprocessor: the task's preprocessor (`ClassifierPreprocessor` for classifiers and
            encoders, `MaskedLMPreprocessor`, `CausalLMPreprocessor`, `Seq2SeqPreprocessor`)
            or None (then one is built from `tokenizer`).
        **options: passed to the module: `class_names`, `pooling`, `top_k`,
            `max_sequence_length` (overrides the preprocessor's `sequence_length`),
            `special_ids`, `max_new_tokens`, `prompt_start_token`, `end_token`,
            `jit_compile` (`GPTCausalLM` only: XLA-compile its decoding). Options that do not
            apply to the model are ignored, except `jit_compile=True` (an error).
    """
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(tokenizer, Preprocessor):
        if preprocessor is not None:
            raise ValueError("Pass either a tokenizer or a preprocessor, not two preprocessors.")
        tokenizer, preprocessor = None, tokenizer
    if preprocessor is not None:
        if tokenizer is not None:
            raise ValueError(
                "Pass either `tokenizer` or `preprocessor` (which owns its tokenizer), not both."
            )
        if not isinstance(preprocessor, Preprocessor):
            raise ValueError(
                "`preprocessor` must be a preprocessor of keras_transformer.preprocessing. "
                f"Received: {type(preprocessor).__name__}"
            )
        tokenizer = preprocessor  # Every module takes its preprocessor in the tokenizer's place.
    model, tokenizer = _unwrap_pretrained(model, tokenizer, options)
    if options.get("jit_compile") and not isinstance(model, GPTCausalLM):
        raise ValueError(
            "`jit_compile=True` XLA-compiles the decoding of a GPTCausalLM's `generate`; "
            f"it does not apply to a {type(model).__name__}. Export without it."
        )
    kinds = (
        (BertClassifier, ClassifierModule, ("class_names", "max_sequence_length", "special_ids")),
        (BertMaskedLM, MaskedLMModule, ("top_k", "max_sequence_length", "special_ids")),
        (BertBackbone, EncoderModule, ("pooling", "max_sequence_length", "special_ids")),
        (
            GPTCausalLM,
            CausalLMModule,
            ("max_new_tokens", "prompt_start_token", "end_token", "jit_compile"),
        ),
        (Seq2SeqTransformer, Seq2SeqModule, ("max_new_tokens",)),
    )
    for model_class, module_class, allowed in kinds:
        if isinstance(model, model_class):
            ignored = sorted(set(options) - set(allowed))
            if ignored:
                logger.info("Options %s do not apply to %s.", ignored, model_class.__name__)
            kwargs = {k: v for k, v in options.items() if k in allowed}
            return module_class(model, tokenizer, **kwargs)
    hint = " Wrap it in GPTCausalLM to export generation." if isinstance(model, GPTBackbone) else ""
    raise ValueError(
        "export supports BertClassifier, BertBackbone, BertMaskedLM, GPTCausalLM and "
        "Seq2SeqTransformer (or a PretrainedModel holding one). Received: "
        f"{type(model).__name__}.{hint}"
    )


def weights_bytes(model):
    """Bytes of a model's weights, each variable counted once (tied weights too)."""
    seen, total = set(), 0
    for weight in model.weights:
        key = id(getattr(weight, "value", weight))
        if key in seen:
            continue
        seen.add(key)
        total += int(np.prod(weight.shape)) * np.dtype(weight.dtype).itemsize
    return total


def folder_bytes(path):
    """Total size of the files under `path`."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def export(
    model,
    tokenizer=None,
    path="saved_models",
    *,
    preprocessor=None,
    name=None,
    version=None,
    overwrite=False,
    warmup=True,
    warmup_texts=None,
    jit_compile=False,
    **options,
):
    """Export a model (and its preprocessor) as a TF Serving version: raw text in, answers out.

    Writes `BASE/VERSION/` (a SavedModel with `assets.extra/tf_serving_warmup_requests`),
    built in a temporary folder beside it and renamed into place, so TF Serving never sees a
    half-written version. Existing versions are never overwritten unless `overwrite`.

    Signatures (see `docs/SERVING.md` for inputs, outputs and example requests):
    - `BertClassifier`: `serving_default` (text -> label, probabilities, logits).
    - `BertBackbone`: `embed` (text -> token_embeddings, padding_mask, sentence_embedding).
    - `BertMaskedLM`: `fill_mask` (text with `[MASK]` -> top_tokens, top_ids, top_scores, ...).
    - `GPTCausalLM`: `generate` (prompts -> generated_text, token_ids, padding_mask), the
      decoding loop with its key/value cache inside the graph.
    - `Seq2SeqTransformer`: `generate` (sources -> generated_text, token_ids,
      padding_mask): the encoder once, cross-attention keys and values once, the decoder
      with its key/value cache; needs the run's `Seq2SeqPreprocessor` (or a tokenizer).
    - every model: `from_token_ids` (`token_ids`, `padding_mask` int32 (B, T) in; a
      `Seq2SeqTransformer`: `encoder_token_ids`, `encoder_padding_mask` (B, S)).
    The text signature is also `serving_default`. Without a tokenizer, only `from_token_ids`
    is exported (and is `serving_default`).

    Args:
        model: `BertClassifier`, `BertBackbone`, `BertMaskedLM`, `GPTCausalLM`,
            `Seq2SeqTransformer`, or a `PretrainedModel` (e.g. `load_minilm()`).
        tokenizer: the model's tokenizer layer (a default preprocessor is built), a
            preprocessor, or None.
        path: str. The base folder TF Serving watches (`saved_models/NAME`), or with `name`
            the folder of base folders; a path ending in a number is a full version folder.
            Defaults to `"saved_models"` (then `name` is needed).
        preprocessor: the preprocessor the model trained with (e.g. `load_preprocessor(run
            folder / "preprocessor.json")`), or None. Given, `tokenizer` must be None.
        name: str or None. Model name: a safe folder name (letters, digits, `._-`).
        version: int or None. Defaults to the next free version.
        overwrite: bool. Replace an existing version. Defaults to `False`.
        warmup: bool. Write warm-up requests. Defaults to `True`.
        warmup_texts: list of str or None. Sample texts for them (defaults: a few samples).
        jit_compile: bool. `GPTCausalLM` only: XLA-compile the decoding loop of `generate`
            and `from_token_ids` (`tf.function(jit_compile=True)`; the same tokens as the
            plain loop, faster on CPU). Stock TF Serving then needs
            `--xla_cpu_compilation_enabled=true` (see `CausalLMModule`). Defaults to `False`.
        **options: model-specific settings: `class_names` (classifier label names),
            `pooling` (`"mean"`, `"cls"`, `"pooler"` or a callable; encoder), `top_k`
            (fill_mask candidates), `max_sequence_length` (truncation), `special_ids`,
            `max_new_tokens` (generate default), `prompt_start_token`, `end_token`.

    Returns:
        `ExportResult`.

    Raises:
        ValueError: unsupported model, unsafe name, bad option.
        FileExistsError: the version exists and `overwrite` is false.

    Example:
    >>> result = export(classifier, tokenizer, "saved_models", name="sentiment",
    ...                 class_names=["negative", "positive"])
    >>> result.path
    'saved_models/sentiment/1'
    """
    start = time.perf_counter()
    if name is None and os.path.normpath(os.fspath(path)) == "saved_models":
        raise ValueError("Give the model a `name` (its folder under saved_models/).")
    base, version = resolve_version_path(path, name=name, version=version)
    if jit_compile is not False:
        options["jit_compile"] = jit_compile
    module = serving_module(model, tokenizer, preprocessor=preprocessor, **options)
    signatures = module.signatures()
    with atomic_version_dir(base, version=version, overwrite=overwrite) as target:
        tf.saved_model.save(module, target["path"], signatures=signatures)
        records = 0
        if warmup:
            requests = module.warmup_inputs(*([warmup_texts] if warmup_texts else []))
            write_warmup_requests(target["path"], os.path.basename(base), requests)
            records = len(requests)
        stored = folder_bytes(os.path.join(target["path"], "variables"))
    weights = weights_bytes(module.model)
    ratio = stored / max(weights, 1)
    if ratio > MAX_SIZE_RATIO:
        logger.warning(
            "The SavedModel's variables take %.2fx the weights' bytes (%d vs %d).",
            ratio,
            stored,
            weights,
        )
    return ExportResult(
        path=target["path"],
        base=base,
        version=target["version"],
        signatures=tuple(sorted(signatures)),
        weights_bytes=weights,
        variables_bytes=stored,
        size_ratio=round(ratio, 4),
        warmup_records=records,
        seconds=round(time.perf_counter() - start, 3),
    )
