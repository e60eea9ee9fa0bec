"""Transformer models: BERT-style, GPT-style and encoder-decoder.

Backbones are functional Keras models taking a dict of inputs (`"token_ids"` and
`"padding_mask"`; encoder and decoder ones for `Seq2SeqBackbone`); tasks are built from a
backbone (`GPTCausalLM(backbone)`, `Seq2SeqTransformer(backbone)`) and have a default
`compile`; the generative ones share one `generate` (greedy, sampling, beam search; see
`keras_transformer.models.generation`).
`Backbone.from_size("mini", vocabulary_size=...)` builds a named size (see `SIZES`).
"""

from keras_transformer.models.backbone import Backbone, GenerativeTask, Task
from keras_transformer.models.bert import BertBackbone, BertClassifier, BertMaskedLM
from keras_transformer.models.gpt import GPTBackbone, GPTCausalLM
from keras_transformer.models.losses import TokenMeanCrossEntropy
from keras_transformer.models.seq2seq import Seq2SeqBackbone, Seq2SeqTransformer
from keras_transformer.models.sizes import SIZES, size_arguments

__all__ = [
    "SIZES",
    "Backbone",
    "BertBackbone",
    "BertClassifier",
    "BertMaskedLM",
    "GPTBackbone",
    "GPTCausalLM",
    "GenerativeTask",
    "Seq2SeqBackbone",
    "Seq2SeqTransformer",
    "Task",
    "TokenMeanCrossEntropy",
    "size_arguments",
]
