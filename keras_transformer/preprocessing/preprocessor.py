"""`Preprocessor`: the base of the task preprocessors, and the checks and look-ups they share.

A preprocessor is a Keras layer of core TensorFlow ops that owns a tokenizer (a layer of
`keras_transformer.text`), its sequence lengths and its special tokens. `tf.data` maps it over
batches of text for training; the exported SavedModel calls the same object inside its
signatures, so serving sees exactly what training saw.
"""

import keras
import tensorflow as tf


def special_token_ids(tokenizer, tokens, task):
    """The ids of special tokens, by role, or one one-line `ValueError` naming all missing.

    The one place where preprocessors turn special token names into ids (once, at
    construction).

    Args:
        tokenizer: a tokenizer layer with `token_to_id`.
        tokens: dict `{role: token}`, e.g. `{"cls_token": "[CLS]", "sep_token": "[SEP]"}`.
        task: str. Who needs them (for the message), e.g. `"ClassifierPreprocessor"`.

    Returns:
        dict `{role: int}`.
    """
    missing = [
        f"{token!r} ({role})" for role, token in tokens.items() if not has_token(tokenizer, token)
    ]
    if missing:
        raise ValueError(
            f"{task} needs the special token(s) {', '.join(missing)}, which the tokenizer's "
            f"vocabulary ({tokenizer.vocabulary_size()} tokens) lacks: use a vocabulary that "
            "reserves them (e.g. from `train_word_piece_vocabulary`) or name other tokens."
        )
    return {role: int(tokenizer.token_to_id(token)) for role, token in tokens.items()}


def special_token_id(tokenizer, token, task, role="token"):
    """The id of one special token (see `special_token_ids`)."""
    return special_token_ids(tokenizer, {role: token}, task)[role]


def has_token(tokenizer, token):
    """Whether `token` is in the tokenizer's vocabulary."""
    try:
        tokenizer.token_to_id(token)
    except (ValueError, KeyError):
        return False
    return True


def auto_token_id(tokenizer, token, candidates, task, role):
    """`token`'s id; `"auto"`: the first of `candidates` in the vocabulary (or None); None: None."""
    if token is None:
        return None
    if token == "auto":
        for candidate in candidates:
            if has_token(tokenizer, candidate):
                return special_token_id(tokenizer, candidate, task, role)
        return None
    return special_token_id(tokenizer, token, task, role)


def to_text_tensor(text, name, task):
    """A string tensor of shape (B,) (a scalar becomes (1,)) from `text`, or a `ValueError`.

    Args:
        text: str, bytes, list of them, or a string tensor of rank 0 or 1.
        name: str. The input's name for the message.
        task: str. The preprocessor's name for the message.

    Returns:
        `(texts (B,), was_scalar)`.
    """
    if isinstance(text, (str, bytes)):
        text = tf.constant(text, tf.string)
    elif isinstance(text, list):
        text = tf.constant(text, tf.string) if text else tf.zeros([0], tf.string)
    elif not isinstance(text, (tf.Tensor, tf.RaggedTensor)):
        text = tf.convert_to_tensor(text)
    if (
        isinstance(text, tf.RaggedTensor)
        or text.dtype != tf.string
        or text.shape.rank
        not in (
            0,
            1,
        )
    ):
        kind = "ragged" if isinstance(text, tf.RaggedTensor) else text.dtype.name
        raise ValueError(
            f"{task} takes `{name}` as strings of shape (B,) or a scalar string. Received: "
            f"{name} of dtype {kind}, shape {text.shape}"
        )
    if text.shape.rank == 0:
        return text[tf.newaxis], True
    return text, False


def check_sequence_length(value, name, minimum):
    """`value` if an int >= `minimum`, else a one-line `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    return value


def check_tokenizer(tokenizer, task):
    """A tokenizer layer of `keras_transformer.text`, else a one-line `ValueError`."""
    if not isinstance(tokenizer, keras.layers.Layer) or not hasattr(tokenizer, "token_to_id"):
        raise ValueError(
            f"{task} needs a tokenizer layer such as WordPieceTokenizer or CharacterTokenizer. "
            f"Received: tokenizer of type {type(tokenizer).__name__}"
        )
    if getattr(tokenizer, "sequence_length", None):
        raise ValueError(
            f"{task} needs a tokenizer with ragged outputs (sequence_length=None); it packs and "
            f"pads itself. Received: a tokenizer with sequence_length={tokenizer.sequence_length}"
        )
    return tokenizer


class Preprocessor(keras.layers.Layer):
    """Base of the task preprocessors: a weightless layer of core TF ops owning a tokenizer.

    Inputs are not converted by Keras (strings and ragged tensors stay TensorFlow tensors) and
    Python strings may be passed positionally. Subclasses store their tokenizer(s) and
    arguments, look special tokens up once with `special_token_id`, and list the tokenizer
    arguments in `TOKENIZER_ARGUMENTS` so that `get_config` / `from_config` serialize them with
    `keras.saving.serialize_keras_object`.
    """

    TOKENIZER_ARGUMENTS = ("tokenizer",)

    def __init__(self, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        for argument in self.TOKENIZER_ARGUMENTS:
            value = getattr(self, argument)
            config[argument] = None if value is None else keras.saving.serialize_keras_object(value)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for argument in cls.TOKENIZER_ARGUMENTS:
            if isinstance(config.get(argument), dict):
                config[argument] = keras.saving.deserialize_keras_object(config[argument])
        return cls(**config)
