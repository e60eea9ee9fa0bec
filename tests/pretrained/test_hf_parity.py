"""Parity with the reference implementation: Hugging Face `transformers` (PyTorch).

Each test builds a small, randomly initialised `transformers` model (every parameter random,
biases and layer norms included), saves it with `save_pretrained`, imports it with
`from_huggingface`, and compares outputs on a padded batch at the real positions. Then the
reverse: our models written by `to_huggingface` load in `transformers` and agree.
"""

import logging

import numpy as np
import pytest
from hf_helpers import (
    VOCABULARY_SIZE,
    all_positions,
    padded_batch,
    real_rows,
    require,
    tiny_bert,
    tiny_gpt,
)

from keras_transformer.pretrained import from_huggingface, to_huggingface
from keras_transformer.text.wordpiece import WordPieceTokenizer

torch = require("torch")
transformers = require("transformers")

TOLERANCE = 1e-4
logging.getLogger("transformers").setLevel(logging.ERROR)


def randomized(model, seed=0):
    """A `transformers` model with every parameter random, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.2
            is_norm_weight = ("LayerNorm" in name or "layer_norm" in name or ".ln_" in name) and (
                name.endswith("weight")
            )
            parameter.copy_(noise + 1.0 if is_norm_weight else noise)
    model.tie_weights()  # The random copy broke the tie of the decoder to the embeddings.
    return model.eval()


def reference(model, inputs, **extra):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(inputs["padding_mask"], dtype=torch.long),
            **extra,
        )


def max_error(ours, theirs, rows=None):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if rows is not None:
        ours, theirs = ours[rows], theirs[rows]
    return float(np.abs(ours - theirs).max())


def save(model, folder):
    model.save_pretrained(folder)
    return folder


def bert_config(**kwargs):
    return transformers.BertConfig(
        vocab_size=VOCABULARY_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=24,
        type_vocab_size=2,
        **kwargs,
    )


def test_bert_model_with_pooler(tmp_path):
    reference_model = randomized(transformers.BertModel(bert_config()))
    loaded = from_huggingface(save(reference_model, tmp_path))
    assert loaded.model is loaded.backbone and loaded.left_as_initialized == ()
    inputs = padded_batch()
    segments = (np.arange(9)[None, :] >= 3).astype("int32") * inputs["padding_mask"]
    expected = reference(reference_model, inputs, token_type_ids=torch.tensor(segments).long())
    ours = loaded.model({**inputs, "segment_ids": segments})
    assert max_error(ours["sequence_output"], expected.last_hidden_state, real_rows()) < TOLERANCE
    assert max_error(ours["pooled_output"], expected.pooler_output) < TOLERANCE


def test_bert_masked_lm_without_pooler(tmp_path):
    reference_model = randomized(transformers.BertForMaskedLM(bert_config(hidden_act="relu")))
    loaded = from_huggingface(save(reference_model, tmp_path))
    assert type(loaded.model).__name__ == "BertMaskedLM"
    assert loaded.left_as_initialized == ("pooler",)
    inputs = padded_batch()
    logits = loaded.model({**inputs, "mask_positions": all_positions(inputs)})
    expected = reference(reference_model, inputs).logits
    assert max_error(logits, expected, real_rows()) < TOLERANCE


def test_bert_for_pretraining_reports_the_unused_next_sentence_head(tmp_path):
    reference_model = randomized(transformers.BertForPreTraining(bert_config()))
    loaded = from_huggingface(save(reference_model, tmp_path), task="backbone")
    assert set(loaded.unused_tensors) >= {"cls.seq_relationship.weight"}
    inputs = padded_batch()
    expected = reference(reference_model, inputs, output_hidden_states=True)
    ours = loaded.model(inputs)
    assert max_error(ours["sequence_output"], expected.hidden_states[-1], real_rows()) < TOLERANCE


def test_distilbert(tmp_path):
    config = transformers.DistilBertConfig(
        vocab_size=VOCABULARY_SIZE,
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=40,
        max_position_embeddings=24,
    )
    masked_lm = randomized(transformers.DistilBertForMaskedLM(config))
    loaded = from_huggingface(save(masked_lm, tmp_path / "masked_lm"))
    inputs = padded_batch()
    logits = loaded.model({**inputs, "mask_positions": all_positions(inputs)})
    assert max_error(logits, reference(masked_lm, inputs).logits, real_rows()) < TOLERANCE
    assert loaded.left_as_initialized == ("pooler",)
    # Segment ids change nothing: DistilBERT has no token types (our table is zeros).
    backbone = from_huggingface(tmp_path / "masked_lm", task="backbone").model
    plain = backbone(inputs)["sequence_output"]
    with_segments = backbone({**inputs, "segment_ids": inputs["padding_mask"]})["sequence_output"]
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(with_segments))
    expected = reference(masked_lm.distilbert, inputs).last_hidden_state
    assert max_error(plain, expected, real_rows()) < TOLERANCE


def test_gpt2_causal_lm(tmp_path):
    config = transformers.GPT2Config(
        vocab_size=VOCABULARY_SIZE,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=24,
        bos_token_id=None,
        eos_token_id=None,
    )
    reference_model = randomized(transformers.GPT2LMHeadModel(config))
    loaded = from_huggingface(save(reference_model, tmp_path))
    assert type(loaded.model).__name__ == "GPTCausalLM" and loaded.tokenizer is None
    inputs = padded_batch()
    expected = reference(reference_model, inputs, output_hidden_states=True)
    assert max_error(loaded.model(inputs), expected.logits, real_rows()) < TOLERANCE
    hidden = loaded.backbone(inputs)
    assert max_error(hidden, expected.hidden_states[-1], real_rows()) < TOLERANCE


@pytest.mark.parametrize("kind", ["bert", "bert_masked_lm", "gpt2"])
def test_our_export_loads_in_transformers(tmp_path, kind):
    model = tiny_gpt() if kind == "gpt2" else tiny_bert(masked_lm=kind == "bert_masked_lm")
    folder = to_huggingface(model, path=tmp_path)
    auto = {
        "bert": transformers.AutoModel,
        "bert_masked_lm": transformers.AutoModelForMaskedLM,
        "gpt2": transformers.AutoModelForCausalLM,
    }[kind]
    reference_model, info = auto.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"]
    inputs = padded_batch()
    expected = reference(reference_model.eval(), inputs)
    if kind == "bert":
        ours = model(inputs)
        assert max_error(ours["sequence_output"], expected.last_hidden_state, real_rows()) < 1e-4
        assert max_error(ours["pooled_output"], expected.pooler_output) < TOLERANCE
    elif kind == "bert_masked_lm":
        logits = model({**inputs, "mask_positions": all_positions(inputs)})
        assert max_error(logits, expected.logits, real_rows()) < TOLERANCE
    else:
        assert max_error(model(inputs), expected.logits, real_rows()) < TOLERANCE


def test_exported_tokenizer_gives_our_ids_in_transformers(tmp_path):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox"]
    vocabulary += ["jump", "##s", "##ed", "over", "lazy", "dog", ".", ",", "!", "cafe", "un"]
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=True)
    model = tiny_bert()
    folder = to_huggingface(model, tokenizer, tmp_path)
    reference_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    loaded = from_huggingface(folder)
    texts = ["The quick brown fox jumps over the lazy dog.", "Café, un-jumped!", "QUICK   fox"]
    ours = loaded.encode(texts)
    for row, text in enumerate(texts):
        real = ours["token_ids"][row][ours["padding_mask"][row] == 1].tolist()
        assert real == reference_tokenizer(text)["input_ids"], text
