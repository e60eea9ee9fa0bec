"""Tiny models, tokenizers and sample texts shared by the serving tests."""

import string

import numpy as np

from keras_transformer.models import (
    BertBackbone,
    GPTBackbone,
    GPTCausalLM,
)
from keras_transformer.text import SPECIAL_TOKENS

WORDS = ["the", "movie", "was", "great", "terrible", "paris", "capital", "of", "france", "is"]
# Mixed lengths, empty and whitespace-only texts, emoji, accents, CJK.
TEXTS = [
    "The movie was great!",
    "",
    "   \t\n ",
    "Paris is the capital of France, and the film was terrible… 🎬🙂",
    "naïve café 東京 " * 5,
]
CHARACTER_CORPUS = ["To be, or not to be: that is the question.", "ROMEO: But soft! 🙂"]


def word_piece_vocabulary():
    """Special tokens, words, and single characters (so any ASCII word can be pieced)."""
    letters = list(string.ascii_lowercase + string.digits)
    return (
        list(SPECIAL_TOKENS)
        + WORDS
        + letters
        + ["##" + c for c in letters]
        + list(string.punctuation)
        + ["\ufffd"]
    )


def bert_backbone(vocabulary_size, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
        max_sequence_length=32,
        dropout=0.0,
    )


def causal_lm(vocabulary_size, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    backbone = GPTBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
        max_sequence_length=48,
        dropout=0.0,
    )
    return GPTCausalLM(backbone)


def bert_inputs(tokenizer, texts, max_length=32):
    """What the export should compute: `[CLS] ids[:L-2] [SEP]` per text, unpadded."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    rows = []
    for ids in tokenizer(list(texts)).to_list():
        row = np.array([[cls_id, *ids[: max_length - 2], sep_id]], "int32")
        rows.append({"token_ids": row, "padding_mask": np.ones_like(row)})
    return rows


def padded_bert_batch(tokenizer, texts, max_length=32):
    """`bert_inputs` right-padded into one batch: `(token_ids, padding_mask)` int32 (B, W)."""
    rows = [r["token_ids"][0] for r in bert_inputs(tokenizer, texts, max_length)]
    width = max(len(row) for row in rows)
    token_ids = np.stack([np.pad(row, (0, width - len(row))) for row in rows])
    padding_mask = (np.arange(width)[None, :] < np.array([[len(r)] for r in rows])).astype("int32")
    return token_ids, padding_mask
