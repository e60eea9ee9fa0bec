"""Ours -> `to_huggingface` -> `from_huggingface` gives the same model, tokenizer and pooling."""

import json

import numpy as np
import pytest
from hf_helpers import all_positions, padded_batch, tiny_bert, tiny_gpt

from keras_transformer.models import BertBackbone
from keras_transformer.pretrained import SentencePooling, from_huggingface, to_huggingface
from keras_transformer.text.wordpiece import WordPieceTokenizer

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "is", "eat", "##ing"]
VOCABULARY += ["food", "bread", ".", "horse", "riding", "ride", "##s"]


def assert_same_outputs(ours, theirs):
    for key in ours:
        np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]))


def test_bert_backbone_round_trip_is_identical(tmp_path):
    model = tiny_bert(activation="gelu_approximate")
    folder = to_huggingface(model, path=tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["hidden_act"] == "gelu_new"
    loaded = from_huggingface(folder)
    assert isinstance(loaded.model, BertBackbone) and loaded.left_as_initialized == ()
    assert loaded.model.get_config() == {**model.get_config(), "name": loaded.model.name}
    inputs = padded_batch()
    segments = {**inputs, "segment_ids": (inputs["token_ids"] % 3).astype("int32")}
    assert_same_outputs(model(segments), loaded.model(segments))


def test_bert_masked_lm_round_trip_is_identical(tmp_path):
    model = tiny_bert(masked_lm=True)
    loaded = from_huggingface(to_huggingface(model, path=tmp_path))
    assert type(loaded.model).__name__ == "BertMaskedLM"
    assert loaded.left_as_initialized == ()  # The pooler is written too (as `bert.pooler`).
    inputs = padded_batch()
    inputs["mask_positions"] = all_positions(inputs)
    np.testing.assert_array_equal(np.asarray(model(inputs)), np.asarray(loaded.model(inputs)))
    backbone_only = from_huggingface(tmp_path, task="backbone").model
    np.testing.assert_array_equal(
        np.asarray(model.backbone(padded_batch())["pooled_output"]),
        np.asarray(backbone_only(padded_batch())["pooled_output"]),
    )


def test_gpt_round_trip_is_identical(tmp_path):
    model = tiny_gpt()
    loaded = from_huggingface(to_huggingface(model, path=tmp_path))
    inputs = padded_batch()
    np.testing.assert_array_equal(np.asarray(model(inputs)), np.asarray(loaded.model(inputs)))
    generated = loaded.model.generate([[3, 4, 5]], max_new_tokens=4)["token_ids"]
    np.testing.assert_array_equal(
        generated, model.generate([[3, 4, 5]], max_new_tokens=4)["token_ids"]
    )
    with pytest.raises(ValueError, match="embed"):
        loaded.embed(["text"])
    with pytest.raises(ValueError, match="no tokenizer"):
        loaded.encode(["text"])


def test_tokenizer_and_pooling_round_trip(tmp_path):
    tokenizer = WordPieceTokenizer(VOCABULARY, lowercase=True, strip_accents=False)
    pooling = SentencePooling(modes=("cls", "mean"), normalize=True, max_sequence_length=12)
    model = tiny_bert()
    folder = to_huggingface(model, tokenizer, tmp_path, pooling=pooling)
    loaded = from_huggingface(folder)
    assert loaded.tokenizer.get_vocabulary() == VOCABULARY
    assert (loaded.tokenizer.lowercase, loaded.tokenizer.strip_accents) == (True, False)
    assert loaded.pooling.modes == ("cls", "mean") and loaded.pooling.normalize
    assert loaded.pooling.max_sequence_length == 12
    texts = ["A man is eating food.", "A man rides a horse."]
    encoded = loaded.encode(texts)
    assert encoded["token_ids"][0].tolist()[:8] == [2, 5, 6, 7, 8, 9, 10, 12]
    embeddings = loaded.embed(texts)
    assert embeddings.shape == (2, 32)  # cls and mean concatenated, 16 each
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    # A second round trip of the loaded result keeps the tokenizer and the pooling.
    again = from_huggingface(to_huggingface(loaded, path=tmp_path / "again"))
    np.testing.assert_array_equal(again.embed(texts), embeddings)


def test_embed_pools_over_real_tokens_only(tmp_path):
    tokenizer = WordPieceTokenizer(VOCABULARY)
    loaded = from_huggingface(to_huggingface(tiny_bert(), tokenizer, tmp_path))
    assert loaded.pooling.modes == ("mean",) and not loaded.pooling.normalize  # The default.
    alone = loaded.embed(["a man"])
    batched = loaded.embed(["a man", "a man is eating food . a man is riding a horse ."])
    np.testing.assert_allclose(batched[:1], alone, atol=1e-5)
    inputs = loaded.encode(["a man"])
    sequence = np.asarray(loaded.model(inputs)["sequence_output"])
    np.testing.assert_allclose(alone[0], sequence[0].mean(axis=0), atol=1e-5)
    assert loaded.encode(["a man is eating"], sequence_length=4)["token_ids"].tolist() == [
        [2, 5, 6, 3]
    ]


def test_mixed_precision_load(tmp_path):
    model = tiny_bert()
    loaded = from_huggingface(to_huggingface(model, path=tmp_path), dtype="mixed_bfloat16")
    assert loaded.model.transformer_blocks[0].compute_dtype == "bfloat16"
    inputs = padded_batch()
    rows = inputs["padding_mask"].astype(bool)
    ours = np.asarray(loaded.model(inputs)["sequence_output"], "float32")[rows]
    np.testing.assert_allclose(ours, np.asarray(model(inputs)["sequence_output"])[rows], atol=0.1)
