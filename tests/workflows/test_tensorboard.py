"""Every training workflow writes TensorBoard logs and a per-step loss file (chief only)."""

import dataclasses
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from workflows import curves, pretrain, training

CORPUS = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
) * 60


def read_events(folder):
    """`{tag: {step: value}}` from the event files in `folder` (there must be some)."""
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    assert files, f"no event file in {folder}"
    scalars = {}
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars", value.tag
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, {})[event.step] = number
    return scalars


def tiny_pretrain(tmp_path, **changes):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    settings = {
        "corpus": str(corpus),
        "num_layers": 1,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "sequence_length": 32,
        "batch_size": 8,
        "steps": 7,
        "eval_interval": 3,
        "eval_batches": 2,
        "learning_rate": 3e-3,
        "warmup_steps": 2,
        "dropout": 0.0,
        "output_dir": str(tmp_path / "run"),
        "num_samples": 0,
        "verbose": 0,
        **changes,
    }
    return pretrain.Config(**settings)


def test_pretrain_writes_tensorboard_scalars_and_per_step_loss(tmp_path):
    config = tiny_pretrain(tmp_path, log_interval=1)
    result = pretrain.run(config)
    run = tmp_path / "run"
    train = read_events(str(run / "tensorboard" / "train"))
    validation = read_events(str(run / "tensorboard" / "validation"))
    for tag in ("loss", "learning_rate", "tokens_per_second"):
        assert sorted(train[tag]) == list(range(1, 8)), tag  # every step, 1..N
    assert all(value > 0 for value in train["tokens_per_second"].values())
    # Step k runs at schedule(k - 1): the peak after the 2 warm-up steps, the end at step 7.
    assert train["learning_rate"][1] == 0.0
    assert train["learning_rate"][3] == pytest.approx(config.learning_rate, rel=1e-5)
    assert train["learning_rate"][7] == pytest.approx(0.1 * config.learning_rate, rel=1e-5)
    history = json.loads((run / "history.json").read_text())
    assert sorted(validation["loss"]) == [3, 6, 7]  # after each evaluation, on the step axis
    assert [validation["loss"][s] for s in (3, 6, 7)] == pytest.approx(history["val_loss"])
    assert "accuracy" in validation and "accuracy" in train  # the epoch's other metrics

    per_step = curves.read_train_loss(str(run))
    assert per_step["step"] == list(range(1, 8)) and len(per_step["loss"]) == result.steps
    # The per-step losses average to Keras's epoch losses (steps 1-3, 4-6, 7).
    losses = np.array(per_step["loss"])
    means = [losses[0:3].mean(), losses[3:6].mean(), losses[6:7].mean()]
    assert means == pytest.approx(history["loss"], rel=1e-4)
    assert train["loss"][5] == pytest.approx(losses[4], rel=1e-5)
    assert per_step["epochs"]["step"] == [3, 6, 7]
    assert per_step["epochs"]["val_loss"] == pytest.approx(history["val_loss"])


@dataclasses.dataclass(frozen=True)
class FitConfig:
    batch_size: int = 4
    max_seconds: float = 0.0
    verbose: int = 0
    log_interval: int = 4


def dense_fit(run_dir, chief, epochs=1):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    os.makedirs(run_dir, exist_ok=True)
    place = training.RunPlace(tf.distribute.get_strategy(), str(run_dir), chief=chief)
    training.fit(model, data, FitConfig(), place, epochs=epochs, validation_data=data.take(2))
    return model


def test_training_loss_is_logged_every_n_steps_with_examples_per_second(tmp_path):
    dense_fit(tmp_path / "run", chief=True, epochs=2)  # 10 steps an epoch, a point every 4
    train = read_events(str(tmp_path / "run" / "tensorboard" / "train"))
    assert sorted(train["loss"]) == [4, 8, 10, 12, 16, 20]  # and at each epoch's end
    assert sorted(train["examples_per_second"]) == [4, 8, 10, 12, 16, 20]
    assert train["learning_rate"][20] == pytest.approx(0.05)
    validation = read_events(str(tmp_path / "run" / "tensorboard" / "validation"))
    assert sorted(validation["loss"]) == [10, 20]
    per_step = curves.read_train_loss(str(tmp_path / "run"))
    assert per_step["step"] == list(range(1, 21))
    # A point is the mean of the per-step losses since the previous one.
    assert train["loss"][8] == pytest.approx(np.mean(per_step["loss"][4:8]), rel=1e-5)


def test_only_the_chief_writes_curves(tmp_path):
    dense_fit(tmp_path / "chief", chief=True)
    assert glob.glob(str(tmp_path / "chief" / "tensorboard" / "*" / "events.out.tfevents.*"))
    assert (tmp_path / "chief" / curves.TRAIN_LOSS_FILE).exists()
    dense_fit(tmp_path / "worker", chief=False)
    assert not (tmp_path / "worker" / "tensorboard").exists()
    assert not (tmp_path / "worker" / curves.TRAIN_LOSS_FILE).exists()


def write_run(folder, steps, interval):
    """A run folder as `fit` leaves it: history.json (per epoch) and train_loss.json."""
    folder.mkdir()
    epoch_steps = [min(s, steps) for s in range(interval, steps + interval, interval)]
    history = {"loss": [3.0 - 0.1 * i for i in range(len(epoch_steps))]}
    history["val_loss"] = [v + 0.2 for v in history["loss"]]
    (folder / "history.json").write_text(json.dumps(history))
    step = list(range(1, steps + 1))
    epochs = {"step": epoch_steps, **history}
    curves_file = {"step": step, "loss": [3.0 - 0.01 * s for s in step], "epochs": epochs}
    (folder / curves.TRAIN_LOSS_FILE).write_text(json.dumps(curves_file))
    return str(folder)


def test_report_curves_plot_every_step_with_validation_on_the_step_axis(tmp_path):
    from workflows import report

    runs = {
        "GPT": report.read_curves(write_run(tmp_path / "gpt", steps=25, interval=10)),
        "BERT": report.read_curves(write_run(tmp_path / "bert", steps=30, interval=10)),
    }
    figure = report.curve_figure(runs, ["loss"], "Pretraining", one_panel_per_run=True)
    gpt_axis, bert_axis = figure.axes
    train, validation = gpt_axis.lines
    assert list(train.get_xdata()) == list(range(1, 26))  # 25 points, not 3 evaluations
    assert list(validation.get_xdata()) == [10, 20, 25]
    assert list(validation.get_ydata()) == pytest.approx([3.2, 3.1, 3.0])
    assert len(bert_axis.lines[0].get_xdata()) == 30
    path = report.plot_curves(runs, str(tmp_path / "curves.png"), ["loss"], "Pretraining")
    assert os.path.getsize(path) > 0


def test_report_curves_of_a_run_without_per_step_log_use_epoch_numbers(tmp_path):
    from workflows import report

    folder = tmp_path / "old"
    folder.mkdir()
    history = {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "val_accuracy": [0.6, 0.7]}
    (folder / "history.json").write_text(json.dumps(history))
    figure = report.curve_figure({"old": report.read_curves(str(folder))}, ["accuracy"], "x")
    (validation,) = figure.axes[0].lines
    assert list(validation.get_xdata()) == [1, 2]
    assert "(x: epoch)" in validation.get_label()


def test_scalar_writer_traces_once_per_set_of_tags_and_writes_every_point(tmp_path):
    # Steps and evaluations write different tags, in turn; one traced function for all of them
    # retraced as they alternated, and TensorFlow printed retracing warnings in every run.
    writer = curves.ScalarWriter(str(tmp_path))
    for step in range(1, 13):
        writer.write({"train/loss": 1.0 / step}, step)
        if step % 3 == 0:
            writer.write({"val/loss": 2.0 / step, "val/accuracy": 0.1 * step}, step)
    writer.flush()
    assert sorted(writer._functions) == [("train/loss",), ("val/accuracy", "val/loss")]
    for function in writer._functions.values():
        assert function.experimental_get_tracing_count() == 1
    scalars = read_events(str(tmp_path))
    assert scalars["train/loss"] == pytest.approx({s: 1.0 / s for s in range(1, 13)})
    assert scalars["val/accuracy"] == pytest.approx({s: 0.1 * s for s in (3, 6, 9, 12)})
