"""Our fused AdamW: Keras's AdamW numbers, fewer ops, on one device and on 2 replicas."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from fresh_process import run_code

from keras_transformer.graph_checks import graph_ops
from keras_transformer.training.optimizers import AdamW

SHAPES = [(50, 8), (8, 8), (8,), (8, 3), (3,)]  # an embedding table, kernels, biases


def variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=s).astype("float32"), name=f"w{i}") for i, s in
            enumerate(SHAPES)]  # fmt: skip


def gradients(step, dense=False):
    """Random gradients; for the embedding table the IndexedSlices a gather gives (a row
    gathered twice appears twice), or with `dense` their sum as a dense table."""
    rng = np.random.default_rng(100 + step)
    grads = [tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES]
    rows = tf.constant([1, 7, 7, 30])
    grads[0] = tf.IndexedSlices(tf.gather(grads[0], rows), rows, tf.constant(SHAPES[0]))
    if dense:
        grads[0] = tf.convert_to_tensor(grads[0])
    return grads


def train(optimizer_class, steps=12, dense=True, **settings):
    weights = variables()
    schedule = keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=3e-2,
                                                      warmup_steps=2)  # fmt: skip
    optimizer = optimizer_class(learning_rate=schedule, **settings)
    optimizer.exclude_from_weight_decay(var_names=["w2"])  # one bias without decay
    for step in range(steps):
        optimizer.apply(gradients(step, dense), weights)
    return [w.numpy() for w in weights], optimizer


@pytest.mark.parametrize(
    "settings",
    [
        {"weight_decay": 0.1, "global_clipnorm": 1.0},
        {"weight_decay": 0.0, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6},
        {"weight_decay": 0.1, "amsgrad": True},  # Keras's own update
    ],
)
def test_the_weights_are_keras_adamws_to_float32_rounding(settings):
    ours, optimizer = train(AdamW, **settings)
    theirs, _ = train(keras.optimizers.AdamW, **settings)
    start = variables()
    for a, b, w0 in zip(ours, theirs, start, strict=True):
        moved = np.abs(b - w0.numpy()).max()
        assert moved > 1e-3  # the weights really moved
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * max(1.0, np.abs(b).max()))
    assert int(optimizer.iterations.numpy()) == 12


def test_a_sparse_gradient_is_its_dense_sum():
    """IndexedSlices (an embedding's gradient) are summed into a dense table first, so a row
    gathered twice moves by the square of its summed gradient. (Keras's own AdamW squares the
    slices before their repeated rows are summed, and `global_clipnorm` measures the slices,
    so Keras is compared with on dense gradients above.)"""
    sparse, _ = train(AdamW, dense=False, weight_decay=0.1)
    dense, _ = train(AdamW, dense=True, weight_decay=0.1)
    for a, b in zip(sparse, dense, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_excluded_variables_get_no_weight_decay():
    """With zero gradients only the decay moves a weight: w2 is excluded, the rest decay."""
    weights = variables()
    before = [w.numpy() for w in weights]
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["w2"])
    optimizer.apply([tf.zeros(s) for s in SHAPES], weights)
    for i, (w, b) in enumerate(zip(weights, before, strict=True)):
        expected = b if i == 2 else b * (1 - 0.1 * 0.5)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


def test_the_update_is_one_kernel_per_variable():
    def apply_ops(optimizer_class):
        weights = variables()
        optimizer = optimizer_class(learning_rate=1e-3, weight_decay=0.01)
        optimizer.build(weights)
        grads = [tf.ones(s) for s in SHAPES]
        function = tf.function(lambda: optimizer.apply(grads, weights))
        return [op.type for op in graph_ops(function.get_concrete_function())]

    ours, theirs = apply_ops(AdamW), apply_ops(keras.optimizers.AdamW)
    assert ours.count("ResourceApplyAdam") == len(SHAPES)
    assert ours.count("ResourceApplyGradientDescent") == len(SHAPES)  # the decay
    assert "ResourceApplyAdam" not in theirs
    print(f"ops per apply: ours {len(ours)}, Keras {len(theirs)}")
    assert len(ours) < 0.6 * len(theirs)


def test_config_saved_models_and_checkpoints_carry_over(tmp_path):
    optimizer = AdamW(2e-3, weight_decay=0.02, beta_2=0.98, global_clipnorm=1.0)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is AdamW and again.get_config() == optimizer.get_config()

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=AdamW(1e-3, weight_decay=0.01), loss="mse")
    model.fit(np.ones((8, 4)), np.zeros((8, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is AdamW
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # A checkpoint written with Keras's AdamW restores into ours: the same variables.
    weights = variables()
    keras_optimizer = keras.optimizers.AdamW(1e-3)
    keras_optimizer.apply(gradients(0), weights)
    path = tf.train.Checkpoint(optimizer=keras_optimizer).save(str(tmp_path / "ckpt"))
    ours = AdamW(1e-3)
    ours.build(variables())
    tf.train.Checkpoint(optimizer=ours).restore(path).assert_existing_objects_matched()
    for a, b in zip(ours.variables, keras_optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_two_replicas_give_keras_adamws_weights():
    """Under MirroredStrategy the fused kernels update each replica's copy of every variable."""
    result = run_code("""
        import json
        import keras
        import numpy as np
        import tensorflow as tf
        from keras_transformer.distribute import split_cpu

        split_cpu(2)
        from keras_transformer.training.optimizers import AdamW

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
        y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
        weights = {}
        for name, cls in (("ours", AdamW), ("keras", keras.optimizers.AdamW)):
            keras.utils.set_random_seed(3)
            with strategy.scope():
                model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5),
                                          keras.layers.Dense(2)])
                model.compile(optimizer=cls(1e-2, weight_decay=0.1, global_clipnorm=1.0),
                              loss="mse")
            model.fit(x, y, batch_size=8, epochs=3, verbose=0)
            weights[name] = [w.numpy() for w in model.weights]
            replicas = [v.numpy() for v in model.weights[0].value.values]
            assert len(replicas) == 2 and np.array_equal(replicas[0], replicas[1])
        print(json.dumps(max(float(np.abs(a - b).max()) for a, b in
                             zip(weights["ours"], weights["keras"]))))
    """)
    assert json.loads(result) < 1e-6
