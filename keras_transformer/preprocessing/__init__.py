"""One preprocessor per task: text -> model inputs, the same in `tf.data` and in the SavedModel.

Each preprocessor is a Keras layer of core TensorFlow ops (no tensorflow-text, no
`py_function`) that owns its tokenizer, sequence length and special tokens. Training maps it
over `tf.data` (`keras_transformer.data.pipelines`); every export signature calls the same
object (`keras_transformer.serving`); a run folder saves it as `preprocessor.json`.

- `CausalLMPreprocessor`: stream packing for training; prompt packing for generation.
"""

from keras_transformer.preprocessing.causal_lm_preprocessor import CausalLMPreprocessor
from keras_transformer.preprocessing.preprocessor import Preprocessor, special_token_id

__all__ = [
    "CausalLMPreprocessor",
    "Preprocessor",
    "special_token_id",
]
