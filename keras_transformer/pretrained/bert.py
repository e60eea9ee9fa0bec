"""Hugging Face BERT checkpoints (`BertModel`, `BertForMaskedLM`, `BertForPreTraining`, MiniLM,
sentence-transformers) <-> our `BertBackbone` / `BertMaskedLM`.

Both are post-norm encoders with the same sublayers, so the mapping is one to one:

| Hugging Face (`bert.` prefix optional)          | ours                                       |
| ----------------------------------------------- | ------------------------------------------ |
| embeddings.word/position/token_type_embeddings  | token/position/segment_embedding           |
| embeddings.LayerNorm                            | embeddings_norm                            |
| encoder.layer.i.attention.self.query/key/value  | transformer_block_i.self_attention (heads) |
| encoder.layer.i.attention.output.dense          | self_attention output kernel (N, D, H)     |
| encoder.layer.i.attention.output.LayerNorm      | attention_norm                             |
| encoder.layer.i.intermediate.dense, output.dense| feed_forward.intermediate/output_dense     |
| encoder.layer.i.output.LayerNorm                | feed_forward_norm                          |
| pooler.dense                                    | pooler                                     |
| cls.predictions.transform.dense / LayerNorm     | masked_lm_head.transform_dense / _norm     |
| cls.predictions.bias (decoder tied to words)    | masked_lm_head.output_bias                 |

Our single `dropout` takes `hidden_dropout_prob` (dropout matters only in training).
"""

import dataclasses

import numpy as np

from keras_transformer.models import BertBackbone, BertMaskedLM
from keras_transformer.pretrained.weights import (
    ACTIVATIONS_TO_HF,
    WeightAssigner,
    activation_from_hf,
    check_unsupported,
    dense_from_linear,
    heads_from_linear,
    linear_from_heads,
    linear_from_output,
    output_from_linear,
)

TASKS = ("auto", "backbone", "masked_lm")


@dataclasses.dataclass(frozen=True)
class EncoderNames:
    """Tensor names (without `.weight` / `.bias`) of a BERT-like checkpoint.

    `{p}` stands for the base model's prefix (one of `base_prefixes`), `{i}` for a layer index.
    `segment_embeddings` and `pooler` are `None` for architectures without them.
    """

    base_prefixes: tuple
    word_embeddings: str
    position_embeddings: str
    segment_embeddings: str | None
    embeddings_norm: str
    query: str
    key: str
    value: str
    attention_output: str
    attention_norm: str
    intermediate: str
    output: str
    output_norm: str
    pooler: str | None
    head_dense: str
    head_norm: str
    head_bias: tuple
    head_decoder: str


BERT_NAMES = EncoderNames(
    base_prefixes=("", "bert."),
    word_embeddings="{p}embeddings.word_embeddings",
    position_embeddings="{p}embeddings.position_embeddings",
    segment_embeddings="{p}embeddings.token_type_embeddings",
    embeddings_norm="{p}embeddings.LayerNorm",
    query="{p}encoder.layer.{i}.attention.self.query",
    key="{p}encoder.layer.{i}.attention.self.key",
    value="{p}encoder.layer.{i}.attention.self.value",
    attention_output="{p}encoder.layer.{i}.attention.output.dense",
    attention_norm="{p}encoder.layer.{i}.attention.output.LayerNorm",
    intermediate="{p}encoder.layer.{i}.intermediate.dense",
    output="{p}encoder.layer.{i}.output.dense",
    output_norm="{p}encoder.layer.{i}.output.LayerNorm",
    pooler="{p}pooler.dense",
    head_dense="cls.predictions.transform.dense",
    head_norm="cls.predictions.transform.LayerNorm",
    head_bias=("cls.predictions.bias", "cls.predictions.decoder.bias"),
    head_decoder="cls.predictions.decoder.weight",
)


def bert_arguments(config):
    """`BertBackbone` constructor arguments from a Hugging Face BERT config.json dict."""
    check_unsupported(
        config,
        (
            ("position_embedding_type", "absolute", ("absolute",)),
            ("is_decoder", False, (False,)),
            ("add_cross_attention", False, (False,)),
        ),
    )
    return {
        "vocabulary_size": config.get("vocab_size", 30522),
        "num_layers": config.get("num_hidden_layers", 12),
        "num_heads": config.get("num_attention_heads", 12),
        "hidden_dim": config.get("hidden_size", 768),
        "intermediate_dim": config.get("intermediate_size", 3072),
        "max_sequence_length": config.get("max_position_embeddings", 512),
        "num_segments": config.get("type_vocab_size", 2),
        "dropout": config.get("hidden_dropout_prob", 0.1),
        "layer_norm_epsilon": config.get("layer_norm_eps", 1e-12),
        "activation": activation_from_hf(config.get("hidden_act", "gelu"), "hidden_act"),
    }


def find_base_prefix(tensors, names):
    """The prefix of the base model's tensors (e.g. `"bert."`); `ValueError` if none fits."""
    suffix = names.word_embeddings.format(p="") + ".weight"
    prefix = tensors.find_prefix(suffix, names.base_prefixes)
    if prefix is None:
        tried = [p + suffix for p in names.base_prefixes]
        raise ValueError(
            f"None of the tensors {tried} is in {tensors.describe()}: these weights are not "
            "of the architecture that config.json names (model_type), or use other names."
        )
    return prefix


def has_masked_lm_head(tensors, names):
    """True if the checkpoint holds the masked-LM head's transform."""
    return names.head_dense + ".weight" in tensors


def resolve_task(task, has_head, head_tensor):
    """`"backbone"` or `"masked_lm"` from the requested `task` and whether the head exists."""
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS} for encoders. Received: task={task!r}")
    if task == "auto":
        return "masked_lm" if has_head else "backbone"
    if task == "masked_lm" and not has_head:
        raise ValueError(
            f"task='masked_lm' was asked for, but the checkpoint has no masked-LM head (tensor "
            f"{head_tensor!r} is missing). Load it with task='backbone' and train a head."
        )
    return task


def build_encoder(backbone_arguments, task, dtype):
    """`(model, backbone)`: a `BertBackbone` and, for `"masked_lm"`, a `BertMaskedLM` on it."""
    backbone = BertBackbone(**backbone_arguments, dtype=dtype)
    model = BertMaskedLM(backbone) if task == "masked_lm" else backbone
    return model, backbone


def load_encoder_weights(assigner, model, backbone, tensors, names, prefix):
    """Set every variable of an encoder (and its masked-LM head) from the checkpoint.

    Returns:
        A list of our layers left as initialized because the checkpoint lacks them
        (`"pooler"` only).
    """
    H, N = backbone.hidden_dim, backbone.num_heads
    I, V = backbone.intermediate_dim, backbone.vocabulary_size

    def name(template, i=None):
        return template.format(p=prefix, i=i)

    def set_linear(layer, base, out_dim, in_dim):
        assigner.set(
            layer.kernel,
            dense_from_linear(tensors.take(base + ".weight", (out_dim, in_dim))),
            base + ".weight",
        )
        assigner.set(layer.bias, tensors.take(base + ".bias", (out_dim,)), base + ".bias")

    def set_norm(layer, base):
        gamma = tensors.take(base + ".weight", (H,), aliases=(base + ".gamma",))
        beta = tensors.take(base + ".bias", (H,), aliases=(base + ".beta",))
        assigner.set(layer.gamma, gamma, base + ".weight")
        assigner.set(layer.beta, beta, base + ".bias")

    def set_table(variable, base, rows):
        assigner.set(variable, tensors.take(base + ".weight", (rows, H)), base + ".weight")

    set_table(backbone.token_embedding.embeddings, name(names.word_embeddings), V)
    set_table(
        backbone.position_embedding.position_embeddings,
        name(names.position_embeddings),
        backbone.max_sequence_length,
    )
    segments = backbone.segment_embedding.embeddings
    if names.segment_embeddings is None:  # No segment embeddings: adding zeros is the identity.
        assigner.set(segments, np.zeros(tuple(segments.shape), "float32"), "(none: zeros)")
    else:
        set_table(segments, name(names.segment_embeddings), backbone.num_segments)
    set_norm(backbone.embeddings_norm, name(names.embeddings_norm))

    for i, block in enumerate(backbone.transformer_blocks):
        attention = block.self_attention
        for kind, template in (("query", names.query), ("key", names.key), ("value", names.value)):
            base = name(template, i)
            weight = tensors.take(base + ".weight", (H, H))
            bias = tensors.take(base + ".bias", (H,))
            kernel, bias = heads_from_linear(weight, bias, N)
            assigner.set(getattr(attention, f"{kind}_kernel"), kernel, base + ".weight")
            assigner.set(getattr(attention, f"{kind}_bias"), bias, base + ".bias")
        base = name(names.attention_output, i)
        weight = tensors.take(base + ".weight", (H, H))
        assigner.set(attention.output_kernel, output_from_linear(weight, N), base + ".weight")
        assigner.set(attention.output_bias, tensors.take(base + ".bias", (H,)), base + ".bias")
        set_norm(block.attention_norm, name(names.attention_norm, i))
        set_linear(block.feed_forward.intermediate_dense, name(names.intermediate, i), I, H)
        set_linear(block.feed_forward.output_dense, name(names.output, i), H, I)
        set_norm(block.feed_forward_norm, name(names.output_norm, i))

    left_as_initialized = []
    if names.pooler is not None and name(names.pooler) + ".weight" in tensors:
        set_linear(backbone.pooler, name(names.pooler), H, H)
    else:
        left_as_initialized.append("pooler")

    if model is not backbone:
        head = model.masked_lm_head
        set_linear(head.dense, names.head_dense, H, H)
        set_norm(head.layer_norm, names.head_norm)
        bias = tensors.take(names.head_bias[0], (V,), aliases=names.head_bias[1:])
        assigner.set(head.output_bias, bias, names.head_bias[0])
        check_tied(tensors, names.head_decoder, backbone.token_embedding.embeddings)
    return left_as_initialized


def check_tied(tensors, decoder_name, embeddings):
    """Our heads are tied to the token embedding: refuse a checkpoint with an untied decoder."""
    decoder = tensors.take_optional(decoder_name)
    if decoder is None:
        return
    table = np.asarray(embeddings)
    if decoder.shape != table.shape or not np.array_equal(decoder, table):
        raise ValueError(
            f"Tensor {decoder_name!r} differs from the word embeddings: this checkpoint's output "
            "projection is not tied to its input embedding, and our LM heads always are. Load "
            "it with task='backbone' to use the encoder alone."
        )


def load_bert(config, tensors, task="auto", dtype=None):
    """Build our model from a BERT checkpoint.

    Returns:
        `(model, backbone, left_as_initialized)`.
    """
    prefix = find_base_prefix(tensors, BERT_NAMES)
    task = resolve_task(task, has_masked_lm_head(tensors, BERT_NAMES), BERT_NAMES.head_dense)
    model, backbone = build_encoder(bert_arguments(config), task, dtype)
    assigner = WeightAssigner(model)
    left = load_encoder_weights(assigner, model, backbone, tensors, BERT_NAMES, prefix)
    check_complete(assigner, left)
    return model, backbone, left


def check_complete(assigner, left_as_initialized):
    """Raise if a variable was neither set nor knowingly left as initialized (a mapping bug)."""
    missed = [
        path
        for path in assigner.unassigned()
        if not any(layer in path.split("/") for layer in left_as_initialized)
    ]
    if missed:
        raise ValueError(f"These variables were not set from the checkpoint: {missed}.")


# ------------------------------------------------------------------------------------------
# Export.


def bert_config(backbone, task, pad_token_id=0):
    """A Hugging Face BERT config.json dict for our backbone."""
    return {
        "architectures": ["BertForMaskedLM" if task == "masked_lm" else "BertModel"],
        "model_type": "bert",
        "vocab_size": backbone.vocabulary_size,
        "hidden_size": backbone.hidden_dim,
        "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_heads,
        "intermediate_size": backbone.intermediate_dim,
        "hidden_act": ACTIVATIONS_TO_HF[backbone.activation],
        "hidden_dropout_prob": backbone.dropout,
        "attention_probs_dropout_prob": backbone.dropout,
        "max_position_embeddings": backbone.max_sequence_length,
        "type_vocab_size": backbone.num_segments,
        "layer_norm_eps": backbone.layer_norm_epsilon,
        "initializer_range": 0.02,
        "pad_token_id": pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "use_cache": False,
    }


def bert_tensors(model, backbone):
    """Our weights as Hugging Face BERT tensors (float32 numpy); with a masked-LM head, the
    encoder's names get the `bert.` prefix of `BertForMaskedLM`."""
    has_head = model is not backbone
    p = "bert." if has_head else ""
    out = {}

    def put(base, weight, bias=None):
        out[base + ".weight"] = np.asarray(weight, "float32")
        if bias is not None:
            out[base + ".bias"] = np.asarray(bias, "float32")

    def put_dense(base, layer):
        put(base, np.asarray(layer.kernel).T, layer.bias)

    def put_norm(base, layer):
        put(base, layer.gamma, layer.beta)

    put(p + "embeddings.word_embeddings", backbone.token_embedding.embeddings)
    put(p + "embeddings.position_embeddings", backbone.position_embedding.position_embeddings)
    put(p + "embeddings.token_type_embeddings", backbone.segment_embedding.embeddings)
    put_norm(p + "embeddings.LayerNorm", backbone.embeddings_norm)
    for i, block in enumerate(backbone.transformer_blocks):
        attention = block.self_attention
        layer = f"{p}encoder.layer.{i}."
        for kind in ("query", "key", "value"):
            weight, bias = linear_from_heads(
                getattr(attention, f"{kind}_kernel"), getattr(attention, f"{kind}_bias")
            )
            put(layer + "attention.self." + kind, weight, bias)
        put(
            layer + "attention.output.dense",
            linear_from_output(attention.output_kernel),
            attention.output_bias,
        )
        put_norm(layer + "attention.output.LayerNorm", block.attention_norm)
        put_dense(layer + "intermediate.dense", block.feed_forward.intermediate_dense)
        put_dense(layer + "output.dense", block.feed_forward.output_dense)
        put_norm(layer + "output.LayerNorm", block.feed_forward_norm)
    put_dense(p + "pooler.dense", backbone.pooler)
    if has_head:
        head = model.masked_lm_head
        put_dense("cls.predictions.transform.dense", head.dense)
        put_norm("cls.predictions.transform.LayerNorm", head.layer_norm)
        out["cls.predictions.bias"] = np.asarray(head.output_bias, "float32")
    return out
