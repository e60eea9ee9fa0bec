"""Tokenizers, packing and masking built from core TensorFlow ops only.

The same layers tokenize inside `tf.data` during training and inside an exported SavedModel
during serving: no tensorflow-text, no `py_function`, so a stock TF Serving binary loads them.
Only vocabulary *training* (`train_word_piece_vocabulary`) uses keras-hub / tensorflow-text.

- `WordPieceTokenizer`: BERT's WordPiece, the same ids as keras-hub's tokenizer.
- `CharacterTokenizer`: characters or bytes, for character-level language models.
- `BytePairTokenizer`: GPT-2's byte-level BPE, the same ids as Hugging Face `tokenizers`;
  `train_byte_pair_vocabulary` learns its merges (plain Python, no tensorflow-text).
- `load_vocabulary` / `save_vocabulary` / `train_word_piece_vocabulary` and the special tokens.
- `StartEndPacker`, `MultiSegmentPacker`: fixed-length model inputs.
- `MaskedLMMaskGenerator`: BERT's 15% / 80-10-10 masking, seeded and stateless.
"""

from keras_transformer.text.byte_pair import BytePairTokenizer
from keras_transformer.text.byte_pair_training import train_byte_pair_vocabulary
from keras_transformer.text.char_tokenizer import CHARACTER_RESERVED_TOKENS, CharacterTokenizer
from keras_transformer.text.masking import MaskedLMMaskGenerator
from keras_transformer.text.normalization import UnicodeNormalizer
from keras_transformer.text.packing import MultiSegmentPacker, StartEndPacker
from keras_transformer.text.vocabulary import (
    BERT_SPECIAL_TOKENS,
    BOS_TOKEN,
    CLS_TOKEN,
    EOS_TOKEN,
    MASK_TOKEN,
    PAD_TOKEN,
    SEP_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    load_vocabulary,
    save_vocabulary,
    train_word_piece_vocabulary,
    validate_vocabulary,
)
from keras_transformer.text.wordpiece import WordPieceTokenizer

__all__ = [
    "BERT_SPECIAL_TOKENS",
    "BOS_TOKEN",
    "CHARACTER_RESERVED_TOKENS",
    "CLS_TOKEN",
    "EOS_TOKEN",
    "MASK_TOKEN",
    "PAD_TOKEN",
    "SEP_TOKEN",
    "SPECIAL_TOKENS",
    "UNK_TOKEN",
    "BytePairTokenizer",
    "CharacterTokenizer",
    "MaskedLMMaskGenerator",
    "MultiSegmentPacker",
    "StartEndPacker",
    "UnicodeNormalizer",
    "WordPieceTokenizer",
    "load_vocabulary",
    "save_vocabulary",
    "train_byte_pair_vocabulary",
    "train_word_piece_vocabulary",
    "validate_vocabulary",
]
