"""Masked-LM masking statistics and determinism."""

import numpy as np
import tensorflow as tf

from keras_transformer.text import MaskedLMMaskGenerator

PAD, CLS, SEP, MASK = 0, 2, 3, 4
VOCABULARY_SIZE = 1000


def _batch(rng, rows=2000, length=64):
    lengths = rng.integers(10, length - 1, rows)
    ids = np.zeros((rows, length), np.int32)
    for row, n in enumerate(lengths):
        ids[row, 0], ids[row, n + 1] = CLS, SEP
        ids[row, 1 : n + 1] = rng.integers(10, VOCABULARY_SIZE, n)
    return tf.constant(ids), tf.constant(ids != PAD)


def _masker():
    return MaskedLMMaskGenerator(
        VOCABULARY_SIZE, MASK, max_selections=12, unselectable_token_ids=[PAD, CLS, SEP]
    )


def test_masking_statistics():
    token_ids, padding_mask = _batch(np.random.default_rng(0))
    out = _masker()(token_ids, padding_mask, seed=tf.constant([7, 11]))
    ids, new = token_ids.numpy(), out["token_ids"].numpy()
    positions, weights = out["mask_positions"].numpy(), out["mask_weights"].numpy()
    real = weights > 0
    rows = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)

    selectable = (ids > SEP).sum(axis=1)
    chosen = real.sum(axis=1)
    np.testing.assert_array_equal(chosen, np.minimum(np.round(0.15 * selectable), 12))
    assert abs(chosen.sum() / selectable.sum() - 0.15) < 0.01
    # Never a special token or padding; labels are the original ids.
    assert (ids[rows[real], positions[real]] > SEP).all()
    np.testing.assert_array_equal(out["mask_ids"].numpy()[real], ids[rows[real], positions[real]])
    # Positions increase; padding slots are 0 with weight 0.
    assert all((np.diff(p[w > 0]) > 0).all() for p, w in zip(positions, weights, strict=True))
    assert (positions[~real] == 0).all()
    # 80% [MASK], 10% random, 10% kept.
    after = new[rows[real], positions[real]]
    before = ids[rows[real], positions[real]]
    masked = (after == MASK).mean()
    kept = (after == before).mean()
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02
    assert abs((1 - masked - kept) - 0.1) < 0.02
    assert not np.isin(after[(after != MASK) & (after != before)], [PAD, CLS, SEP, MASK]).any()
    # Nothing outside the chosen positions changes.
    untouched = np.ones_like(ids, bool)
    untouched[rows[real], positions[real]] = False
    np.testing.assert_array_equal(new[untouched], ids[untouched])


def test_same_seed_same_masks_other_seed_other_masks():
    token_ids, padding_mask = _batch(np.random.default_rng(1), rows=64)
    masker = _masker()
    first = masker(token_ids, padding_mask, seed=tf.constant([1, 2]))
    again = masker(token_ids, padding_mask, seed=tf.constant([1, 2]))
    other = masker(token_ids, padding_mask, seed=tf.constant([1, 3]))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["mask_positions"], other["mask_positions"])
