"""Every weight gets its own initializer: no two kernels of a layer start equal or correlated."""

import keras
import numpy as np
import pytest
from initializer_checks import (
    assert_independent,
    assert_std,
    glorot_uniform_std,
    random_weights,
    truncated_normal_std,
)

from keras_transformer.layers import (
    ClassificationHead,
    FeedForward,
    LanguageModelHead,
    MaskedLMHead,
    MultiHeadAttention,
    PositionEmbedding,
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_transformer.layers.initializers import (
    TRUNCATED_NORMAL_STD_FACTOR,
    clone_initializer,
    default_initializer,
)

H = 128  # wide enough that independent (H, H) kernels correlate by |r| < 0.05 (6 std errors)
DEFAULT_STD = truncated_normal_std(0.02)  # 0.017593
SEQUENCE = np.random.default_rng(0).normal(size=(2, 4, H)).astype("float32")


def built(layer, *inputs):
    layer(*inputs)
    return layer


def test_truncated_normal_std_factor_is_the_truncated_normal_std():
    assert pytest.approx(0.017593, abs=1e-6) == DEFAULT_STD
    assert pytest.approx(DEFAULT_STD / 0.02, rel=1e-12) == TRUNCATED_NORMAL_STD_FACTOR
    values = np.asarray(default_initializer()((500, 500)))
    assert float(values.std()) == pytest.approx(DEFAULT_STD, rel=0.01)
    assert float(np.abs(values).max()) <= 0.04 * (1 + 1e-6)


def test_unseeded_clones_draw_different_values_of_the_same_distribution():
    shared = keras.initializers.TruncatedNormal(stddev=0.02)
    assert np.array_equal(shared((64, 64)), shared((64, 64)))  # the trap being avoided
    first, second = clone_initializer(shared), clone_initializer(shared)
    assert type(first) is type(second) is keras.initializers.TruncatedNormal
    assert first.stddev == second.stddev == 0.02
    assert_independent({"first": np.asarray(first((H, H))), "second": np.asarray(second((H, H)))})


def test_clones_are_reproducible_under_set_random_seed():
    def draw():
        keras.utils.set_random_seed(7)
        shared = keras.initializers.GlorotUniform()
        return [np.asarray(clone_initializer(shared)((32, 32))) for _ in range(3)]

    for a, b in zip(draw(), draw(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_integer_seeded_clones_are_distinct_and_reproducible():
    def draw():
        seeded = keras.initializers.TruncatedNormal(stddev=0.02, seed=11)
        return {f"clone_{i}": np.asarray(clone_initializer(seeded)((H, H))) for i in range(3)}

    first, second = draw(), draw()
    assert_independent(first)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_seed_generator_seeded_initializer_is_shared_and_advances():
    def draw():
        seeded = keras.initializers.RandomNormal(seed=keras.random.SeedGenerator(3))
        return [np.asarray(clone_initializer(seeded)((H, H))) for _ in range(2)]

    first, second = draw(), draw()
    assert_independent({"a": first[0], "b": first[1]})
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_clone_of_names_constants_and_callables():
    zeros = clone_initializer("zeros")
    assert isinstance(zeros, keras.initializers.Zeros)
    constant = clone_initializer(keras.initializers.Constant(0.5))
    np.testing.assert_array_equal(constant((2, 2)), np.full((2, 2), 0.5))

    def custom(shape, dtype=None):
        return np.ones(shape)

    assert clone_initializer(custom) is custom


def test_multi_head_attention_kernels_independent_glorot_by_default():
    layer = built(MultiHeadAttention(num_heads=2, key_dim=H // 2), SEQUENCE, SEQUENCE)
    kernels = random_weights(layer)
    assert sorted(kernels) == sorted(
        f"{layer.name}/{p}_kernel" for p in ("query", "key", "value", "output")
    )
    assert_independent(kernels)
    assert_std(kernels, glorot_uniform_std)


def test_multi_head_attention_kernels_independent_with_a_given_initializer():
    shared = keras.initializers.TruncatedNormal(stddev=0.02)
    layer = built(
        MultiHeadAttention(num_heads=2, key_dim=H // 2, kernel_initializer=shared),
        SEQUENCE,
        SEQUENCE,
    )
    kernels = random_weights(layer)
    assert_independent(kernels)
    assert_std(kernels, DEFAULT_STD, bound=0.04)


def test_feed_forward_kernels_independent():
    kernels = random_weights(built(FeedForward(2 * H), SEQUENCE))
    assert len(kernels) == 2
    assert_independent(kernels)  # (H, 2H) and (2H, H): the same numbers reshaped is the trap
    assert_std(kernels, DEFAULT_STD, bound=0.04)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_block_kernels_independent(normalize_first):
    block = built(TransformerEncoderBlock(2, 2 * H, normalize_first=normalize_first), SEQUENCE)
    kernels = random_weights(block)
    assert len(kernels) == 6  # q, k, v, o, and the two feed-forward kernels
    assert_independent(kernels)
    assert_std(kernels, DEFAULT_STD, bound=0.04)


def test_decoder_block_with_cross_attention_kernels_independent():
    block = TransformerDecoderBlock(2, 2 * H, cross_attention=True)
    block(SEQUENCE, encoder_sequence=SEQUENCE)
    kernels = random_weights(block)
    assert len(kernels) == 10
    assert_independent(kernels)
    assert_std(kernels, DEFAULT_STD, bound=0.04)


def test_blocks_given_one_instance_get_independent_kernels():
    shared = keras.initializers.TruncatedNormal(stddev=0.02)
    first = built(TransformerEncoderBlock(2, 2 * H, kernel_initializer=shared), SEQUENCE)
    second = built(TransformerEncoderBlock(2, 2 * H, kernel_initializer=shared), SEQUENCE)
    assert_independent({**random_weights(first), **random_weights(second)})


def test_seeded_block_is_reproducible_and_its_kernels_independent():
    def build():
        seeded = keras.initializers.TruncatedNormal(stddev=0.02, seed=5)
        return random_weights(
            built(TransformerEncoderBlock(2, 2 * H, kernel_initializer=seeded), SEQUENCE)
        )

    keras.utils.set_random_seed(1)
    first = build()
    keras.utils.set_random_seed(2)  # the global seed does not matter to a seeded initializer
    second = build()
    assert_independent(first)
    assert_std(first, DEFAULT_STD, bound=0.04)
    assert [v.shape for v in first.values()] == [v.shape for v in second.values()]
    for a, b in zip(first.values(), second.values(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_masked_lm_head_untied_kernels_independent():
    head = MaskedLMHead(vocabulary_size=300)
    head(SEQUENCE, np.array([[0, 2], [1, 3]]))
    kernels = random_weights(head)
    assert len(kernels) == 2  # the transform (H, H) and the output (H, V) kernel
    assert_independent(kernels)
    assert_std(kernels, DEFAULT_STD, bound=0.04)


def test_classification_head_kernels_independent():
    pooled = SEQUENCE[:, 0, :]
    kernels = random_weights(built(ClassificationHead(num_classes=64, hidden_dim=H), pooled))
    assert len(kernels) == 2  # hidden (H, H) and logits (H, C)
    assert_independent(kernels)
    assert_std(kernels, DEFAULT_STD, bound=0.04)


def test_embeddings_and_untied_lm_head_have_the_documented_std():
    token = TokenEmbedding(vocabulary_size=300, hidden_dim=H)
    token(np.array([[1, 2]]))
    position = built(PositionEmbedding(max_sequence_length=200), SEQUENCE)
    lm_head = built(LanguageModelHead(vocabulary_size=300), SEQUENCE)
    weights = {**random_weights(token), **random_weights(position), **random_weights(lm_head)}
    assert len(weights) == 3
    assert_independent(weights)
    assert_std(weights, DEFAULT_STD, bound=0.04)


def test_one_shared_instance_for_embeddings_gives_independent_tables():
    shared = keras.initializers.TruncatedNormal(stddev=0.02)
    first = TokenEmbedding(300, H, embeddings_initializer=shared)
    second = TokenEmbedding(300, H, embeddings_initializer=shared)
    first.build()
    second.build()
    position = built(PositionEmbedding(300, initializer=shared), SEQUENCE)
    assert_independent(
        {**random_weights(first), **random_weights(second), **random_weights(position)}
    )


def test_config_keeps_the_given_initializer():
    seeded = keras.initializers.TruncatedNormal(stddev=0.05, seed=9)
    layer = MultiHeadAttention(num_heads=2, key_dim=8, kernel_initializer=seeded)
    layer(SEQUENCE[..., :16], SEQUENCE[..., :16])
    config = layer.get_config()["kernel_initializer"]["config"]
    assert config["stddev"] == 0.05 and config["seed"] == 9
