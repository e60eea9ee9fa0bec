"""One preprocessor per task: text -> model inputs, the same in `tf.data` and in the SavedModel.

Each preprocessor is a Keras layer of core TensorFlow ops (no tensorflow-text, no
`py_function`) that owns its tokenizer, sequence length and special tokens (looked up once,
at construction). Training maps it over `tf.data` (`keras_transformer.data.pipelines`); every
export signature calls the same object (`keras_transformer.serving`); a run folder saves it as
`preprocessor.json` (`save_preprocessor` / `load_preprocessor`).

- `ClassifierPreprocessor`: text or text pairs -> `token_ids`, `segment_ids`, `padding_mask`;
  labels through. Also the framing of the `embed` export.
- `MaskedLMPreprocessor`: the same framing plus BERT's 80/10/10 masking, seeded; `[MASK]`
  markers for `fill_mask`.
- `CausalLMPreprocessor`: stream packing for training; prompt packing for generation.
- `Seq2SeqPreprocessor`: source and target, the teacher-forcing shift; sources for generation.
"""

from keras_transformer.preprocessing.causal_lm_preprocessor import CausalLMPreprocessor
from keras_transformer.preprocessing.classifier_preprocessor import ClassifierPreprocessor
from keras_transformer.preprocessing.io import load_preprocessor, save_preprocessor
from keras_transformer.preprocessing.masked_lm_preprocessor import MaskedLMPreprocessor
from keras_transformer.preprocessing.preprocessor import (
    Preprocessor,
    special_token_id,
    special_token_ids,
)
from keras_transformer.preprocessing.seq2seq_preprocessor import Seq2SeqPreprocessor

__all__ = [
    "CausalLMPreprocessor",
    "ClassifierPreprocessor",
    "MaskedLMPreprocessor",
    "Preprocessor",
    "Seq2SeqPreprocessor",
    "load_preprocessor",
    "save_preprocessor",
    "special_token_id",
    "special_token_ids",
]
