"""Hugging Face GPT-2 checkpoints (`GPT2Model`, `GPT2LMHeadModel`) <-> our `GPTCausalLM`.

Both are pre-norm causal decoders with a final layer norm and an LM head tied to the token
embedding. GPT-2's `Conv1D` layers store `(in, out)` weights, the layout of a Keras `Dense`
kernel, so only the fused query/key/value projection `attn.c_attn` (H, 3H) needs splitting:

| Hugging Face (`transformer.` prefix optional) | ours                                         |
| --------------------------------------------- | -------------------------------------------- |
| wte, wpe                                      | token_embedding, position_embedding          |
| h.i.ln_1, h.i.ln_2                            | transformer_block_i.attention_norm, ..._norm |
| h.i.attn.c_attn (q, k, v along the last axis) | self_attention query/key/value (H, N, D)     |
| h.i.attn.c_proj                               | self_attention output kernel (N, D, H)       |
| h.i.mlp.c_fc, h.i.mlp.c_proj                  | feed_forward.intermediate/output_dense       |
| ln_f                                          | final_norm                                   |
| lm_head (tied to wte)                         | lm_head (tied to token_embedding)            |

`activation_function="gelu_new"` (GPT-2's) is our `"gelu_approximate"`. Our single `dropout`
takes `resid_pdrop`.
"""

import numpy as np

from keras_transformer.models import GPTBackbone, GPTCausalLM
from keras_transformer.pretrained.bert import check_complete
from keras_transformer.pretrained.weights import (
    ACTIVATIONS_TO_HF,
    WeightAssigner,
    activation_from_hf,
    check_unsupported,
)

TASKS = ("auto", "causal_lm")


def gpt2_arguments(config):
    """`GPTBackbone` constructor arguments from a Hugging Face GPT-2 config.json dict."""
    check_unsupported(
        config,
        (
            ("scale_attn_weights", True, (True,)),
            ("scale_attn_by_inverse_layer_idx", False, (False,)),
            ("add_cross_attention", False, (False,)),
        ),
    )
    hidden_dim = config.get("n_embd", 768)
    return {
        "vocabulary_size": config.get("vocab_size", 50257),
        "num_layers": config.get("n_layer", 12),
        "num_heads": config.get("n_head", 12),
        "hidden_dim": hidden_dim,
        "intermediate_dim": config.get("n_inner") or 4 * hidden_dim,
        "max_sequence_length": config.get("n_positions", 1024),
        "dropout": config.get("resid_pdrop", 0.1),
        "layer_norm_epsilon": config.get("layer_norm_epsilon", 1e-5),
        "activation": activation_from_hf(
            config.get("activation_function", "gelu_new"), "activation_function"
        ),
    }


def load_gpt2(config, tensors, task="auto", dtype=None):
    """Build our `GPTCausalLM` from a GPT-2 checkpoint.

    Returns:
        `(model, backbone, left_as_initialized)` (nothing is left as initialized).
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS} for GPT-2. Received: task={task!r}")
    prefix = tensors.find_prefix("wte.weight", ("", "transformer."))
    if prefix is None:
        raise ValueError(
            f"Neither 'wte.weight' nor 'transformer.wte.weight' is in {tensors.describe()}: "
            "these weights are not GPT-2's."
        )
    backbone = GPTBackbone(**gpt2_arguments(config), dtype=dtype)
    model = GPTCausalLM(backbone)
    assigner = WeightAssigner(model)
    H, N, I = backbone.hidden_dim, backbone.num_heads, backbone.intermediate_dim
    D = H // N

    def take(base, suffix, shape):
        return tensors.take(prefix + base + suffix, shape), prefix + base + suffix

    def set_from(variable, base, suffix, shape, convert=None):
        value, source = take(base, suffix, shape)
        assigner.set(variable, value if convert is None else convert(value), source)

    def set_norm(layer, base):
        set_from(layer.gamma, base, ".weight", (H,))
        set_from(layer.beta, base, ".bias", (H,))

    def set_dense(layer, base, in_dim, out_dim):  # Conv1D: (in, out), as Dense.
        set_from(layer.kernel, base, ".weight", (in_dim, out_dim))
        set_from(layer.bias, base, ".bias", (out_dim,))

    set_from(backbone.token_embedding.embeddings, "wte", ".weight", (backbone.vocabulary_size, H))
    set_from(
        backbone.position_embedding.position_embeddings,
        "wpe",
        ".weight",
        (backbone.max_sequence_length, H),
    )
    for i, block in enumerate(backbone.transformer_blocks):
        layer = f"h.{i}."
        attention = block.self_attention
        set_norm(block.attention_norm, layer + "ln_1")
        weight, weight_name = take(layer + "attn.c_attn", ".weight", (H, 3 * H))
        bias, bias_name = take(layer + "attn.c_attn", ".bias", (3 * H,))
        for j, kind in enumerate(("query", "key", "value")):
            kernel = weight[:, j * H : (j + 1) * H].reshape(H, N, D)
            assigner.set(getattr(attention, f"{kind}_kernel"), kernel, weight_name)
            part = bias[j * H : (j + 1) * H].reshape(N, D)
            assigner.set(getattr(attention, f"{kind}_bias"), part, bias_name)
        set_from(
            attention.output_kernel,
            layer + "attn.c_proj",
            ".weight",
            (H, H),
            lambda w: w.reshape(N, D, H),
        )
        set_from(attention.output_bias, layer + "attn.c_proj", ".bias", (H,))
        set_norm(block.feed_forward_norm, layer + "ln_2")
        set_dense(block.feed_forward.intermediate_dense, layer + "mlp.c_fc", H, I)
        set_dense(block.feed_forward.output_dense, layer + "mlp.c_proj", I, H)
    set_norm(backbone.final_norm, "ln_f")

    lm_head = tensors.take_optional("lm_head.weight")
    if lm_head is not None and not np.array_equal(
        lm_head, np.asarray(backbone.token_embedding.embeddings)
    ):
        raise ValueError(
            "Tensor 'lm_head.weight' differs from the token embedding 'wte.weight': this "
            "checkpoint's LM head is not tied, and our GPTCausalLM's always is."
        )
    check_complete(assigner, [])
    return model, backbone, []


# ------------------------------------------------------------------------------------------
# Export.


def gpt2_config(backbone):
    """A Hugging Face GPT-2 config.json dict (`GPT2LMHeadModel`) for our backbone."""
    special = 50256 if backbone.vocabulary_size == 50257 else None  # GPT-2's <|endoftext|>.
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": backbone.vocabulary_size,
        "n_positions": backbone.max_sequence_length,
        "n_embd": backbone.hidden_dim,
        "n_layer": backbone.num_layers,
        "n_head": backbone.num_heads,
        "n_inner": backbone.intermediate_dim,
        "activation_function": ACTIVATIONS_TO_HF[backbone.activation],
        "resid_pdrop": backbone.dropout,
        "embd_pdrop": backbone.dropout,
        "attn_pdrop": backbone.dropout,
        "layer_norm_epsilon": backbone.layer_norm_epsilon,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "bos_token_id": special,
        "eos_token_id": special,
        "use_cache": True,
    }


def gpt2_tensors(backbone):
    """Our weights as Hugging Face GPT-2 tensors (float32 numpy, `transformer.` prefixed)."""
    H = backbone.hidden_dim
    out = {}

    def put(name, value):
        out["transformer." + name] = np.asarray(value, "float32")

    def put_norm(base, layer):
        put(base + ".weight", layer.gamma)
        put(base + ".bias", layer.beta)

    def put_dense(base, layer):
        put(base + ".weight", layer.kernel)
        put(base + ".bias", layer.bias)

    put("wte.weight", backbone.token_embedding.embeddings)
    put("wpe.weight", backbone.position_embedding.position_embeddings)
    for i, block in enumerate(backbone.transformer_blocks):
        layer = f"h.{i}."
        attention = block.self_attention
        put_norm(layer + "ln_1", block.attention_norm)
        kernels = [
            np.asarray(getattr(attention, f"{k}_kernel")).reshape(H, H)
            for k in ("query", "key", "value")
        ]
        biases = [
            np.asarray(getattr(attention, f"{k}_bias")).reshape(H)
            for k in ("query", "key", "value")
        ]
        put(layer + "attn.c_attn.weight", np.concatenate(kernels, axis=1))
        put(layer + "attn.c_attn.bias", np.concatenate(biases))
        put(layer + "attn.c_proj.weight", np.asarray(attention.output_kernel).reshape(H, H))
        put(layer + "attn.c_proj.bias", attention.output_bias)
        put_norm(layer + "ln_2", block.feed_forward_norm)
        put_dense(layer + "mlp.c_fc", block.feed_forward.intermediate_dense)
        put_dense(layer + "mlp.c_proj", block.feed_forward.output_dense)
    put_norm("ln_f", backbone.final_norm)
    return out
