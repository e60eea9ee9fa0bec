"""Vocabulary files, validation and training."""

import pytest
import tensorflow as tf

from keras_transformer.text import (
    BERT_SPECIAL_TOKENS,
    SPECIAL_TOKENS,
    WordPieceTokenizer,
    load_vocabulary,
    save_vocabulary,
    train_word_piece_vocabulary,
    validate_vocabulary,
)

BERT_LIKE = ["[PAD]"] + [f"[unused{i}]" for i in range(3)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_save_and_load_round_trip(tmp_path):
    vocab = BERT_LIKE + ["the", "##s", "café", "日"]
    path = save_vocabulary(vocab, tmp_path / "vocab.txt")
    assert load_vocabulary(path) == vocab
    # BERT files may end without a newline or use CRLF line ends.
    (tmp_path / "crlf.txt").write_bytes(("\r\n".join(vocab)).encode())
    assert load_vocabulary(tmp_path / "crlf.txt") == vocab


def test_missing_special_token_is_named(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        load_vocabulary(path)
    assert load_vocabulary(path, required_tokens=["[UNK]"])[-1] == "the"


def test_bad_files_and_lists_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_vocabulary(tmp_path / "nowhere.txt")
    (tmp_path / "latin1.txt").write_bytes(b"[PAD]\n[UNK]\ncaf\xe9\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        load_vocabulary(tmp_path / "latin1.txt", required_tokens=())
    with pytest.raises(ValueError, match="index 2"):
        validate_vocabulary(["[UNK]", "a", ""], required_tokens=())
    with pytest.raises(ValueError, match="twice"):
        validate_vocabulary(["a", "a"], required_tokens=())
    with pytest.raises(ValueError, match="empty"):
        validate_vocabulary([], required_tokens=())
    with pytest.raises(ValueError, match="NUL"):
        WordPieceTokenizer(["[UNK]", "a\x00"])


def test_trained_vocabulary_reserves_special_tokens_first():
    texts = ["the quick brown fox jumps over the lazy dog"] * 20 + ["unbelievable films"] * 5
    vocab = train_word_piece_vocabulary(tf.data.Dataset.from_tensor_slices(texts), 60)
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab[0] == "[PAD]" and set(BERT_SPECIAL_TOKENS) <= set(vocab)
    tokenizer = WordPieceTokenizer(vocab)
    ids = tokenizer(["The quick dog"]).to_list()[0]
    assert ids and tokenizer.token_to_id("[UNK]") not in ids
    with pytest.raises(ValueError, match="vocabulary_size"):
        train_word_piece_vocabulary(texts, 5)
