"""Exports built from a preprocessor: it sets the truncation, the `preprocess` signature returns
what the model is given, text pairs are served, and mismatched preprocessors fail clearly."""

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import TEXTS, bert_backbone, bert_inputs, padded_bert_batch

from keras_transformer.models import BertClassifier
from keras_transformer.preprocessing import (
    CausalLMPreprocessor,
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
)
from keras_transformer.serving import SavedModelPredictor, export, read_warmup_requests

LONG = "the movie was great and paris is the capital of france " * 4  # 48 words.


def logits_of(model, rows):
    return np.concatenate([np.asarray(model(x, training=False)) for x in rows])


def x_width(predictor, text):
    return predictor("preprocess", texts=[text])["token_ids"].shape[1]


def test_the_preprocessor_sets_the_truncation(exports, tmp_path):
    preprocessor = ClassifierPreprocessor(exports.word_pieces, sequence_length=10)
    result = export(exports.classifier, preprocessor=preprocessor, path=tmp_path, name="short")
    predictor = SavedModelPredictor(result.path)
    texts = [LONG, *TEXTS]
    served = predictor("serving_default", texts=texts)["logits"]
    short = logits_of(exports.classifier, bert_inputs(exports.word_pieces, texts, max_length=10))
    np.testing.assert_allclose(served, short, atol=1e-5, rtol=0)
    full = logits_of(exports.classifier, bert_inputs(exports.word_pieces, [LONG], max_length=32))
    assert not np.allclose(served[0], full[0], atol=1e-5, rtol=0)  # The model's maximum differs.
    assert x_width(predictor, LONG) == 10
    # `preprocess` returns exactly the tensors the model is given.
    x = predictor("preprocess", texts=texts)
    token_ids, padding_mask = padded_bert_batch(exports.word_pieces, texts, max_length=10)
    np.testing.assert_array_equal(x["token_ids"], token_ids)
    np.testing.assert_array_equal(x["padding_mask"], padding_mask)
    np.testing.assert_array_equal(x["segment_ids"], np.zeros_like(token_ids))
    assert {k: v.dtype for k, v in x.items()} == dict.fromkeys(x, np.int32)


def test_a_tokenizer_builds_the_default_preprocessor(exports):
    predictor = SavedModelPredictor(exports.results["classifier"].path)
    x = predictor("preprocess", texts=[LONG, *TEXTS])
    token_ids, padding_mask = padded_bert_batch(exports.word_pieces, [LONG, *TEXTS])
    np.testing.assert_array_equal(x["token_ids"], token_ids)
    np.testing.assert_array_equal(x["padding_mask"], padding_mask)
    masked = SavedModelPredictor(exports.results["masked_lm"].path)
    x = masked("preprocess", texts=["paris is the [MASK] of france."])
    assert (x["token_ids"] == exports.word_pieces.token_to_id("[MASK]")).sum() == 1


def test_text_pairs_are_served_as_trained(exports, tmp_path):
    preprocessor = ClassifierPreprocessor(exports.word_pieces, sequence_length=16, num_segments=2)
    result = export(exports.classifier, preprocessor, tmp_path, name="pairs")
    predictor = SavedModelPredictor(result.path)
    first, second = [LONG, *TEXTS], [*TEXTS, LONG]
    pair = {"text": [t.encode() for t in first], "text_pair": [t.encode() for t in second]}
    served = predictor("serving_default", **pair)
    x = predictor("preprocess", **pair)
    expected = preprocessor((tf.constant(first), tf.constant(second)))
    width = x["token_ids"].shape[1]
    for name in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(x[name], np.asarray(expected[name][:, :width], "int32"))
    assert np.asarray(expected["padding_mask"][:, width:]).sum() == 0
    inputs = {"token_ids": x["token_ids"], "padding_mask": x["padding_mask"]}
    np.testing.assert_allclose(
        served["logits"], np.asarray(exports.classifier(inputs, training=False)), atol=1e-5
    )
    (_, signature, request), _ = read_warmup_requests(result.path)
    assert signature == "serving_default" and set(request) == {"text", "text_pair"}


def test_mismatched_preprocessors_fail_clearly(exports, tmp_path):
    masked = MaskedLMPreprocessor(exports.word_pieces, 16)
    with pytest.raises(ValueError, match="ClassifierModule takes a ClassifierPreprocessor"):
        export(exports.classifier, preprocessor=masked, path=tmp_path, name="a")
    too_long = ClassifierPreprocessor(exports.word_pieces, sequence_length=64)
    with pytest.raises(ValueError, match=r"sequence_length=64 exceeds .* max_sequence_length=32"):
        export(
            BertClassifier(bert_backbone(exports.word_pieces.vocabulary_size()), 2),
            too_long,
            tmp_path,
            name="b",
        )
    with pytest.raises(ValueError, match="not both"):
        export(exports.classifier, exports.word_pieces, tmp_path, name="c", preprocessor=too_long)


def test_a_causal_lm_export_takes_its_preprocessor(exports, tmp_path):
    preprocessor = CausalLMPreprocessor(exports.characters, 12, start_token="[BOS]")
    result = export(exports.lm, preprocessor=preprocessor, path=tmp_path, name="lm")
    prompts = ["To be, or not", "", "ROMEO: 🙂"]
    served = SavedModelPredictor(result.path)("generate", texts=prompts, max_new_tokens=5)
    start = exports.characters.token_to_id("[BOS]")
    for prompt, ids in zip(prompts, served["token_ids"].tolist(), strict=True):
        prompt_ids = [start, *exports.characters([prompt]).to_list()[0]]
        expected = exports.lm.generate([prompt_ids], max_new_tokens=5)["token_ids"][0]
        new = [i for i in np.asarray(expected)[len(prompt_ids) :].tolist()]
        end = exports.characters.token_to_id("[EOS]")
        new = new[: new.index(end)] if end in new else new
        assert ids[: len(new)] == new and not any(ids[len(new) :])
