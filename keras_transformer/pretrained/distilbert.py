"""Hugging Face DistilBERT checkpoints (`DistilBertModel`, `DistilBertForMaskedLM`) -> our
`BertBackbone` / `BertMaskedLM`.

DistilBERT is BERT without segment embeddings and without a pooler, with the same post-norm
blocks (layer norm epsilon fixed at 1e-12) and the same masked-LM head (`vocab_transform`,
activation, `vocab_layer_norm`, `vocab_projector` tied to the word embeddings). So:

- our segment embedding is set to zeros (both rows): adding it changes nothing, whatever the
  `segment_ids`, exactly as DistilBERT ignores token types;
- our pooler has no counterpart: it is left as initialized and reported in
  `PretrainedModel.left_as_initialized` (use mean pooling, or train it).

Exported back with `to_huggingface`, such a model is written as a BERT checkpoint (with
zero token-type embeddings), which computes the same function.
"""

from keras_transformer.pretrained.bert import (
    EncoderNames,
    build_encoder,
    check_complete,
    find_base_prefix,
    has_masked_lm_head,
    load_encoder_weights,
    resolve_task,
)
from keras_transformer.pretrained.weights import (
    WeightAssigner,
    activation_from_hf,
    check_unsupported,
)

DISTILBERT_NAMES = EncoderNames(
    base_prefixes=("", "distilbert."),
    word_embeddings="{p}embeddings.word_embeddings",
    position_embeddings="{p}embeddings.position_embeddings",
    segment_embeddings=None,
    embeddings_norm="{p}embeddings.LayerNorm",
    query="{p}transformer.layer.{i}.attention.q_lin",
    key="{p}transformer.layer.{i}.attention.k_lin",
    value="{p}transformer.layer.{i}.attention.v_lin",
    attention_output="{p}transformer.layer.{i}.attention.out_lin",
    attention_norm="{p}transformer.layer.{i}.sa_layer_norm",
    intermediate="{p}transformer.layer.{i}.ffn.lin1",
    output="{p}transformer.layer.{i}.ffn.lin2",
    output_norm="{p}transformer.layer.{i}.output_layer_norm",
    pooler=None,
    head_dense="vocab_transform",
    head_norm="vocab_layer_norm",
    head_bias=("vocab_projector.bias",),
    head_decoder="vocab_projector.weight",
)


def distilbert_arguments(config):
    """`BertBackbone` constructor arguments from a Hugging Face DistilBERT config.json dict."""
    check_unsupported(config, (("sinusoidal_pos_embds", False, (False, True)),))
    return {
        "vocabulary_size": config.get("vocab_size", 30522),
        "num_layers": config.get("n_layers", 6),
        "num_heads": config.get("n_heads", 12),
        "hidden_dim": config.get("dim", 768),
        "intermediate_dim": config.get("hidden_dim", 3072),
        "max_sequence_length": config.get("max_position_embeddings", 512),
        "num_segments": 2,  # Zeros: accepts the segment ids our packers make, and ignores them.
        "dropout": config.get("dropout", 0.1),
        "layer_norm_epsilon": 1e-12,  # Fixed in DistilBERT's code, not in its config.
        "activation": activation_from_hf(config.get("activation", "gelu"), "activation"),
    }


def load_distilbert(config, tensors, task="auto", dtype=None):
    """Build our model from a DistilBERT checkpoint.

    Sinusoidal position embeddings (`sinusoidal_pos_embds=True`) load too: DistilBERT stores
    the fixed table in `position_embeddings.weight` like a learned one.

    Returns:
        `(model, backbone, left_as_initialized)`; the pooler is always left as initialized.
    """
    prefix = find_base_prefix(tensors, DISTILBERT_NAMES)
    has_head = has_masked_lm_head(tensors, DISTILBERT_NAMES)
    task = resolve_task(task, has_head, DISTILBERT_NAMES.head_dense)
    model, backbone = build_encoder(distilbert_arguments(config), task, dtype)
    assigner = WeightAssigner(model)
    left = load_encoder_weights(assigner, model, backbone, tensors, DISTILBERT_NAMES, prefix)
    check_complete(assigner, left)
    return model, backbone, left
