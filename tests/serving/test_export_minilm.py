"""The real pretrained MiniLM encoder exports and embeds as `PretrainedModel.embed` does."""

import numpy as np
import pytest

from keras_transformer.serving import SavedModelPredictor, export

pytestmark = pytest.mark.slow


def test_minilm_export_equals_pretrained_embed(tmp_path):
    from keras_transformer.pretrained import load_minilm

    minilm = load_minilm()  # A wheel that cannot be fetched fails the test with its reason.
    result = export(minilm, path=tmp_path, name="minilm")
    assert result.signatures == ("embed", "from_token_ids", "preprocess", "serving_default")
    assert result.size_ratio <= 1.1
    texts = ["A man is eating food.", "", "A man is eating a piece of bread.", "東京 🙂 " * 300]
    predictor = SavedModelPredictor(result.base)
    for size in (1, len(texts)):
        outputs = predictor("embed", texts=texts[:size])
        np.testing.assert_allclose(
            outputs["sentence_embedding"], minilm.embed(texts[:size]), atol=1e-5, rtol=0
        )
