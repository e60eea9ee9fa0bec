"""Helpers for the pretrained-checkpoint tests: tiny models, padded batches, references."""

import importlib

import numpy as np

from keras_transformer.models import BertBackbone, BertMaskedLM, GPTBackbone, GPTCausalLM

VOCABULARY_SIZE = 61
LENGTHS = (9, 5, 2)  # A batch with padding: rows of 9, 5 and 2 real tokens.


def require(module):
    """Import the reference package `module`, or fail (never skip) saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"The tests compare against `{module}`, which is part of the `dev` extra but cannot "
            f'be imported ({error}). Install it: `.venv/bin/pip install -e ".[dev]"`.'
        ) from error


def real_rows():
    """A boolean (B, T) mask of the real tokens of `padded_batch()`."""
    return padded_batch()["padding_mask"].astype(bool)


def padded_batch(seed=0, lengths=LENGTHS, vocabulary_size=VOCABULARY_SIZE):
    """`{"token_ids", "padding_mask"}` int32 (B, T), right-padded with id 0."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    mask = np.arange(width)[None, :] < np.array(lengths)[:, None]
    ids = np.where(mask, rng.integers(1, vocabulary_size, (len(lengths), width)), 0)
    return {"token_ids": ids.astype("int32"), "padding_mask": mask.astype("int32")}


def all_positions(inputs):
    """`mask_positions` (B, T) covering every position, to get masked-LM logits everywhere."""
    batch, width = inputs["token_ids"].shape
    return np.tile(np.arange(width, dtype="int32"), (batch, 1))


def randomize_keras(model, seed=0):
    """Give every variable random values (biases and layer norms too), so that a mapping that
    drops or swaps a tensor cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        noise = rng.normal(0.0, 0.2, tuple(variable.shape)).astype("float32")
        if variable.path.endswith("gamma"):
            noise += 1.0
        variable.assign(noise)


def tiny_bert(masked_lm=False, activation="gelu"):
    backbone = BertBackbone(
        vocabulary_size=VOCABULARY_SIZE,
        num_layers=2,
        num_heads=4,
        hidden_dim=16,
        intermediate_dim=24,
        max_sequence_length=32,
        num_segments=3,
        dropout=0.0,
        activation=activation,
    )
    model = BertMaskedLM(backbone) if masked_lm else backbone
    randomize_keras(model)
    return model


def tiny_gpt():
    backbone = GPTBackbone(
        vocabulary_size=VOCABULARY_SIZE,
        num_layers=2,
        num_heads=4,
        hidden_dim=16,
        intermediate_dim=24,
        max_sequence_length=32,
        dropout=0.0,
    )
    model = GPTCausalLM(backbone)
    randomize_keras(model)
    return model
