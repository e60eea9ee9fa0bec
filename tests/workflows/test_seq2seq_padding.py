"""Per-batch padding of the seq2seq workflow: less work, the same loss and outputs.

`--padding batch` cuts each batch to its own longest source and target
(`pipelines.trim_seq2seq_batch`); the loss is a mean over the real target tokens, so a
trimmed batch has the loss of the same batch padded to S and T; the model's outputs at real
positions do not change; batches of varying lengths do not retrace the train step;
`--length-buckets` draws each batch from one bucket of source lengths, in a stream that is
the same on every pass (so a resumed run skips to the same batches).
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer import training
from keras_transformer.data import pipelines
from keras_transformer.preprocessing import Seq2SeqPreprocessor
from workflows import seq2seq, seq2seq_data

S, T = 24, 21  # as cmudict's: most of a full-length batch is padding


def random_pairs(count, seed=0):
    """Letter strings of 1..20 characters -> their reversal, repeated to 1..18 characters."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghij"))
    pairs = []
    for _ in range(count):
        source = "".join(rng.choice(letters, rng.integers(1, 21)))
        target = (source[::-1] * 3)[: rng.integers(1, 19)]
        pairs.append((source, target))
    return pairs


@pytest.fixture(scope="module")
def preprocessor():
    source, _ = seq2seq_data.build_tokenizers(random_pairs(200), "char", "char", "shared", 100)
    return Seq2SeqPreprocessor(source, S, T)


def config(**kwargs):
    settings = {
        "dataset": "date_to_iso",
        "num_layers": 1,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "dropout": 0.0,
        "batch_size": 8,
        "steps": 12,
        "warmup_steps": 2,
        "learning_rate": 3e-3,
        **kwargs,
    }
    return seq2seq.resolve(seq2seq.Config(**settings))


def batches(preprocessor, pairs, batch_size=8, **kwargs):
    sources, targets = zip(*pairs, strict=True)
    return pipelines.seq2seq_dataset(
        tf.data.Dataset.from_tensor_slices((list(sources), list(targets))),
        preprocessor,
        None,
        None,
        batch_size,
        **kwargs,
    )


def model_for(preprocessor, cfg):
    keras.utils.set_random_seed(1)
    model = seq2seq.build_model(cfg, preprocessor)
    seq2seq.compile_model(model, cfg)
    return model


def test_each_batch_is_cut_to_its_longest_source_and_target(preprocessor):
    pairs = random_pairs(40, seed=3)
    full = list(batches(preprocessor, pairs))
    trimmed = list(batches(preprocessor, pairs, trim=True))
    shapes = set()
    for (x_full, y_full, w_full), (x, y, w) in zip(full, trimmed, strict=True):
        source_length = int(x_full["encoder_padding_mask"].numpy().sum(axis=1).max())
        target_length = int(w_full.numpy().sum(axis=1).max())
        assert x["encoder_token_ids"].shape[1] == source_length < S
        assert x["encoder_padding_mask"].shape[1] == source_length
        for value in (x["decoder_token_ids"], x["decoder_padding_mask"], y, w):
            assert value.shape[1] == target_length < T
        # What is cut is padding in every row; what is kept is the full batch's first columns.
        assert not x_full["encoder_padding_mask"].numpy()[:, source_length:].any()
        assert not w_full.numpy()[:, target_length:].any()
        for name, value in x.items():
            np.testing.assert_array_equal(value, x_full[name][:, : value.shape[1]])
        np.testing.assert_array_equal(y, y_full[:, :target_length])
        shapes.add((source_length, target_length))
    assert len(shapes) > 1  # the lengths vary from batch to batch
    spec = batches(preprocessor, pairs, trim=True).element_spec
    assert spec[0]["encoder_token_ids"].shape.as_list() == [None, None]


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_a_trimmed_batch_has_the_loss_and_outputs_of_the_full_length_batch(
    preprocessor, label_smoothing
):
    cfg = config(label_smoothing=label_smoothing)
    model = model_for(preprocessor, cfg)
    pairs = random_pairs(8, seed=5)
    x_full, y_full, w_full = next(iter(batches(preprocessor, pairs)))
    x, y, w = next(iter(batches(preprocessor, pairs, trim=True)))
    t = w.shape[1]
    assert t < T and x["encoder_token_ids"].shape[1] < S
    if label_smoothing:
        size = preprocessor.target_vocabulary.vocabulary_size()
        y_full, y = tf.one_hot(y_full, size), tf.one_hot(y, size)
    logits_full, logits = model(x_full), model(x)
    real = w.numpy() > 0
    np.testing.assert_allclose(
        logits.numpy()[real], logits_full.numpy()[:, :t][real], rtol=1e-5, atol=1e-5
    )
    loss_full = float(model.loss(y_full, logits_full, sample_weight=w_full))
    loss = float(model.loss(y, logits, sample_weight=w))
    assert loss == pytest.approx(loss_full, rel=1e-6, abs=1e-6)
    per_token = model.loss.call(y_full, logits_full).numpy()  # (B, T), unreduced
    by_hand = np.sum(per_token * w_full.numpy()) / np.sum(w_full)
    assert loss_full == pytest.approx(by_hand, rel=1e-6)
    # Keras's default reduction (divide by B x T) would differ: the trimmed batch has fewer T.
    default = (
        keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
        if label_smoothing
        else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    assert float(default(y, logits, sample_weight=w)) > 1.05 * float(
        default(y_full, logits_full, sample_weight=w_full)
    )


def test_batches_of_varying_lengths_trace_the_train_step_once(preprocessor):
    cfg = config(steps=12, label_smoothing=0.0)
    model = model_for(preprocessor, cfg)
    dataset = batches(preprocessor, random_pairs(96, seed=7), trim=True, drop_remainder=True)
    shapes = {tuple(x["encoder_token_ids"].shape) + tuple(w.shape) for x, _, w in dataset}
    assert len(shapes) >= 5
    traced = []
    compute_loss = model._compute_loss

    def counting(*args, **kwargs):  # runs in Python once per trace of the step
        traced.append(1)
        return compute_loss(*args, **kwargs)

    model._compute_loss = counting
    history = training.fit(model, dataset.repeat(), epochs=1, steps_per_epoch=12, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 12
    assert np.isfinite(history.history["loss"][-1])
    assert len(traced) <= 2  # the symbolic build and one trace, not one per shape


def test_length_buckets_batch_similar_sources_in_a_repeatable_stream(preprocessor):
    pairs = random_pairs(160, seed=9)

    def stream():
        return batches(
            preprocessor,
            pairs,
            trim=True,
            length_buckets=4,
            shuffle_buffer_size=len(pairs),
            seed=2,
            drop_remainder=True,
        )

    width = -(-S // 4)  # source characters per bucket
    first = list(stream())
    assert len(first) >= 10
    for x, _, _ in first:
        lengths = x["encoder_padding_mask"].numpy().sum(axis=1) - 1  # without [EOS]
        assert len(set(np.minimum(lengths // width, 3))) == 1  # one bucket per batch
    again = list(stream().skip(3))  # what a resumed run reads after 3 steps
    assert len(again) == len(first) - 3
    for (x_a, _, _), (x_b, _, _) in zip(first[3:], again, strict=True):
        np.testing.assert_array_equal(x_a["encoder_token_ids"], x_b["encoder_token_ids"])


def test_padding_full_keeps_every_batch_at_s_and_t(preprocessor):
    cfg = dataclasses.replace(config(), padding="full")
    examples = seq2seq_data.Examples(
        tuple(s for s, _ in random_pairs(16)), tuple((t,) for _, t in random_pairs(16))
    )
    x, _, w = next(iter(seq2seq.make_dataset(cfg, examples, preprocessor, False)))
    assert x["encoder_token_ids"].shape == (8, S) and w.shape == (8, T)
    trimmed = next(iter(seq2seq.make_dataset(config(), examples, preprocessor, False)))
    assert trimmed[2].shape[1] < T


def test_a_negative_length_buckets_is_refused(preprocessor):
    with pytest.raises(ValueError, match="length_buckets"):
        seq2seq.check_config(config(length_buckets=-1))
    with pytest.raises(ValueError, match="length_buckets"):
        batches(preprocessor, random_pairs(8), length_buckets=-2)
