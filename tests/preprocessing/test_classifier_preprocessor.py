"""ClassifierPreprocessor: the framing equals a Python reference (single texts, round-robin and
waterfall pairs), both output widths agree, labels pass through, config round trip, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from preprocessing_helpers import TEXTS, word_piece_vocabulary, word_pieces

from keras_transformer.data.pipelines import classification_dataset
from keras_transformer.preprocessing import ClassifierPreprocessor

T = 12


def _reference(tokenizer, segments, length, truncate):
    """`[CLS] a [SEP] (b [SEP])` padded with [PAD], segment ids, mask: plain Python."""
    cls, sep, pad = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    columns = [tokenizer(list(s)).to_list() for s in segments]
    token_ids, segment_ids, mask = [], [], []
    for row in zip(*columns, strict=True):
        budget, kept = length - 1 - len(row), [0] * len(row)
        if truncate == "waterfall":
            for i, ids in enumerate(row):
                kept[i] = min(len(ids), budget - sum(kept))
        else:
            while sum(kept) < budget and any(
                k < len(ids) for k, ids in zip(kept, row, strict=True)
            ):
                for i, ids in enumerate(row):
                    if kept[i] < len(ids) and sum(kept) < budget:
                        kept[i] += 1
        ids, segs = [cls], [0]
        for i, piece in enumerate(row):
            ids += piece[: kept[i]] + [sep]
            segs += [i] * (kept[i] + 1)
        token_ids.append(ids + [pad] * (length - len(ids)))
        segment_ids.append(segs + [0] * (length - len(segs)))
        mask.append([True] * len(ids) + [False] * (length - len(ids)))
    return np.array(token_ids), np.array(segment_ids), np.array(mask)


@pytest.mark.parametrize("truncate", ["round_robin", "waterfall"])
@pytest.mark.parametrize("num_segments", [1, 2])
def test_framing_equals_the_reference(num_segments, truncate):
    tokenizer = word_pieces()
    preprocessor = ClassifierPreprocessor(
        tokenizer, T, truncate=truncate, num_segments=num_segments
    )
    segments = [TEXTS, TEXTS[1:] + TEXTS[:1]][:num_segments]
    x = preprocessor(tuple(tf.constant(s) for s in segments) if num_segments == 2 else TEXTS)
    token_ids, segment_ids, mask = _reference(tokenizer, segments, T, truncate)
    np.testing.assert_array_equal(x["token_ids"], token_ids)
    np.testing.assert_array_equal(x["segment_ids"], segment_ids)
    np.testing.assert_array_equal(x["padding_mask"], mask)
    assert x["token_ids"].dtype == tf.int32 and x["segment_ids"].dtype == tf.int32
    assert mask[:, -1].any() and not mask.all()  # Some rows truncated, some padded.


def test_longest_width_gives_the_same_values_on_real_positions():
    preprocessor = ClassifierPreprocessor(word_pieces(), 64)
    full = preprocessor(TEXTS[:3])
    short = preprocessor(TEXTS[:3], pad_to_longest=True)
    width = int(full["padding_mask"].numpy().sum(axis=1).max())
    assert width < 64 and short["token_ids"].shape == (3, width)
    for name in full:
        np.testing.assert_array_equal(short[name], full[name][:, :width])
    empty = preprocessor(tf.zeros([0], tf.string), pad_to_longest=True)
    assert empty["token_ids"].shape == (0, 2)


def test_labels_and_weights_pass_through_and_the_dataset_is_a_map():
    preprocessor = ClassifierPreprocessor(word_pieces(), T)
    labels = tf.range(len(TEXTS))
    x, y = preprocessor(TEXTS, labels)
    assert y is labels
    _, y, weights = preprocessor(TEXTS, labels, tf.ones([len(TEXTS)]))
    assert weights.shape == (len(TEXTS),)
    single = preprocessor(tf.constant(TEXTS[0]))
    np.testing.assert_array_equal(single["token_ids"], x["token_ids"][0])
    examples = tf.data.Dataset.from_tensor_slices((TEXTS, labels))
    mapped = examples.batch(4).map(preprocessor)
    piped = classification_dataset(examples, preprocessor, None, 4)
    for (a, la), (b, lb) in zip(mapped, piped, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(la, lb)


def test_config_round_trip_gives_equal_outputs():
    preprocessor = ClassifierPreprocessor(word_pieces(), 9, truncate="waterfall", num_segments=2)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(preprocessor)
    )
    assert restored.get_config() == preprocessor.get_config()
    pair = (tf.constant(TEXTS), tf.constant(TEXTS[::-1]))
    for name, value in preprocessor(pair).items():
        np.testing.assert_array_equal(restored(pair)[name], value)


def test_bad_input():
    preprocessor = ClassifierPreprocessor(word_pieces(), T)
    with pytest.raises(ValueError, match=r"num_segments=1 .* Received: 2 segments"):
        preprocessor((tf.constant(["a"]), tf.constant(["b"])))
    with pytest.raises(ValueError, match=r"num_segments=2 .* Received: one text"):
        ClassifierPreprocessor(word_pieces(), T, num_segments=2)(tf.constant(["a"]))
    with pytest.raises(ValueError, match=r"takes `x` as strings .* dtype int32"):
        preprocessor(tf.constant([3, 4]))
    with pytest.raises(ValueError, match=r"takes `x` as strings .* shape \(1, 1\)"):
        preprocessor(tf.constant([["a"]]))
    lacking = word_pieces(special_tokens=["[PAD]", "[UNK]", "[MASK]"])
    with pytest.raises(ValueError, match=r"'\[CLS\]' \(cls_token\), '\[SEP\]' \(sep_token\)"):
        ClassifierPreprocessor(lacking, T)
    with pytest.raises(ValueError, match="`sequence_length` must be an int >= 3"):
        ClassifierPreprocessor(word_pieces(), 2)
    with pytest.raises(ValueError, match="sequence_length=None"):
        ClassifierPreprocessor(keras_layer_with_length(), T)
    with pytest.raises(ValueError, match="`truncate` must be one of"):
        ClassifierPreprocessor(word_pieces(), T, truncate="middle")


def keras_layer_with_length():
    from keras_transformer.text import WordPieceTokenizer

    return WordPieceTokenizer(word_piece_vocabulary(), sequence_length=8)
