"""TokenMeanCrossEntropy: a mean over the weighted tokens of the global batch, on N replicas."""

import json

import keras
import numpy as np
import pytest
from fresh_process import run_code

from keras_transformer.models import TokenMeanCrossEntropy

RNG = np.random.default_rng(5)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def batch(b=4, t=6, v=7):
    logits = RNG.normal(size=(b, t, v)).astype("float32")
    labels = RNG.integers(0, v, (b, t)).astype("int32")
    lengths = np.array([6, 3, 1, 4])[:b]
    weights = (np.arange(t)[None, :] < lengths[:, None]).astype("float32")
    return logits, labels, weights


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_loss_is_the_mean_over_the_weighted_tokens(smoothing):
    logits, labels, weights = batch()
    v = logits.shape[-1]
    targets = np.eye(v)[labels] * (1 - smoothing) + smoothing / v
    per_token = -(targets * log_softmax(logits)).sum(-1)  # (B, T)
    expected = (per_token * weights).sum() / weights.sum()
    y_true = np.eye(v, dtype="float32")[labels] if smoothing else labels
    loss = TokenMeanCrossEntropy(label_smoothing=smoothing)(y_true, logits, weights)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_padding_columns_do_not_change_the_loss():
    logits, labels, weights = batch()
    longer = np.concatenate([logits, RNG.normal(size=(4, 5, 7)).astype("float32")], axis=1)
    loss = TokenMeanCrossEntropy()
    short = float(loss(labels, logits, weights))
    padded = float(
        loss(np.pad(labels, ((0, 0), (0, 5))), longer, np.pad(weights, ((0, 0), (0, 5))))
    )
    np.testing.assert_allclose(short, padded, rtol=1e-6)
    # Keras's default (sum over B x T) changes with the padding: the property this loss adds.
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert abs(float(keras_loss(labels, logits, weights)) - short) > 0.05 * short


def test_config_round_trip():
    loss = TokenMeanCrossEntropy(label_smoothing=0.2, name="ce")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, TokenMeanCrossEntropy)
    assert again.label_smoothing == 0.2 and again.name == "ce"
    with pytest.raises(ValueError, match="label_smoothing"):
        TokenMeanCrossEntropy(label_smoothing=1.0)


def test_two_replicas_sum_to_the_one_device_loss_and_gradient():
    # Replica 1 holds far fewer real tokens than replica 0: a per-replica mean would differ.
    line = run_code("""
        import json
        import numpy as np
        import tensorflow as tf
        from keras_transformer.distribute import split_cpu

        split_cpu(2)
        from keras_transformer.models import TokenMeanCrossEntropy

        rng = np.random.default_rng(3)
        logits = tf.constant(rng.normal(size=(4, 5, 6)), tf.float32)
        labels = tf.constant(rng.integers(0, 6, (4, 5)), tf.int32)
        weights = tf.constant([[1] * 5, [1] * 5, [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]], tf.float32)
        loss = TokenMeanCrossEntropy()
        scale = tf.Variable(1.0)

        def value(rows):
            with tf.GradientTape() as tape:
                out = loss(tf.gather(labels, rows), scale * tf.gather(logits, rows),
                           tf.gather(weights, rows))
            return out, tape.gradient(out, scale)

        one, one_grad = value(tf.range(4))
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

        @tf.function
        def replicated():
            def step():
                rid = tf.distribute.get_replica_context().replica_id_in_sync_group
                return value(tf.range(2) + 2 * rid)
            out, grad = strategy.run(step)
            return (strategy.reduce("SUM", out, axis=None), strategy.reduce("SUM", grad, axis=None))

        two, two_grad = replicated()
        print(json.dumps([float(one), float(two), float(one_grad), float(two_grad)]))
    """)
    one, two, one_grad, two_grad = json.loads(line)
    np.testing.assert_allclose(two, one, rtol=1e-6)
    np.testing.assert_allclose(two_grad, one_grad, rtol=1e-5)
