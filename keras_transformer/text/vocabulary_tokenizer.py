"""What every tokenizer layer of ours shares: the vocabulary lookups and Python-string inputs."""

import keras
import tensorflow as tf


class VocabularyTokenizer(keras.layers.Layer):
    """Base of our tokenizer layers: a `vocabulary` list whose indices are the ids.

    Subclasses set `self.vocabulary` (a list of str), `self._token_to_id` and
    `self.sequence_length` in `__init__`, implement `call`, and add their own arguments to
    `get_config`. Calling the layer also accepts a Python string or a list of them (Keras
    itself takes only tensors positionally).
    """

    def get_vocabulary(self):
        """Return the vocabulary as a list of tokens (the id of a token is its index)."""
        return list(self.vocabulary)

    def vocabulary_size(self):
        """Return the number of tokens in the vocabulary."""
        return len(self.vocabulary)

    def token_to_id(self, token):
        """Return the id of `token`; raises `ValueError` if it is not in the vocabulary."""
        if token not in self._token_to_id:
            raise ValueError(
                f"Token {token!r} is not in the vocabulary ({len(self.vocabulary)} tokens). "
                "Add it to the vocabulary or use a token that is in it."
            )
        return self._token_to_id[token]

    def id_to_token(self, id):
        """Return the token of `id`; raises `ValueError` if `id` is out of range."""
        if not 0 <= id < len(self.vocabulary):
            raise ValueError(f"`id` must be in [0, {len(self.vocabulary) - 1}]. Received: id={id}")
        return self.vocabulary[id]

    @tf.autograph.experimental.do_not_convert
    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (str, bytes, list, tuple)):
            inputs = (
                tf.constant(inputs, tf.string)
                if inputs or isinstance(inputs, (str, bytes))
                else tf.zeros([0], tf.string)
            )
        return super().__call__(inputs, *args, **kwargs)

    def compute_output_spec(self, inputs):
        shape = tuple(inputs.shape) + (self.sequence_length,)
        return keras.KerasTensor(shape, dtype="int32", ragged=not self.sequence_length)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)  # always int32 ids
        config.update(
            {"vocabulary": list(self.vocabulary), "sequence_length": self.sequence_length}
        )
        return config
