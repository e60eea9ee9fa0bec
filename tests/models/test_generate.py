"""The one generate loop: beam search against exhaustive enumeration, one beam is greedy,
batches equal their rows alone, and bad arguments fail with one line.

The reference scores come from full forward passes over every candidate continuation (no
key/value cache), so they are independent of the decoding loop.
"""

import itertools

import keras
import numpy as np
import pytest

from keras_transformer.models import (
    GPTBackbone,
    GPTCausalLM,
    Seq2SeqBackbone,
    Seq2SeqTransformer,
    generation,
)

V = 5  # 5 ** 3 = 125 continuations of 3 tokens
PROMPT = [1, 3]


def randomize(model, seed):
    """Weights of rank >= 2 drawn from N(0, 1): peaked, seeded next-token distributions
    (the default 0.02 initializer gives near-uniform ones, full of near ties)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if len(weight.shape) >= 2:
            weight.assign(rng.normal(0.0, 1.0, weight.shape))
    return model


@pytest.fixture(scope="module")
def lm():
    keras.utils.set_random_seed(0)
    backbone = GPTBackbone(
        vocabulary_size=V,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
        dropout=0.0,
    )
    return randomize(GPTCausalLM(backbone), seed=0)


@pytest.fixture(scope="module")
def seq2seq():
    keras.utils.set_random_seed(1)
    backbone = Seq2SeqBackbone(
        vocabulary_size=V,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
        dropout=0.0,
    )
    return randomize(Seq2SeqTransformer(backbone), seed=1)


def log_softmax(logits):
    logits = np.asarray(logits, "float64")
    logits = logits - logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def summed_log_probs(logits, continuations, first):
    """Sum over t of log p(continuation[t]) read from (N, T, V) logits at `first + t`."""
    log_p = log_softmax(logits)
    return [
        sum(log_p[i, first + t, token] for t, token in enumerate(continuation))
        for i, continuation in enumerate(continuations)
    ]


def by_length(score_batch, continuations):
    """`{continuation: score}`, scoring continuations of equal length in one batch."""
    scores = {}
    for length in sorted({len(c) for c in continuations}):
        batch = [c for c in continuations if len(c) == length]
        scores.update(zip(batch, score_batch(batch), strict=True))
    return scores


def lm_log_probs(model, prompt, continuations):
    """`{continuation: log p(continuation | prompt)}` by full passes over prompt + it."""

    def score_batch(batch):
        ids = np.array([prompt + list(c) for c in batch], "int32")
        logits = model({"token_ids": ids, "padding_mask": np.ones_like(ids)})
        return summed_log_probs(logits, batch, len(prompt) - 1)

    return by_length(score_batch, continuations)


def seq2seq_log_probs(model, source, start, continuations):
    """`{continuation: log p(continuation | source)}` by full passes of start + it."""

    def score_batch(batch):
        target = np.array([[start, *c] for c in batch], "int32")
        inputs = {
            "encoder_token_ids": np.array([source] * len(batch), "int32"),
            "encoder_padding_mask": np.ones((len(batch), len(source)), "int32"),
            "decoder_token_ids": target,
            "decoder_padding_mask": np.ones_like(target),
        }
        return summed_log_probs(model(inputs), batch, 0)

    return by_length(score_batch, continuations)


def hypotheses(steps, end_token=None):
    """Every sequence decoding may return: `steps` tokens with no end token before the
    last, or a shorter one that ends with the end token."""
    found = []
    for length in range(1, steps + 1):
        for tokens in itertools.product(range(V), repeat=length):
            if end_token is not None and end_token in tokens[:-1]:
                continue
            if length == steps or tokens[-1] == end_token:
                found.append(tokens)
    return found


def best_by_enumeration(log_probs, length_penalty):
    """`(tokens, score)` of the best of `{tokens: sum of log p}` under the length penalty."""
    tokens = max(log_probs, key=lambda c: log_probs[c] / len(c) ** length_penalty)
    return tokens, log_probs[tokens] / len(tokens) ** length_penalty


def generated(out, start):
    """The generated tokens of row 0 (positions from `start` with a true mask)."""
    ids, mask = out["token_ids"][0][start:], out["padding_mask"][0][start:]
    count = int(mask.sum())
    assert mask[:count].all()  # true, then false after the end token
    return tuple(int(t) for t in ids[:count])


def test_125_beams_find_the_most_likely_of_all_125_continuations(lm):
    continuations = hypotheses(3)
    assert len(continuations) == 125
    totals = lm_log_probs(lm, PROMPT, continuations)
    best = max(totals, key=totals.get)
    out = lm.generate([PROMPT], max_new_tokens=3, num_beams=125, length_penalty=0.0)
    assert generated(out, len(PROMPT)) == best
    np.testing.assert_allclose(out["scores"][0], totals[best], rtol=1e-5)
    # The search matters here: greedy decoding ends elsewhere, with a lower probability.
    greedy = generated(lm.generate([PROMPT], max_new_tokens=3), len(PROMPT))
    assert greedy != best and totals[greedy] < totals[best] - 0.1
    # Any length penalty ranks equal-length hypotheses alike: the score is total / 3 ** lp.
    out = lm.generate([PROMPT], max_new_tokens=3, num_beams=125, length_penalty=2.0)
    assert generated(out, len(PROMPT)) == best
    np.testing.assert_allclose(out["scores"][0], totals[best] / 9, rtol=1e-5)


@pytest.mark.parametrize("end_token", [1, 2])
def test_125_beams_with_an_end_token_equal_enumeration_under_each_length_penalty(lm, end_token):
    log_probs = lm_log_probs(lm, PROMPT, hypotheses(3, end_token))
    assert len(log_probs) == 1 + 4 + 16 + 64  # ends at 1, 2 or 3; or 3 tokens, no end
    winners = set()
    for length_penalty in (0.0, 1.0, 2.0):
        tokens, score = best_by_enumeration(log_probs, length_penalty)
        out = lm.generate(
            [PROMPT],
            max_new_tokens=3,
            num_beams=125,
            end_token=end_token,
            length_penalty=length_penalty,
        )
        assert generated(out, len(PROMPT)) == tokens, length_penalty
        np.testing.assert_allclose(out["scores"][0], score, rtol=1e-5)
        # After the end token the row is 0 with a false mask.
        assert (out["token_ids"][0][len(PROMPT) + len(tokens) :] == 0).all()
        winners.add(tokens)
    # The penalty changes the answer (a short hypothesis ending with the end token wins at
    # 0, a longer one at 2): the finished ones are scored by their own length.
    assert len({len(tokens) for tokens in winners}) > 1, winners


def test_one_beam_is_greedy(lm):
    out = lm.generate([PROMPT], max_new_tokens=5, num_beams=1)
    ids = list(PROMPT)
    total = 0.0
    for _ in range(5):
        inputs = {"token_ids": np.array([ids]), "padding_mask": np.ones((1, len(ids)), "int32")}
        log_p = log_softmax(lm(inputs))[0, -1]
        ids.append(int(log_p.argmax()))
        total += log_p[ids[-1]]
    assert out["token_ids"][0].tolist() == ids
    np.testing.assert_allclose(out["scores"][0], total / 5, rtol=1e-5)  # length_penalty 1
    # The beam-search loop itself, run with one beam and no end token, is greedy too.
    inputs = lm.generate_inputs([PROMPT, [4]], max_new_tokens=5)
    runs = {}
    for name, loop in (("greedy", generation.sample_loop), ("beam", generation.beam_search)):
        next_logits, token_ids, padding_mask, cache = lm.start_decoding(inputs)
        beams = {"num_beams": 1} if name == "beam" else {}
        runs[name] = loop(next_logits, token_ids, padding_mask, cache, **beams)
    np.testing.assert_array_equal(runs["beam"]["token_ids"], runs["greedy"]["token_ids"])
    np.testing.assert_array_equal(runs["beam"]["padding_mask"], runs["greedy"]["padding_mask"])
    np.testing.assert_allclose(runs["beam"]["scores"], runs["greedy"]["scores"], rtol=1e-6)
    assert runs["greedy"]["token_ids"][0].numpy().tolist() == ids


@pytest.mark.parametrize("end_token", [None, 2])
def test_seq2seq_125_beams_equal_enumeration(seq2seq, end_token):
    source, start = [3, 1, 4, 1, 2], 0
    encoder_inputs = {
        "encoder_token_ids": np.array([source]),
        "encoder_padding_mask": np.ones((1, len(source))),
    }
    log_probs = seq2seq_log_probs(seq2seq, source, start, hypotheses(3, end_token))
    for length_penalty in (0.0, 1.5):
        tokens, score = best_by_enumeration(log_probs, length_penalty)
        out = seq2seq.generate(
            encoder_inputs,
            start,
            max_new_tokens=3,
            num_beams=125,
            end_token=end_token,
            length_penalty=length_penalty,
        )
        assert out["token_ids"].shape == (1, 4) and out["token_ids"][0, 0] == start
        assert generated(out, 1) == tokens, length_penalty
        np.testing.assert_allclose(out["scores"][0], score, rtol=1e-5)


@pytest.mark.parametrize("end_token", [None, 2])
def test_beam_search_batch_rows_equal_each_prompt_alone(lm, end_token):
    long, short = [1, 3, 2, 4], [2]
    settings = {"num_beams": 4, "end_token": end_token, "length_penalty": 1.0}
    batch = lm.generate([long, short], max_new_tokens=3, **settings)
    # In a batch every row fills the buffer: the short prompt gets 3 more new tokens.
    alone = [
        lm.generate([long], max_new_tokens=3, **settings),
        lm.generate([short], max_new_tokens=6, **settings),
    ]
    for row, single in enumerate(alone):
        np.testing.assert_array_equal(batch["token_ids"][row], single["token_ids"][0])
        np.testing.assert_array_equal(batch["padding_mask"][row], single["padding_mask"][0])
        np.testing.assert_allclose(batch["scores"][row], single["scores"][0], rtol=1e-5)


def test_seq2seq_beam_search_batch_rows_equal_each_source_alone(seq2seq):
    sources = np.array([[3, 1, 4, 1, 2], [2, 4, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    settings = {"max_new_tokens": 4, "num_beams": 3, "end_token": 2}
    batch = seq2seq.generate(
        {"encoder_token_ids": sources, "encoder_padding_mask": mask}, 0, **settings
    )
    for row, length in enumerate((5, 2)):
        alone = seq2seq.generate(
            {
                "encoder_token_ids": sources[row : row + 1, :length],
                "encoder_padding_mask": mask[row : row + 1, :length],
            },
            0,
            **settings,
        )
        np.testing.assert_array_equal(batch["token_ids"][row], alone["token_ids"][0])
        np.testing.assert_allclose(batch["scores"][row], alone["scores"][0], rtol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_new_tokens": 0}, "`max_new_tokens` must be a positive integer"),
        ({"temperature": -0.5}, "`temperature` must be a number >= 0"),
        ({"top_k": -1}, "`top_k` must be an integer >= 0"),
        ({"top_p": 0.0}, r"`top_p` must be a number in \(0, 1\]"),
        ({"seed": -3}, "`seed` must be None or an integer"),
        ({"end_token": V}, r"`end_token` must be a token id: an integer in \[0, 5\)"),
        ({"num_beams": 0}, "`num_beams` must be an integer >= 1"),
        ({"num_beams": 2.0}, "`num_beams` must be an integer >= 1"),
        ({"length_penalty": "long"}, "`length_penalty` must be a finite number"),
        ({"length_penalty": float("nan")}, "`length_penalty` must be a finite number"),
        ({"num_beams": 3, "temperature": 0.7}, "needs temperature=0"),
    ],
)
def test_bad_generate_arguments_fail_with_one_line(lm, arguments, message):
    with pytest.raises(ValueError, match=message) as raised:
        lm.generate([PROMPT], **{"max_new_tokens": 2, **arguments})
    assert "\n" not in str(raised.value)


def test_bad_seq2seq_generate_arguments(seq2seq):
    encoder_inputs = {"encoder_token_ids": np.ones((1, 3)), "encoder_padding_mask": np.ones((1, 3))}
    with pytest.raises(ValueError, match="`start_token` must be a token id"):
        seq2seq.generate(encoder_inputs, V, max_new_tokens=2)
    with pytest.raises(ValueError, match="`encoder_inputs` must be a dict with"):
        seq2seq.generate({"token_ids": np.ones((1, 3))}, 0, max_new_tokens=2)
    with pytest.raises(ValueError, match="max_sequence_length=8"):
        seq2seq.generate(encoder_inputs, 0, max_new_tokens=8)
