"""Attention in query chunks: the plain path's outputs and gradients in a fraction of the memory."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import assert_close

from keras_transformer.layers import MultiHeadAttention
from keras_transformer.layers.chunked_attention import block_output, chunked_attention

RNG = np.random.default_rng(0)


def random(*shape):
    return RNG.normal(size=shape).astype("float32")


def plain_and_chunked(chunk_size, query, value, **kwargs):
    """The plain layer and a chunked one with the same weights."""
    plain = MultiHeadAttention(num_heads=2, key_dim=4, **kwargs)
    chunked = MultiHeadAttention(num_heads=2, key_dim=4, attention_chunk_size=chunk_size, **kwargs)
    plain(query, value)
    chunked(query, value)
    chunked.set_weights(plain.get_weights())
    return plain, chunked


def outputs_and_gradients(layer, query, value, cotangent, **kwargs):
    query, value = tf.constant(query), tf.constant(value)
    with tf.GradientTape() as tape:
        tape.watch([query, value])
        outputs = layer(query, value, **kwargs)
        loss = tf.reduce_sum(outputs * cotangent)
    gradients = tape.gradient(loss, [query, value, *layer.trainable_variables])
    return outputs, gradients


@pytest.mark.parametrize(
    "masking, query_length, key_length, chunk_size",
    [
        ("none", 10, 10, 4),  # 3 blocks, the last one short
        ("causal", 10, 10, 3),
        ("padding", 9, 9, 4),
        ("causal+padding", 12, 12, 5),
        ("cross", 7, 11, 2),  # queries and keys of different lengths
        ("empty rows", 8, 8, 3),  # a query row with no key left: uniform weights, as plain
        ("one key", 6, 1, 4),
    ],
)
def test_outputs_and_gradients_equal_the_plain_path(masking, query_length, key_length, chunk_size):
    query, value = random(3, query_length, 8), random(3, key_length, 8)
    plain, chunked = plain_and_chunked(chunk_size, query, value)
    kwargs = {}
    if "causal" in masking:
        kwargs["use_causal_mask"] = True
    if "padding" in masking or masking == "cross":
        mask = np.ones((3, key_length), "int32")
        mask[0, -3:] = 0
        mask[2, -1:] = 0
        kwargs["value_mask"] = mask
        if masking != "cross":
            kwargs["query_mask"] = mask
    if masking == "empty rows":
        attention = RNG.random((3, query_length, key_length)) > 0.4
        attention[1, 2] = False
        kwargs["attention_mask"] = attention
    cotangent = random(3, query_length, 8)
    expected, expected_gradients = outputs_and_gradients(plain, query, value, cotangent, **kwargs)
    actual, gradients = outputs_and_gradients(chunked, query, value, cotangent, **kwargs)
    assert chunked._chunked(tf.zeros((3, query_length, 2, 4)), False)
    assert_close(actual, expected, atol=1e-5)
    assert len(gradients) == len(expected_gradients) == 10
    for gradient, reference in zip(gradients, expected_gradients, strict=True):
        if reference is None:  # one key: the plain path's weights do not depend on the queries
            reference = np.zeros(gradient.shape, "float32")
        assert_close(gradient, reference, atol=1e-4)


def test_the_backward_pass_with_dropout_equals_autodiff_of_the_same_blocks():
    # The hand-written backward pass regenerates each block's dropout mask from the seed; ordinary
    # autodiff of the same forward blocks (`block_output`) is the independent reference.
    query, key, value = random(2, 10, 2, 4), random(2, 10, 2, 4), random(2, 10, 2, 3)
    mask = tf.constant(np.tril(np.ones((10, 10), bool))[None].repeat(2, 0))
    seed, rate, chunk = tf.constant([7, 11], tf.int32), 0.3, 4
    cotangent = random(2, 10, 2, 3)
    tensors = [tf.constant(t) for t in (query, key, value)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = chunked_attention(*tensors, mask, chunk, rate, seed)
        loss = tf.reduce_sum(outputs * cotangent)
    gradients = tape.gradient(loss, tensors)
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        q, k, v = tensors
        pieces = [
            block_output(q[:, s : s + chunk], k, v, mask[:, s : s + chunk], rate, seed, i)
            for i, s in enumerate(range(0, 10, chunk))
        ]
        reference = tf.concat(pieces, axis=1)
        reference_loss = tf.reduce_sum(reference * cotangent)
    expected = tape.gradient(reference_loss, tensors)
    assert_close(outputs, reference, atol=1e-6)
    assert float(tf.reduce_max(tf.abs(outputs - chunked_attention(*tensors, mask, chunk)))) > 0.1
    for gradient, reference_gradient in zip(gradients, expected, strict=True):
        assert_close(gradient, reference_gradient, atol=1e-5)


def test_dropout_in_chunks_is_unbiased_and_new_at_each_call():
    # Values all 1: the output is the sum of the dropped weights, 1 in expectation.
    layer = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.25, attention_chunk_size=16)
    query = random(8, 64, 8)
    layer(query, query)
    layer.value_kernel.assign(np.zeros(layer.value_kernel.shape, "float32"))
    layer.value_bias.assign(np.ones(layer.value_bias.shape, "float32"))
    layer.output_kernel.assign(np.eye(8, dtype="float32").reshape(2, 4, 8))
    first = layer(query, query, training=True).numpy()
    second = layer(query, query, training=True).numpy()
    assert abs(first.mean() - 1.0) < 0.02
    assert first.std() > 0.05  # dropout is on
    assert np.abs(first - second).max() > 0.1  # the seed generator advanced
    assert_close(layer(query, query, training=False), np.ones_like(first), atol=1e-5)


def test_no_tensor_holds_the_whole_weight_matrix_in_a_training_step():
    # The memory property itself: in the traced forward and backward pass, no tensor has
    # T x S elements per head; the plain layer's graph has several.
    batch, length, chunk = 2, 64, 16
    query = random(batch, length, 8)

    def biggest_attention_tensor(layer):
        layer(query, query)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x, x, use_causal_mask=True, training=True) ** 2)
            return tape.gradient(loss, layer.trainable_variables)

        graph = step.get_concrete_function(tf.TensorSpec(query.shape)).graph
        sizes = [0]
        for operation in graph.get_operations():
            for tensor in operation.outputs:
                shape = tensor.shape
                if shape.rank == 4 and shape.is_fully_defined() and shape[1] == 2:  # (B, N, ., .)
                    sizes.append(int(np.prod(shape)))
        return max(sizes)

    plain = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    chunked = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1, attention_chunk_size=chunk)
    assert biggest_attention_tensor(plain) == batch * 2 * length * length
    assert biggest_attention_tensor(chunked) == batch * 2 * chunk * length


def test_blocks_run_one_after_another_in_the_forward_and_the_backward_pass():
    # Small tensors alone do not bound the memory: a graph executor runs independent ops at
    # once, and 8 blocks in flight hold as much as the whole matrix (measured at T = 1024,
    # batch 16: chunks without this ordering took more step memory than plain attention).
    # Every block after the first waits for the previous block's result before it starts.
    batch, length, chunk = 2, 32, 8
    query = random(batch, length, 2, 4)

    @tf.function
    def step(q, k, v):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            loss = tf.reduce_sum(chunked_attention(q, k, v, chunk_size=chunk) ** 2)
        return tape.gradient(loss, [q, k, v])

    spec = tf.TensorSpec(query.shape)
    graph = step.get_concrete_function(spec, spec, spec).graph
    waiting = [op for op in graph.get_operations() if op.control_inputs]
    blocks = length // chunk
    # (blocks - 1) waits in the forward pass and as many in the backward pass.
    assert len(waiting) >= 2 * (blocks - 1), [op.name for op in waiting]


def test_mixed_bfloat16_agrees_with_the_plain_path():
    query = random(2, 20, 8)
    policy = keras.dtype_policies.DTypePolicy("mixed_bfloat16")
    plain, chunked = plain_and_chunked(6, query, query, dtype=policy)
    cotangent = random(2, 20, 8)
    expected, expected_gradients = outputs_and_gradients(
        plain, query, query, cotangent, use_causal_mask=True
    )
    actual, gradients = outputs_and_gradients(
        chunked, query, query, cotangent, use_causal_mask=True
    )
    assert actual.dtype == expected.dtype == "bfloat16"
    assert_close(tf.cast(actual, "float32"), tf.cast(expected, "float32"), atol=0.05)
    for gradient, reference in zip(gradients, expected_gradients, strict=True):
        assert_close(tf.cast(gradient, "float32"), tf.cast(reference, "float32"), atol=0.1)


def test_unknown_lengths_and_returned_weights_use_the_plain_path():
    query = random(2, 12, 8)
    plain, chunked = plain_and_chunked(4, query, query)
    function = tf.function(
        lambda x: chunked(x, x, use_causal_mask=True),
        input_signature=[tf.TensorSpec((None, None, 8))],
    )
    assert_close(function(query), plain(query, query, use_causal_mask=True), atol=1e-5)
    output, weights = chunked(query, query, return_attention_scores=True)
    assert weights.shape == (2, 2, 12, 12)
    assert not chunked._chunked(tf.zeros((2, 12, 2, 4)), True)
    assert not chunked._chunked(tf.zeros((2, 4, 2, 4)), False)  # one block: nothing to save


def test_config_round_trip_and_bad_chunk_size():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, attention_chunk_size=32)
    assert MultiHeadAttention.from_config(layer.get_config()).attention_chunk_size == 32
    for bad in (0, -4, 2.5, "64"):
        with pytest.raises(ValueError, match="attention_chunk_size"):
            MultiHeadAttention(num_heads=2, key_dim=4, attention_chunk_size=bad)
    key = tf.constant(random(1, 3, 2, 4))
    unknown = tf.function(
        lambda query: chunked_attention(query, key, key),
        input_signature=[tf.TensorSpec((1, None, 2, 4))],
    )
    with pytest.raises(ValueError, match="static number of queries"):
        unknown.get_concrete_function()


@pytest.mark.parametrize("name", ["gpt", "bert", "seq2seq"])
def test_backbones_with_chunks_equal_plain_ones_and_keep_the_setting(name, monkeypatch):
    from keras_transformer.layers import multi_head_attention
    from keras_transformer.models import BertBackbone, GPTBackbone, Seq2SeqBackbone

    calls = []  # every attention layer of the chunked backbone runs in chunks, none plain

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return chunked_attention(*args, **kwargs)

    monkeypatch.setattr(multi_head_attention, "chunked_attention", counted)

    sizes = {"vocabulary_size": 50, "num_layers": 2, "num_heads": 2, "hidden_dim": 16,
             "intermediate_dim": 32, "dropout": 0.0}  # fmt: skip
    tokens = RNG.integers(1, 50, size=(2, 24)).astype("int32")
    padding = np.ones((2, 24), "int32")
    padding[1, 17:] = 0
    if name == "seq2seq":
        make = Seq2SeqBackbone
        inputs = {"encoder_token_ids": tokens[:, :20], "encoder_padding_mask": padding[:, :20],
                  "decoder_token_ids": tokens, "decoder_padding_mask": padding}  # fmt: skip
    else:
        make = GPTBackbone if name == "gpt" else BertBackbone
        inputs = {"token_ids": tokens, "padding_mask": padding}
    plain = make(**sizes, max_sequence_length=32)
    chunked = make(**sizes, max_sequence_length=32, attention_chunk_size=8)
    chunked.set_weights(plain.get_weights())

    def run(model):
        with tf.GradientTape() as tape:
            outputs = model(inputs)
            outputs = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
            loss = tf.reduce_sum(outputs**2 * padding[:, : outputs.shape[1], None])
        return outputs, tape.gradient(loss, model.trainable_variables)

    (expected, expected_gradients), calls_plain = run(plain), len(calls)
    actual, gradients = run(chunked)
    assert calls_plain == 0 and len(calls) == (6 if name == "seq2seq" else 2)
    assert_close(actual, expected, atol=1e-4)
    for gradient, reference in zip(gradients, expected_gradients, strict=True):
        if reference is None:  # BERT's pooler: not in the loss
            assert gradient is None
            continue
        assert_close(tf.convert_to_tensor(gradient), tf.convert_to_tensor(reference), atol=1e-3)
    blocks = [layer for layer in chunked._flatten_layers() if isinstance(layer, MultiHeadAttention)]
    assert len(blocks) == (6 if name == "seq2seq" else 2)
    assert {layer.attention_chunk_size for layer in blocks} == {8}
    assert make.from_config(chunked.get_config()).attention_chunk_size == 8
