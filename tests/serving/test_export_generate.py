"""In-graph generation: equal to `GPTCausalLM.generate` token for token (greedy and beam
search); recorded defaults; bad input."""

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.serving import SavedModelPredictor

PROMPTS = ["To be, or not", "", "ROMEO: 🙂", "x" * 200]
MAX_LENGTH = 48  # The tiny causal LM's max_sequence_length.


@pytest.fixture(scope="module")
def generator(exports):
    return SavedModelPredictor(exports.results["causal_lm"].path)


def prompt_ids(exports, text, max_new_tokens):
    """[EOS] (the start token: texts follow [EOS] in training streams) + the last ids."""
    eos = exports.characters.token_to_id("[EOS]")
    ids = exports.characters([text]).to_list()[0]
    keep = MAX_LENGTH - max_new_tokens - 1
    return [eos, *ids[len(ids) - keep :]] if len(ids) > keep else [eos, *ids]


def expected_generation(exports, text, max_new_tokens, **settings):
    eos = exports.characters.token_to_id("[EOS]")
    prompt = prompt_ids(exports, text, max_new_tokens)
    out = exports.lm.generate([prompt], max_new_tokens=max_new_tokens, end_token=eos, **settings)
    new = out["token_ids"][0][len(prompt) :][out["padding_mask"][0][len(prompt) :]]
    return [int(t) for t in new if t != eos]


@pytest.mark.parametrize("batch", [[0], [0, 1, 2, 3]])
def test_greedy_generate_equals_in_memory_generate(exports, generator, batch):
    prompts = [PROMPTS[i] for i in batch]
    outputs = generator("generate", texts=prompts, max_new_tokens=6)
    for row, text in enumerate(prompts):
        expected = expected_generation(exports, text, 6)
        length = int(outputs["padding_mask"][row].sum())
        assert outputs["token_ids"][row, :length].tolist() == expected, text
        detokenized = exports.characters.detokenize([expected]).numpy()[0]
        assert outputs["generated_text"][row] == detokenized


def test_token_ids_signature_equals_generate_exactly(exports, generator):
    token_ids = np.array([[3, 10, 11, 12], [3, 20, 0, 0], [3, 0, 0, 0]], "int32")
    padding_mask = (token_ids > 0).astype("int32")
    padding_mask[:, 0] = 1
    eos = exports.characters.token_to_id("[EOS]")
    assert eos == 3
    outputs = generator(
        "from_token_ids", token_ids=token_ids, padding_mask=padding_mask, max_new_tokens=5
    )
    expected = exports.lm.generate(
        {"token_ids": token_ids, "padding_mask": padding_mask}, max_new_tokens=5, end_token=eos
    )
    np.testing.assert_array_equal(outputs["token_ids"], expected["token_ids"])
    np.testing.assert_array_equal(outputs["padding_mask"], expected["padding_mask"])


def test_defaults_are_recorded_and_used(generator):
    defaults = generator.defaults_of("generate")
    assert {k: v.item() for k, v in defaults.items()} == {
        "max_new_tokens": 6,
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": -1,
        "num_beams": 1,
        "length_penalty": 1.0,
    }
    outputs = generator("generate", texts=["To be"])
    assert outputs["token_ids"].shape[1] <= 6


def test_beam_search_in_the_saved_model_equals_python_generate(exports, generator):
    """num_beams=4 inside the SavedModel: `from_token_ids` gives `GPTCausalLM.generate`'s
    ids exactly, and `generate` gives each prompt's own beam-search continuation."""
    beams = {"num_beams": 4, "length_penalty": 0.5}
    eos = exports.characters.token_to_id("[EOS]")
    token_ids = np.array([[3, 10, 11, 12], [3, 20, 0, 0], [3, 0, 0, 0]], "int32")
    padding_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], "int32")
    outputs = generator(
        "from_token_ids",
        token_ids=token_ids,
        padding_mask=padding_mask,
        max_new_tokens=8,
        **beams,
    )
    prompts = {"token_ids": token_ids, "padding_mask": padding_mask}
    expected = exports.lm.generate(prompts, max_new_tokens=8, end_token=eos, **beams)
    np.testing.assert_array_equal(outputs["token_ids"], expected["token_ids"])
    np.testing.assert_array_equal(outputs["padding_mask"], expected["padding_mask"])
    # The search differs from greedy decoding on at least one row.
    greedy = exports.lm.generate(prompts, max_new_tokens=8, end_token=eos)
    assert not np.array_equal(greedy["token_ids"], expected["token_ids"])

    outputs = generator("generate", texts=PROMPTS, max_new_tokens=6, **beams)
    for row, text in enumerate(PROMPTS):
        expected = expected_generation(exports, text, 6, **beams)
        length = int(outputs["padding_mask"][row].sum())
        assert outputs["token_ids"][row, :length].tolist() == expected, text


def test_sampling_is_reproducible_with_a_seed(generator):
    options = {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "max_new_tokens": 6}
    first = generator("generate", texts=["To be"] * 3, seed=7, **options)
    again = generator("generate", texts=["To be"] * 3, seed=7, **options)
    np.testing.assert_array_equal(first["token_ids"], again["token_ids"])
    np.testing.assert_array_equal(first["generated_text"], again["generated_text"])


def test_long_prompts_and_large_max_new_tokens_are_capped(exports, generator):
    outputs = generator("generate", texts=["x" * 100_000, "y"], max_new_tokens=1000)
    assert (outputs["padding_mask"].sum(axis=1) <= MAX_LENGTH - 1).all()
    expected = expected_generation(exports, "y", MAX_LENGTH - 1)
    assert outputs["token_ids"][1, : len(expected)].tolist() == expected


def test_bad_text_gives_well_formed_outputs(generator):
    prompts = [b"\xff\xfe bad \xc3", "   ", "", "🙂🎬" * 50]
    outputs = generator("generate", texts=prompts, max_new_tokens=3)
    assert outputs["generated_text"].shape == (4,)
    assert outputs["token_ids"].shape[0] == 4
    for text in outputs["generated_text"]:
        text.decode("utf-8")  # Valid UTF-8.


def test_bad_scalar_inputs_give_clear_errors(generator):
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_new_tokens must be > 0"):
        generator("generate", texts=["a"], max_new_tokens=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="top_p must be in"):
        generator("generate", texts=["a"], top_p=1.5, temperature=1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_beams must be in \[1, 64\]"):
        generator("generate", texts=["a"], num_beams=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs temperature 0"):
        generator("generate", texts=["a"], num_beams=2, temperature=0.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="length_penalty must be a finite"):
        generator("generate", texts=["a"], num_beams=2, length_penalty=float("inf"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_sequence_length"):
        generator(
            "from_token_ids",
            token_ids=np.ones((1, 40), "int32"),
            padding_mask=np.ones((1, 40), "int32"),
            max_new_tokens=20,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one token"):
        generator(
            "from_token_ids",
            token_ids=np.zeros((1, 2), "int32"),
            padding_mask=np.zeros((1, 2), "int32"),
        )
