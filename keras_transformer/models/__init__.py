"""Transformer models: BERT-style, GPT-style and encoder-decoder.

Backbones are functional Keras models taking a dict of `"token_ids"` and `"padding_mask"`;
tasks are built from a backbone (`GPTCausalLM(backbone)`) and have a default `compile`.
`Backbone.from_size("mini", vocabulary_size=...)` builds a named size (see `SIZES`).
"""

from keras_transformer.models.backbone import Backbone, Task
from keras_transformer.models.bert import BertBackbone, BertClassifier, BertMaskedLM
from keras_transformer.models.gpt import GPTBackbone, GPTCausalLM
from keras_transformer.models.seq2seq import Seq2SeqTransformer
from keras_transformer.models.sizes import SIZES, size_arguments

__all__ = [
    "SIZES",
    "Backbone",
    "BertBackbone",
    "BertClassifier",
    "BertMaskedLM",
    "GPTBackbone",
    "GPTCausalLM",
    "Seq2SeqTransformer",
    "Task",
    "size_arguments",
]
