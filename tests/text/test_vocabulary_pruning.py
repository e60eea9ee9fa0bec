"""Vocabulary pruning: the pruned tokenizer and models agree with the full ones on the corpus."""

import string

import numpy as np
import pytest

from keras_transformer.models import BertBackbone, BertMaskedLM
from keras_transformer.text import WordPieceTokenizer
from keras_transformer.text.vocabulary_pruning import (
    prune_backbone,
    prune_masked_lm,
    prune_vocabulary,
)

LETTERS = list(string.ascii_lowercase)
VOCAB = (
    ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + LETTERS
    + [".", ",", "!"]
    + ["##" + c for c in LETTERS]
    + ["the", "cat", "dog", "sat", "on", "mat", "run", "play", "jump", "walk", "house"]
    + ["##ed", "##ing", "##er", "##ly", "##at", "##og", "##ump"]
    + ["hat", "bird", "fish", "tree"]
)
CORPUS = ["The cat sat on the mat.", "The dog runs, plays!", "cats jumped"]


def _pieces(tokenizer, texts):
    return [[tokenizer.vocabulary[i] for i in row] for row in tokenizer(texts).to_list()]


@pytest.fixture(scope="module")
def pruned():
    return prune_vocabulary(WordPieceTokenizer(VOCAB), CORPUS)


def test_kept_set_is_corpus_pieces_specials_and_characters_in_order(pruned):
    corpus_pieces = {p for row in _pieces(WordPieceTokenizer(VOCAB), CORPUS) for p in row}
    specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    characters = {t for t in VOCAB if len(t) == 1 or (t.startswith("##") and len(t) == 3)}
    expected = [t for t in VOCAB if t in corpus_pieces | specials | characters]
    assert pruned.vocabulary == expected
    assert "[unused0]" not in pruned.vocabulary and "hat" not in pruned.vocabulary
    assert [VOCAB[i] for i in pruned.kept_ids] == pruned.vocabulary
    assert all(pruned.old_to_new[i] == n for n, i in enumerate(pruned.kept_ids))
    assert (pruned.old_to_new == -1).sum() == len(VOCAB) - len(pruned.vocabulary)


def test_corpus_tokenizes_to_the_same_pieces(pruned):
    full, small = WordPieceTokenizer(VOCAB), pruned.tokenizer()
    assert _pieces(small, CORPUS) == _pieces(full, CORPUS)


def test_held_out_text_keeps_kept_pieces_and_dropped_words_split_into_characters(pruned):
    full, small = WordPieceTokenizer(VOCAB), pruned.tokenizer()
    held_out = ["The bird sat on the tree.", "A fish walks", "cat hat dog"]
    for text, full_row, small_row in zip(
        held_out, _pieces(full, held_out), _pieces(small, held_out), strict=True
    ):
        full_words = full.detokenize(full([text])).numpy()
        small_words = small.detokenize(small([text])).numpy()
        assert small_words == full_words, text  # every word re-joins to the same word
        if all(p in pruned.vocabulary for p in full_row):
            assert small_row == full_row, text
        assert "[UNK]" not in small_row
    # "bird" was dropped: it splits into kept single characters, which re-join to "bird".
    row = _pieces(small, ["bird"])[0]
    assert row == ["b", "##i", "##r", "##d"]


def test_without_characters_unseen_words_become_unk():
    pruned = prune_vocabulary(WordPieceTokenizer(VOCAB), CORPUS, keep_characters=False)
    small = pruned.tokenizer()
    assert _pieces(small, ["bird cat"])[0] == ["[UNK]", "cat"]
    assert _pieces(small, CORPUS) == _pieces(WordPieceTokenizer(VOCAB), CORPUS)


def test_special_tokens_are_kept_and_ids_point_at_the_same_strings(pruned):
    small = pruned.tokenizer()
    for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        new_id = small.token_to_id(token)
        assert small.vocabulary[new_id] == token
        assert pruned.old_to_new[VOCAB.index(token)] == new_id
    assert small.oov_token_id == small.token_to_id("[UNK]")
    assert (
        small.detokenize([[small.token_to_id("[CLS]"), small.token_to_id("cat")]]).numpy()[0]
        == b"[CLS] cat"
    )


def test_explicit_special_tokens_keep_an_unused_token():
    pruned = prune_vocabulary(WordPieceTokenizer(VOCAB), CORPUS, special_tokens=["[unused1]"])
    assert "[unused1]" in pruned.vocabulary and "[unused0]" not in pruned.vocabulary
    assert "[UNK]" in pruned.vocabulary  # the oov token is always kept


def test_dataset_corpus_gives_the_same_pruning(pruned):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(CORPUS)
    assert prune_vocabulary(WordPieceTokenizer(VOCAB), dataset).vocabulary == pruned.vocabulary
    batched = prune_vocabulary(WordPieceTokenizer(VOCAB), dataset.batch(2))
    assert batched.vocabulary == pruned.vocabulary


def _backbone():
    return BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
        dropout=0.0,
    )


def _inputs(tokenizer, texts):
    ids = tokenizer(texts).to_tensor(shape=[None, 12]).numpy().astype("int32")
    return {
        "token_ids": ids,
        "segment_ids": np.zeros_like(ids),
        "padding_mask": (ids != 0).astype("int32"),
    }


def test_pruned_backbone_outputs_equal_full_and_source_is_unchanged(pruned):
    backbone = _backbone()
    before = [w.numpy().copy() for w in backbone.weights]
    small = prune_backbone(backbone, pruned)
    assert small.vocabulary_size == len(pruned.vocabulary)
    assert small.get_config() == {
        **backbone.get_config(),
        "vocabulary_size": len(pruned.vocabulary),
    }
    full_out = backbone(_inputs(WordPieceTokenizer(VOCAB), CORPUS))
    small_out = small(_inputs(pruned.tokenizer(), CORPUS))
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(small_out[key], full_out[key], rtol=1e-5, atol=1e-5)
    for old, w in zip(before, backbone.weights, strict=True):
        np.testing.assert_array_equal(old, w.numpy())
    np.testing.assert_array_equal(
        small.token_embedding.embeddings.numpy(),
        backbone.token_embedding.embeddings.numpy()[pruned.kept_ids],
    )


def test_pruned_masked_lm_gives_full_logits_at_kept_ids(pruned):
    model = BertMaskedLM(_backbone())
    bias = model.masked_lm_head.output_bias
    bias.assign(np.random.default_rng(0).normal(size=bias.shape).astype("float32"))
    before = [w.numpy().copy() for w in model.weights]
    small = prune_masked_lm(model, pruned)
    positions = np.array([[1, 2, 3]] * len(CORPUS), "int32")
    full_logits = model({**_inputs(WordPieceTokenizer(VOCAB), CORPUS), "mask_positions": positions})
    small_logits = small({**_inputs(pruned.tokenizer(), CORPUS), "mask_positions": positions})
    np.testing.assert_allclose(
        small_logits, np.asarray(full_logits)[..., pruned.kept_ids], rtol=1e-5, atol=1e-5
    )
    for old, w in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, w.numpy())


@pytest.mark.parametrize("texts", [[], ["", "   ", "\n"]])
def test_empty_corpus_raises(texts):
    with pytest.raises(ValueError, match="no text"):
        prune_vocabulary(WordPieceTokenizer(VOCAB), texts)


def test_missing_special_token_raises():
    with pytest.raises(ValueError, match=r"\[BOS\].*not in the tokenizer's vocabulary"):
        prune_vocabulary(WordPieceTokenizer(VOCAB), CORPUS, special_tokens=["[CLS]", "[BOS]"])


def test_wrong_vocabulary_size_raises(pruned):
    backbone = BertBackbone(
        vocabulary_size=len(VOCAB) + 1,
        num_layers=1,
        num_heads=1,
        hidden_dim=8,
        intermediate_dim=8,
        max_sequence_length=8,
    )
    with pytest.raises(ValueError, match="pruned from"):
        prune_backbone(backbone, pruned)
