import numpy as np
import pytest
from layer_checks import assert_close, run_layer_checks, run_mixed_precision

from keras_transformer.layers import (
    ClassificationHead,
    LanguageModelHead,
    MaskedLMHead,
    TokenEmbedding,
)

RNG = np.random.default_rng(2)


def random(*shape):
    return RNG.normal(size=shape).astype("float32")


def test_masked_lm_head_checks():
    x, positions = random(2, 6, 8), np.array([[1, 4], [0, 5]], "int32")
    run_layer_checks(MaskedLMHead, {"vocabulary_size": 12}, [x, positions], num_weights=6)
    run_mixed_precision(MaskedLMHead, {"vocabulary_size": 12}, [x, positions])


def test_masked_lm_head_predicts_only_at_positions():
    embedding = TokenEmbedding(12, 8)
    embedding(np.zeros((1, 1), "int32"))
    head = MaskedLMHead(12, token_embedding=embedding)
    x = random(2, 6, 8)
    all_positions = np.tile(np.arange(6, dtype="int32"), (2, 1))
    everywhere = np.asarray(head(x, all_positions))  # (2, 6, 12)
    positions = np.array([[1, 4], [0, 5]], "int32")
    picked = np.asarray(head(x, positions))
    assert picked.shape == (2, 2, 12)
    assert_close(picked, np.take_along_axis(everywhere, positions[..., None], axis=1))
    # Tied: no output kernel of its own; the embedding matrix is the projection.
    assert not any("output_kernel" in w.path for w in head.weights)
    assert any(w is embedding.embeddings for w in head.weights)


def test_language_model_head_checks():
    x = random(2, 3, 8)
    run_layer_checks(LanguageModelHead, {"vocabulary_size": 12}, [x], num_weights=1)
    run_layer_checks(
        LanguageModelHead, {"vocabulary_size": 12, "use_bias": True}, [x], num_weights=2
    )
    run_mixed_precision(LanguageModelHead, {"vocabulary_size": 12}, [x])


def test_language_model_head_tied_and_softmax():
    embedding = TokenEmbedding(12, 8)
    embedding(np.zeros((1, 1), "int32"))
    x = random(2, 3, 8)
    logits = LanguageModelHead(12, token_embedding=embedding)(x)
    assert_close(logits, x @ np.asarray(embedding.embeddings).T)
    probabilities = np.asarray(LanguageModelHead(12, activation="softmax")(x))
    assert_close(probabilities.sum(-1), np.ones((2, 3)), atol=1e-6)


def test_tied_vocabulary_must_match():
    with pytest.raises(ValueError, match="vocabulary differs"):
        LanguageModelHead(13, token_embedding=TokenEmbedding(12, 8))


def test_classification_head_checks():
    x = random(4, 8)
    run_layer_checks(ClassificationHead, {"num_classes": 3}, [x], num_weights=2)
    run_layer_checks(ClassificationHead, {"num_classes": 3, "hidden_dim": 5}, [x], num_weights=4)
    logits = run_mixed_precision(ClassificationHead, {"num_classes": 3}, [x])
    assert logits.dtype == "float32"


def test_classification_head_bad_classes():
    with pytest.raises(ValueError, match="num_classes"):
        ClassificationHead(1)
