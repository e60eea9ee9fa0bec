"""save_preprocessor / load_preprocessor: every preprocessor round-trips through one JSON file
(atomically written) and gives equal outputs; bad files fail clearly."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from preprocessing_helpers import TEXTS, characters, word_pieces

from keras_transformer.preprocessing import (
    CausalLMPreprocessor,
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
    Seq2SeqPreprocessor,
    load_preprocessor,
    save_preprocessor,
)
from keras_transformer.text.io import save_tokenizer

SEED = tf.constant([5, 6], tf.int64)
CASES = {
    "classifier": (lambda: ClassifierPreprocessor(word_pieces(), 11), lambda p: p(TEXTS)),
    "masked_lm": (lambda: MaskedLMPreprocessor(word_pieces(), 11), lambda p: p(TEXTS, seed=SEED)),
    "causal_lm": (lambda: CausalLMPreprocessor(characters(), 7), lambda p: p(TEXTS)),
    "seq2seq": (lambda: Seq2SeqPreprocessor(word_pieces(), 9, 7), lambda p: p(TEXTS, TEXTS)),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_round_trip_gives_equal_outputs(tmp_path, kind):
    make, run = CASES[kind]
    preprocessor = make()
    path = save_preprocessor(preprocessor, str(tmp_path / "run" / "preprocessor.json"))
    assert os.listdir(tmp_path / "run") == ["preprocessor.json"]  # No temporary file left.
    restored = load_preprocessor(path)
    assert type(restored) is type(preprocessor)
    assert restored.get_config() == preprocessor.get_config()
    tf.nest.map_structure(np.testing.assert_array_equal, run(preprocessor), run(restored))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Preprocessor file not found"):
        load_preprocessor(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        load_preprocessor(str(tmp_path / "bad.json"))
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="does not hold a serialized preprocessor"):
        load_preprocessor(str(tmp_path / "other.json"))
    save_tokenizer(word_pieces(), str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="not a preprocessor"):
        load_preprocessor(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="must be a preprocessor"):
        save_preprocessor(word_pieces(), str(tmp_path / "x.json"))
