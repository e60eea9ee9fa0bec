"""Tokenizers and texts shared by the preprocessor tests."""

import string

from keras_transformer.text import SPECIAL_TOKENS, CharacterTokenizer, WordPieceTokenizer

WORDS = ["the", "movie", "was", "great", "terrible", "paris", "capital", "of", "france", "is"]
TEXTS = [
    "The movie was great!",
    "",
    "   \t\n ",
    "Paris is the capital of France, and the film was terrible… 🎬🙂",
    "naïve café 東京 " * 5,
    "the [MASK] was [CLS] great",
]
CHARACTER_CORPUS = ["To be, or not to be: that is the question.", "ROMEO: But soft! 🙂"]


def word_piece_vocabulary(special_tokens=SPECIAL_TOKENS):
    """Special tokens, words, and single characters (so any ASCII word can be pieced)."""
    letters = list(string.ascii_lowercase + string.digits)
    return (
        list(special_tokens)
        + WORDS
        + letters
        + ["##" + c for c in letters]
        + list(string.punctuation)
        + ["\ufffd"]
    )


def word_pieces(special_tokens=SPECIAL_TOKENS):
    return WordPieceTokenizer(word_piece_vocabulary(special_tokens))


def characters(reserved_tokens=None):
    kwargs = {} if reserved_tokens is None else {"reserved_tokens": reserved_tokens}
    return CharacterTokenizer.from_text(CHARACTER_CORPUS, **kwargs)
