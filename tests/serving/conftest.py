"""One export of each model kind (tiny models), shared by the serving tests."""

import types

import pytest
from serving_helpers import (
    CHARACTER_CORPUS,
    bert_backbone,
    causal_lm,
    word_piece_vocabulary,
)

from keras_transformer.models import BertClassifier, BertMaskedLM
from keras_transformer.serving import export
from keras_transformer.text import CharacterTokenizer, WordPieceTokenizer


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """One export of each model kind: classifier, encoder, masked LM, causal LM."""
    root = tmp_path_factory.mktemp("saved_models")
    word_pieces = WordPieceTokenizer(word_piece_vocabulary())
    characters = CharacterTokenizer.from_text(CHARACTER_CORPUS)
    vocabulary_size = word_pieces.vocabulary_size()
    classifier = BertClassifier(bert_backbone(vocabulary_size, seed=1), num_classes=3)
    encoder = bert_backbone(vocabulary_size, seed=2)
    masked_lm = BertMaskedLM(bert_backbone(vocabulary_size, seed=3))
    lm = causal_lm(characters.vocabulary_size(), seed=4)
    results = {
        "classifier": export(
            classifier,
            word_pieces,
            root,
            name="classifier",
            class_names=["negative", "neutral", "positive"],
        ),
        "encoder": export(encoder, word_pieces, root, name="encoder", pooling="mean"),
        "masked_lm": export(masked_lm, word_pieces, root, name="masked_lm", top_k=4),
        "causal_lm": export(lm, characters, root, name="causal_lm", max_new_tokens=6),
    }
    return types.SimpleNamespace(
        root=root,
        word_pieces=word_pieces,
        characters=characters,
        classifier=classifier,
        encoder=encoder,
        masked_lm=masked_lm,
        lm=lm,
        results=results,
    )
