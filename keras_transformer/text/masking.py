"""Masked-language-model masking (BERT's 15% / 80-10-10), seeded and stateless, in graph mode."""

import tensorflow as tf


class MaskedLMMaskGenerator(tf.Module):
    """Choose tokens to predict and corrupt them, as BERT pre-training does.

    For each sequence, `round(mask_selection_rate * n)` of its `n` selectable tokens (at least 1
    if it has any, at most `max_selections`) are chosen uniformly at random. Special tokens
    (`unselectable_token_ids`) and padding are never chosen. Of the chosen tokens,
    `mask_token_rate` become `mask_token_id`, `random_token_rate` become a random non-special
    token, and the rest stay as they are.

    The randomness is stateless: the same `seed` gives the same masks, so a pipeline that feeds a
    fresh seed per batch (e.g. from `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`)
    is reproducible and still masks differently every epoch.

    Args:
        vocabulary_size: int. Random replacement ids are drawn from `[0, vocabulary_size)`
            minus the special ids.
        mask_token_id: int. The `[MASK]` id.
        max_selections: int. P, the number of prediction slots per sequence.
        unselectable_token_ids: list of int. Ids never chosen (`[PAD]`, `[CLS]`, `[SEP]`, ...).
        mask_selection_rate: float. Fraction of selectable tokens chosen. Defaults to `0.15`.
        mask_token_rate: float. Fraction of chosen tokens set to `[MASK]`. Defaults to `0.8`.
        random_token_rate: float. Fraction of chosen tokens set to a random token. Defaults to
            `0.1`.
        name: str. The module name.

    Call arguments:
        token_ids: int32 (B, T) token ids.
        padding_mask: bool (B, T), true on real tokens.
        seed: int32 or int64 tensor of shape (2,), a stateless random seed.

    Returns:
        A dict: `"token_ids"` int32 (B, T) the corrupted ids; `"mask_positions"` int32 (B, P) the
        chosen positions in increasing order, padded with 0; `"mask_ids"` int32 (B, P) the
        original ids there, padded with 0; `"mask_weights"` float32 (B, P), 1 for real slots.

    Example:
    >>> masker = MaskedLMMaskGenerator(100, mask_token_id=4, max_selections=3,
    ...                                unselectable_token_ids=[0, 2, 3])
    >>> ids = tf.constant([[2, 10, 11, 12, 13, 14, 15, 3, 0, 0]])
    >>> out = masker(ids, ids != 0, seed=tf.constant([1, 2]))
    >>> sorted(out)
    ['mask_ids', 'mask_positions', 'mask_weights', 'token_ids']
    """

    def __init__(
        self,
        vocabulary_size,
        mask_token_id,
        max_selections,
        unselectable_token_ids,
        mask_selection_rate=0.15,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        name=None,
    ):
        super().__init__(name=name)
        for arg, value in [
            ("mask_selection_rate", mask_selection_rate),
            ("mask_token_rate", mask_token_rate),
            ("random_token_rate", random_token_rate),
        ]:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{arg}` must be in [0, 1]. Received: {arg}={value!r}")
        if mask_token_rate + random_token_rate > 1.0:
            raise ValueError(
                "`mask_token_rate + random_token_rate` must be at most 1. Received: "
                f"mask_token_rate={mask_token_rate}, random_token_rate={random_token_rate}"
            )
        if not isinstance(max_selections, int) or max_selections < 1:
            raise ValueError(
                f"`max_selections` must be a positive int. Received: {max_selections!r}"
            )
        if not 0 <= mask_token_id < vocabulary_size:
            raise ValueError(
                f"`mask_token_id` must be in [0, {vocabulary_size}). Received: {mask_token_id!r}"
            )
        special = sorted(set(int(i) for i in unselectable_token_ids) | {mask_token_id})
        replacements = [i for i in range(vocabulary_size) if i not in set(special)]
        if not replacements:
            raise ValueError(
                f"No random replacement ids: all {vocabulary_size} ids are special. Received: "
                f"unselectable_token_ids={list(unselectable_token_ids)}"
            )
        self.vocabulary_size = vocabulary_size
        self.mask_token_id = mask_token_id
        self.max_selections = max_selections
        self.unselectable_token_ids = special
        self.mask_selection_rate = mask_selection_rate
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate
        self._special = tf.constant(special, tf.int32)
        self._replacements = tf.constant(replacements, tf.int32)

    def __call__(self, token_ids, padding_mask, seed):
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)  # (B, T)
        padding_mask = tf.cast(padding_mask, tf.bool)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
        shape = tf.shape(token_ids)
        is_special = tf.reduce_any(token_ids[:, :, None] == self._special[None, None, :], axis=2)
        selectable = padding_mask & ~is_special  # (B, T)

        # Choose round(rate * n) selectable positions per row: the top random scores.
        count = tf.reduce_sum(tf.cast(selectable, tf.float32), axis=1)  # (B,)
        wanted = tf.maximum(tf.round(count * self.mask_selection_rate), tf.minimum(count, 1.0))
        wanted = tf.cast(tf.minimum(wanted, float(self.max_selections)), tf.int32)  # (B,)
        scores = tf.random.stateless_uniform(shape, seeds[0])
        scores = tf.where(selectable, scores, -1.0)
        width = tf.minimum(self.max_selections, shape[1])
        _, top = tf.math.top_k(scores, k=width)  # (B, width) positions, best first.
        valid = tf.range(width)[None, :] < wanted[:, None]
        # Increasing positions, padding (position T) last, then back to 0 for padding.
        positions = tf.sort(tf.where(valid, top, shape[1]), axis=1)
        valid = positions < shape[1]
        positions = tf.where(valid, positions, 0)
        pad = [[0, 0], [0, self.max_selections - width]]
        positions = tf.pad(positions, pad)
        valid = tf.pad(valid, pad)

        original = tf.gather(token_ids, positions, batch_dims=1)  # (B, P)
        draw = tf.random.stateless_uniform(tf.shape(positions), seeds[1])
        random_ids = tf.gather(
            self._replacements,
            tf.random.stateless_uniform(
                tf.shape(positions), seeds[2], maxval=tf.size(self._replacements), dtype=tf.int32
            ),
        )
        new_ids = tf.where(
            draw < self.mask_token_rate,
            self.mask_token_id,
            tf.where(draw < self.mask_token_rate + self.random_token_rate, random_ids, original),
        )
        rows = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(positions))
        indices = tf.boolean_mask(tf.stack([rows, positions], axis=2), valid)
        corrupted = tf.tensor_scatter_nd_update(token_ids, indices, tf.boolean_mask(new_ids, valid))
        return {
            "token_ids": corrupted,
            "mask_positions": positions,
            "mask_ids": tf.where(valid, original, 0),
            "mask_weights": tf.cast(valid, tf.float32),
        }
