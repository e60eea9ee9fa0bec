"""Whole models at initialisation: every kernel its own draw, of the documented spread."""

import keras
import numpy as np
import pytest
from initializer_checks import assert_independent, assert_std, random_weights, truncated_normal_std

from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
    Seq2SeqBackbone,
    Seq2SeqTransformer,
)

# H = 128 so that independent (H, H) kernels correlate by |r| < 0.05 (6 standard errors).
SIZE = {
    "vocabulary_size": 300,
    "num_layers": 2,
    "num_heads": 2,
    "hidden_dim": 128,
    "intermediate_dim": 256,
    "max_sequence_length": 128,
}
DEFAULT_STD = truncated_normal_std(0.02)  # TruncatedNormal(stddev=0.02): 0.017593, within ±0.04

BUILDERS = {
    "bert_backbone": lambda: BertBackbone(**SIZE),
    "gpt_backbone": lambda: GPTBackbone(**SIZE),
    "seq2seq_sinusoidal": lambda: Seq2SeqTransformer(Seq2SeqBackbone(**SIZE)),
    "seq2seq_learned": lambda: Seq2SeqTransformer(
        Seq2SeqBackbone(**SIZE, position_encoding="learned")
    ),
    "bert_masked_lm": lambda: BertMaskedLM(BertBackbone(**SIZE)),
    "gpt_causal_lm": lambda: GPTCausalLM(GPTBackbone(**SIZE)),
    "bert_classifier": lambda: BertClassifier(BertBackbone(**SIZE), num_classes=3, hidden_dim=128),
}
# Random weights per model: embeddings (token, position(s), segment), 6 kernels per encoder
# block, 10 per decoder block with cross attention, and the heads' kernels.
EXPECTED_COUNTS = {
    "bert_backbone": 3 + 2 * 6 + 1,  # + pooler
    "gpt_backbone": 2 + 2 * 6,
    "seq2seq_sinusoidal": 1 + 2 * 6 + 2 * 10,
    "seq2seq_learned": 3 + 2 * 6 + 2 * 10,
    "bert_masked_lm": 3 + 2 * 6 + 1 + 1,  # + the head's transform (output tied)
    "gpt_causal_lm": 2 + 2 * 6,  # tied head: no kernel of its own
    "bert_classifier": 3 + 2 * 6 + 1 + 2,  # + hidden and logits kernels
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_two_kernels_start_equal_or_correlated(name):
    weights = random_weights(BUILDERS[name]())
    assert len(weights) == EXPECTED_COUNTS[name], sorted(weights)
    assert_independent(weights)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_kernel_has_the_documented_std(name):
    assert_std(random_weights(BUILDERS[name]()), DEFAULT_STD, bound=0.04)


@pytest.mark.parametrize("name", ["bert_masked_lm", "gpt_causal_lm", "seq2seq_learned"])
def test_set_random_seed_makes_builds_equal(name):
    def build(seed):
        keras.utils.set_random_seed(seed)
        return [np.asarray(w) for w in BUILDERS[name]().weights]

    first, second, other = build(3), build(3), build(4)
    assert len(first) == len(second) == len(other)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    differs = [not np.array_equal(a, b) for a, b in zip(first, other, strict=True)]
    assert sum(differs) == EXPECTED_COUNTS[name]  # every random weight, and only those
