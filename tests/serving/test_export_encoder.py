"""The encoder (`embed`) and masked-LM (`fill_mask`) exports equal the in-memory models."""

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import TEXTS, bert_inputs, padded_bert_batch

from keras_transformer.serving import SavedModelPredictor

MASKED_TEXTS = [
    "paris is the [MASK] of france.",
    "no mask here",
    "[MASK] [MASK] the movie was [MASK]!",
    "",
]


@pytest.fixture(scope="module")
def encoder(exports):
    return SavedModelPredictor(exports.results["encoder"].path)


@pytest.fixture(scope="module")
def masked_lm(exports):
    return SavedModelPredictor(exports.results["masked_lm"].path)


@pytest.mark.parametrize("size", [1, 4])
def test_embed_equals_in_memory_encoder(exports, encoder, size):
    texts = TEXTS[:size]
    outputs = encoder("embed", texts=texts)
    for i, x in enumerate(bert_inputs(exports.word_pieces, texts)):
        sequence = np.asarray(exports.encoder(x, training=False)["sequence_output"])[0]
        length = len(sequence)
        np.testing.assert_array_equal(outputs["padding_mask"][i, :length], 1)
        np.testing.assert_array_equal(outputs["padding_mask"][i, length:], 0)
        np.testing.assert_allclose(
            outputs["token_embeddings"][i, :length], sequence, atol=1e-5, rtol=0
        )
        np.testing.assert_allclose(
            outputs["sentence_embedding"][i], sequence.mean(axis=0), atol=1e-5, rtol=0
        )


def test_embed_is_the_default_signature_and_ids_signature_agrees(exports, encoder):
    text = encoder("serving_default", texts=TEXTS[:3])
    token_ids, padding_mask = padded_bert_batch(exports.word_pieces, TEXTS[:3])
    np.testing.assert_array_equal(text["padding_mask"], padding_mask)
    ids = encoder("from_token_ids", token_ids=token_ids, padding_mask=padding_mask)
    np.testing.assert_allclose(ids["sentence_embedding"], text["sentence_embedding"], atol=1e-6)
    np.testing.assert_allclose(ids["token_embeddings"], text["token_embeddings"], atol=1e-6)


def expected_fill_mask(exports, text, top_k=4):
    """Top-k tokens and scores at each [MASK], computed with the in-memory masked LM."""
    vocabulary = exports.word_pieces.get_vocabulary()
    mask_id, cls_id, sep_id = (vocabulary.index(t) for t in ("[MASK]", "[CLS]", "[SEP]"))
    ids = []
    for i, piece in enumerate(text.split("[MASK]")):
        if i:
            ids.append(mask_id)
        ids.extend(exports.word_pieces([piece]).to_list()[0])
    ids = [cls_id, *ids[:30], sep_id]
    positions = [i for i, t in enumerate(ids) if t == mask_id]
    x = {
        "token_ids": np.array([ids], "int32"),
        "padding_mask": np.ones((1, len(ids)), "int32"),
        "mask_positions": np.array([positions or [0]], "int32"),
    }
    logits = np.asarray(exports.masked_lm(x, training=False))[0][: len(positions)]
    scores, top = tf.math.top_k(tf.nn.softmax(logits), k=top_k)
    return positions, top.numpy(), scores.numpy()


def test_fill_mask_equals_in_memory_masked_lm(exports, masked_lm):
    outputs = masked_lm("fill_mask", texts=MASKED_TEXTS)
    assert outputs["top_tokens"].shape[1:] == (3, 4)
    vocabulary = np.array(exports.word_pieces.get_vocabulary(), dtype=object)
    for i, text in enumerate(MASKED_TEXTS):
        positions, top, scores = expected_fill_mask(exports, text)
        count = len(positions)
        assert outputs["num_masks"][i] == count
        np.testing.assert_array_equal(outputs["mask_positions"][i, :count], positions)
        np.testing.assert_array_equal(outputs["top_ids"][i, :count], top)
        np.testing.assert_allclose(outputs["top_scores"][i, :count], scores, atol=1e-5, rtol=0)
        tokens = [t.decode() for t in outputs["top_tokens"][i, :count].ravel()]
        assert tokens == vocabulary[top.ravel()].tolist()
        assert (outputs["top_scores"][i, count:] == 0).all()


def test_fill_mask_batch_of_one_and_no_masks(exports, masked_lm):
    single = masked_lm("fill_mask", texts=[MASKED_TEXTS[0]])
    positions, top, _ = expected_fill_mask(exports, MASKED_TEXTS[0])
    np.testing.assert_array_equal(single["top_ids"][0], top)
    none = masked_lm("fill_mask", texts=["nothing to fill", ""])
    assert none["top_ids"].shape == (2, 0, 4)
    np.testing.assert_array_equal(none["num_masks"], [0, 0])


def test_fill_mask_token_ids_signature(exports, masked_lm):
    positions, top, scores = expected_fill_mask(exports, MASKED_TEXTS[2])
    vocabulary = exports.word_pieces.get_vocabulary()
    text = MASKED_TEXTS[2]
    ids = []
    for i, piece in enumerate(text.split("[MASK]")):
        if i:
            ids.append(vocabulary.index("[MASK]"))
        ids.extend(exports.word_pieces([piece]).to_list()[0])
    ids = [vocabulary.index("[CLS]"), *ids, vocabulary.index("[SEP]")]
    outputs = masked_lm(
        "from_token_ids",
        token_ids=np.array([ids], "int32"),
        padding_mask=np.ones((1, len(ids)), "int32"),
        mask_positions=np.array([positions], "int32"),
    )
    np.testing.assert_array_equal(outputs["top_ids"][0], top)
    np.testing.assert_allclose(outputs["top_scores"][0], scores, atol=1e-5, rtol=0)
