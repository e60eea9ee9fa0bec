"""CausalLMPreprocessor: stream blocks and prompt packing equal Python references; round trip;
bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from preprocessing_helpers import CHARACTER_CORPUS, characters

from keras_transformer.preprocessing import CausalLMPreprocessor
from keras_transformer.text import BytePairTokenizer
from keras_transformer.text.byte_pair_files import BYTE_SYMBOLS

PROMPTS = ["ROMEO: But soft!", "", "To be, or not to be: that is the question.", "x"]


def test_blocks_are_the_stream_cut_in_order():
    tokenizer = characters()
    preprocessor = CausalLMPreprocessor(tokenizer, 6)
    texts = CHARACTER_CORPUS * 3
    x, targets, weights = preprocessor(texts)
    eos = tokenizer.token_to_id("[EOS]")
    flat = [i for ids in tokenizer(texts).to_list() for i in ids + [eos]]
    blocks = [flat[i : i + 7] for i in range(0, len(flat) - 6, 7)]
    assert x["token_ids"].numpy().tolist() == [b[:-1] for b in blocks]
    assert targets.numpy().tolist() == [b[1:] for b in blocks]
    assert x["padding_mask"].numpy().all() and (weights.numpy() == 1).all()
    assert weights.dtype == tf.float32 and x["padding_mask"].dtype == tf.bool


def _reference_prompts(tokenizer, prompts, max_new_tokens, limit, start):
    """Left-truncate, put the start id first, stand in 0 for an empty prompt, right-pad."""
    rows, lengths = [], []
    for ids in tokenizer(prompts).to_list():
        room = max(limit - max_new_tokens - (start is not None), 0)
        ids = ids[len(ids) - room :] if len(ids) > room else ids
        ids = ([start] if start is not None else []) + ids
        lengths.append(len(ids))
        rows.append(ids or [0])
    width = max(len(r) for r in rows)
    token_ids = [r + [0] * (width - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return token_ids, mask, lengths


@pytest.mark.parametrize(
    "start_token, reserved, expected_start",
    [("auto", None, "[EOS]"), ("auto", ["[PAD]", "[UNK]", "[BOS]"], "[BOS]"), (None, None, None)],
)
def test_generate_preprocess_equals_the_reference(start_token, reserved, expected_start):
    tokenizer = characters(reserved)
    preprocessor = CausalLMPreprocessor(tokenizer, 12, start_token=start_token)
    start = None if expected_start is None else tokenizer.token_to_id(expected_start)
    assert preprocessor.start_token_id == start
    token_ids, mask, lengths, empty = preprocessor.generate_preprocess(tf.constant(PROMPTS), 4)
    want_ids, want_mask, want_lengths = _reference_prompts(tokenizer, PROMPTS, 4, 12, start)
    assert token_ids.numpy().tolist() == want_ids
    assert mask.numpy().tolist() == want_mask and mask.dtype == tf.int32
    assert lengths.numpy().tolist() == want_lengths
    assert empty.numpy().tolist() == [n == 0 for n in want_lengths]
    assert any(n == 0 for n in want_lengths) == (start is None)


def test_generate_postprocess_keeps_new_tokens_up_to_the_end_token():
    tokenizer = characters()
    preprocessor = CausalLMPreprocessor(tokenizer, 12, start_token=None)
    eos = tokenizer.token_to_id("[EOS]")
    a, b, c = (tokenizer.token_to_id(ch) for ch in "abe")
    # Rows: a 2-token prompt + 3 new (the last is [EOS]), an empty prompt (stand-in), a 1-token
    # prompt + 3 new.
    token_ids = tf.constant([[a, b, c, a, eos], [0, a, b, c, 0], [b, a, a, a, 0]])
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]])
    lengths, empty = tf.constant([2, 0, 1]), tf.constant([False, True, False])
    out = preprocessor.generate_postprocess(token_ids, mask, lengths, empty, 3)
    assert out["token_ids"].numpy().tolist() == [[c, a, 0], [0, 0, 0], [a, a, a]]
    assert out["padding_mask"].numpy().tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    assert out["generated_text"].numpy().tolist() == [b"ea", b"", b"aaa"]


def test_byte_pair_text_ends_with_and_prompts_start_with_gpt2_end_token():
    # GPT-2's vocabulary has no [EOS]: "auto" takes its <|endoftext|> for both roles.
    vocabulary = list(BYTE_SYMBOLS) + ["<|endoftext|>"]
    tokenizer = BytePairTokenizer(vocabulary, [], special_tokens=["<|endoftext|>"])
    end = len(BYTE_SYMBOLS)
    preprocessor = CausalLMPreprocessor(tokenizer, 8)
    assert preprocessor.end_token_id == preprocessor.start_token_id == end
    stream = preprocessor.stream(["ab", "c"]).numpy().tolist()
    assert stream == tokenizer(["ab"]).to_list()[0] + [end] + tokenizer(["c"]).to_list()[0] + [end]
    token_ids, _, lengths, _ = preprocessor.generate_preprocess(["ab"], 2)
    assert token_ids.numpy().tolist() == [[end] + tokenizer(["ab"]).to_list()[0]]
    generated = tf.constant(
        [token_ids.numpy()[0].tolist() + [tokenizer(["x"]).to_list()[0][0], end]]
    )
    out = preprocessor.generate_postprocess(generated, tf.ones_like(generated), lengths, [False], 2)
    assert out["generated_text"].numpy().tolist() == [b"x"]


def test_config_round_trip_gives_equal_outputs():
    preprocessor = CausalLMPreprocessor(characters(), 5, end_token="[EOS]", start_token="[BOS]")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(preprocessor)
    )
    assert isinstance(restored, CausalLMPreprocessor)
    assert restored.get_config() == preprocessor.get_config()
    for a, b in zip(
        tf.nest.flatten(preprocessor(CHARACTER_CORPUS)),
        tf.nest.flatten(restored(CHARACTER_CORPUS)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_bad_input():
    tokenizer = characters()
    with pytest.raises(ValueError, match=r"needs the special token\(s\) .\[SEP\]. \(start_token\)"):
        CausalLMPreprocessor(tokenizer, 5, start_token="[SEP]")
    preprocessor = CausalLMPreprocessor(tokenizer, 5)
    with pytest.raises(ValueError, match=r"takes `x` as strings of shape \(B,\).*int32"):
        preprocessor(tf.constant([1, 2]))
    with pytest.raises(ValueError, match=r"takes `prompts` as strings.*shape \(1, 1\)"):
        preprocessor.generate_preprocess(tf.constant([["a"]]), 2)
    with pytest.raises(ValueError, match="`sequence_length` must be an int >= 1"):
        CausalLMPreprocessor(tokenizer, 0)
