"""The training loop in one process: the same numbers as Keras `fit`, callbacks, checkpoints."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from multi_worker_case import gpt_case, parse_args, transfer_case

from keras_transformer.training import evaluate, fit
from keras_transformer.training.data import replica_slices


def _build(case, **overrides):
    keras.utils.set_random_seed(7)
    args = parse_args(["--out", "unused"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return (gpt_case if case == "gpt" else transfer_case)(args)


def _max_difference(model_a, model_b):
    return max(
        float(np.abs(a.numpy() - b.numpy()).max())
        for a, b in zip(model_a.weights, model_b.weights, strict=True)
    )


@pytest.mark.parametrize("case", ["gpt", "transfer"])
def test_fit_matches_keras_fit(case):
    reference, train, validation = _build(case)
    expected = reference.fit(
        train, epochs=2, steps_per_epoch=3, validation_data=validation, verbose=0
    ).history
    model, train, validation = _build(case)
    history = fit(model, train, epochs=2, steps_per_epoch=3, validation_data=validation, verbose=0)

    assert _max_difference(reference, model) == 0.0
    np.testing.assert_allclose(history.history["loss"], expected["loss"], rtol=1e-6)
    np.testing.assert_allclose(history.history["accuracy"], expected["accuracy"], rtol=1e-6)
    assert set(history.history) == set(expected)
    assert history is model.history
    if case == "transfer":  # Keras's own evaluation is exact on this plain validation set
        np.testing.assert_allclose(history.history["val_loss"], expected["val_loss"], rtol=1e-6)


def test_validation_loss_is_the_mean_over_every_example():
    model, train, validation = _build("gpt")
    fit(model, train, epochs=1, steps_per_epoch=2, verbose=0)
    total, count = 0.0, 0
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for x, y, weight in validation:
        total += float(loss(y, model(x), weight)) * int(x["token_ids"].shape[0])
        count += int(x["token_ids"].shape[0])
    logs = evaluate(model, validation)
    assert logs["loss"] == pytest.approx(total / count, rel=1e-6)
    assert set(logs) == {"loss", "accuracy"}


def test_callbacks_see_keras_events_and_stop_training():
    events = []

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            events.append(f"epoch_begin {epoch}")

        def on_train_batch_end(self, batch, logs=None):
            events.append(f"batch_end {batch}")
            if self.model.optimizer.iterations.numpy() >= 5:
                self.model.stop_training = True

        def on_test_end(self, logs=None):
            events.append("test_end")

        def on_epoch_end(self, epoch, logs=None):
            events.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            events.append("train_end")

    model, train, validation = _build("gpt")
    history = fit(
        model,
        train,
        epochs=5,
        steps_per_epoch=3,
        validation_data=validation,
        callbacks=[Recorder()],
        verbose=0,
    )
    metric_names = ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert events == [
        "train_begin",
        "epoch_begin 0",
        "batch_end 0",
        "batch_end 1",
        "batch_end 2",
        "test_end",
        f"epoch_end 0 {metric_names}",
        "epoch_begin 1",
        "batch_end 0",
        "batch_end 1",
        "test_end",
        f"epoch_end 1 {metric_names}",
        "train_end",
    ]
    assert int(model.optimizer.iterations.numpy()) == 5
    assert len(history.history["loss"]) == 2


def test_keras_file_callbacks_write_on_one_worker(tmp_path):
    model, train, validation = _build("transfer")
    fit(
        model,
        train,
        epochs=2,
        steps_per_epoch=2,
        validation_data=validation,
        callbacks=[
            keras.callbacks.ModelCheckpoint(
                str(tmp_path / "best.weights.h5"), save_weights_only=True
            ),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=5),
        ],
        verbose=0,
    )
    assert (tmp_path / "best.weights.h5").exists()
    assert (tmp_path / "log.csv").read_text().count("\n") == 3  # header + 2 epochs


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_checkpoints_resume_to_the_uninterrupted_result(tmp_path, dropout):
    """With dropout, the resumed run must draw the masks the uninterrupted run drew next: the
    checkpoint holds the dropout layers' random-number states."""
    uninterrupted, train, _ = _build("gpt", dropout=dropout)
    fit(uninterrupted, train, epochs=3, steps_per_epoch=2, verbose=0)

    first, train, _ = _build("gpt", dropout=dropout)
    fit(first, train, epochs=2, steps_per_epoch=2, verbose=0, checkpoint_dir=str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")

    resumed, train, _ = _build("gpt", dropout=dropout)  # a fresh process would start like this
    history = fit(
        resumed, train, epochs=3, steps_per_epoch=2, verbose=0, checkpoint_dir=str(tmp_path)
    )
    assert len(history.history["loss"]) == 1  # only the third epoch ran
    assert int(resumed.optimizer.iterations.numpy()) == 6
    assert _max_difference(uninterrupted, resumed) < 1e-6


def test_backup_and_restore_becomes_the_checkpoint_folder(tmp_path):
    model, train, _ = _build("transfer")
    keep = keras.callbacks.BackupAndRestore(str(tmp_path / "kept"), delete_checkpoint=False)
    fit(model, train, epochs=1, steps_per_epoch=2, callbacks=[keep], verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path / "kept"))

    model, train, _ = _build("transfer")
    history = fit(
        model,
        train,
        epochs=2,
        steps_per_epoch=2,
        callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "kept"))],
        verbose=0,
    )
    assert len(history.history["loss"]) == 1  # resumed after epoch 1
    assert not (tmp_path / "kept").exists()  # like Keras: removed once training completed


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    model, train, _ = _build("transfer")
    fit(model, train, epochs=1, steps_per_epoch=1, verbose=0, checkpoint_dir=str(tmp_path))
    other, train, _ = _build("gpt")
    with pytest.raises(ValueError, match="does not match this model"):
        fit(other, train, epochs=2, steps_per_epoch=1, verbose=0, checkpoint_dir=str(tmp_path))


def test_finite_data_ends_the_epoch_like_keras():
    model, _, validation = _build("transfer")
    history = fit(model, validation, epochs=2, verbose=0)  # 2 batches per epoch, no repeat
    assert int(model.optimizer.iterations.numpy()) == 4
    assert len(history.history["loss"]) == 2


def test_a_dataset_function_shards_by_itself():
    reference, train, _ = _build("transfer")
    fit(reference, train, epochs=1, steps_per_epoch=3, verbose=0)

    model, train, _ = _build("transfer")
    contexts = []

    def dataset_fn(context):  # e.g. files.shard(context.num_input_pipelines, ...)
        contexts.append((context.num_input_pipelines, context.input_pipeline_id))
        return train

    fit(model, dataset_fn, epochs=1, steps_per_epoch=3, verbose=0)
    assert set(contexts) == {(1, 0)}
    assert _max_difference(reference, model) == 0.0


def test_bad_arguments_are_named():
    model, train, _ = _build("transfer")
    with pytest.raises(ValueError, match="epochs"):
        fit(model, train, epochs=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        fit(model, train, steps_per_epoch=-1)
    uncompiled = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not compiled"):
        fit(uncompiled, train)


def _rows(dataset):
    return [batch.numpy().tolist() for batch in dataset]


def test_replica_slices_take_each_replicas_rows_of_every_global_batch():
    batches = tf.data.Dataset.range(16).batch(8)  # [0..7], [8..15]
    # 4 replicas, this worker holds replicas 2 and 3: rows 4-5 and 6-7 of every batch.
    assert _rows(replica_slices(batches, 4, 2, 2)) == [[4, 5], [6, 7], [12, 13], [14, 15]]
    uneven = tf.data.Dataset.range(11).batch(8)  # a last batch of 3 rows
    rows = _rows(replica_slices(uneven, 2, 0, 2))
    assert rows == [[0, 1, 2, 3], [4, 5, 6, 7], [8], [9, 10]]


def test_history_is_json_serialisable():
    model, train, _ = _build("transfer")
    history = fit(model, train, epochs=1, steps_per_epoch=1, verbose=0)
    json.dumps(history.history)
    assert all(isinstance(v, float) for values in history.history.values() for v in values)
