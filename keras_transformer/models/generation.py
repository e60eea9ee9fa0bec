"""Token sampling and prompt handling for generation (graph-mode, exportable)."""

import numpy as np
import tensorflow as tf

SAMPLERS = ("greedy", "top_k", "top_p", "random")


def sampler_settings(sampler, temperature, top_k, top_p):
    """Maps a sampler name to the numeric settings `sample_next_token` takes.

    `"greedy"` is temperature 0; `"random"` samples from the full softmax; `"top_k"` keeps the
    `top_k` most likely tokens; `"top_p"` keeps the smallest set whose probability reaches
    `top_p` (nucleus sampling).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}. Expected one of {SAMPLERS}.")
    if sampler == "greedy":
        return 0.0, 0, 1.0
    if temperature <= 0:
        raise ValueError(
            f"`temperature` must be positive for sampler={sampler!r}. Received: {temperature}. "
            "Use sampler='greedy' for deterministic decoding."
        )
    if sampler == "top_k" and (not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k}")
    if sampler == "top_p" and not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be in (0, 1]. Received: top_p={top_p}")
    return (
        float(temperature),
        int(top_k) if sampler == "top_k" else 0,
        float(top_p) if sampler == "top_p" else 1.0,
    )


def sample_next_token(logits, temperature, top_k, top_p, seed):
    """Chooses the next token of each row from (B, V) logits. Returns int32 (B,).

    Args:
        logits: (B, V) tensor.
        temperature: float scalar tensor. `<= 0` means greedy (argmax).
        top_k: int scalar tensor. Keep the k most likely tokens; `0` keeps all.
        top_p: float scalar tensor. Keep the smallest most-likely set with total probability
            `>= top_p` (after top-k); `1.0` keeps all.
        seed: int32 (2,) tensor for stateless sampling: the same seed gives the same tokens.
    """
    logits = tf.cast(logits, tf.float32)

    def greedy():
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def sample():
        scaled = logits / tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
        vocabulary_size = tf.shape(scaled)[-1]
        ordered = tf.sort(scaled, axis=-1, direction="DESCENDING")  # (B, V)
        k = tf.where(
            top_k > 0, tf.minimum(tf.cast(top_k, tf.int32), vocabulary_size), vocabulary_size
        )
        ranks = tf.range(vocabulary_size)[tf.newaxis, :]
        ordered = tf.where(ranks < k, ordered, -np.inf)  # top-k
        probabilities = tf.nn.softmax(ordered, axis=-1)
        before = tf.cumsum(probabilities, axis=-1, exclusive=True)
        # Keep a token while the mass before it is below top_p (always keeps the first).
        keep = tf.logical_or(before < tf.cast(top_p, tf.float32), ranks == 0)
        keep = tf.logical_and(keep, ranks < k)
        count = tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1, keepdims=True)  # (B, 1)
        threshold = tf.gather(ordered, count - 1, axis=-1, batch_dims=1)  # (B, 1)
        filtered = tf.where(scaled >= threshold, scaled, -np.inf)
        tokens = tf.random.stateless_categorical(filtered, 1, seed=seed, dtype=tf.int32)
        return tokens[:, 0]

    return tf.cond(tf.cast(temperature, tf.float32) <= 0.0, greedy, sample)


def pad_prompts(prompts, pad_id=0):
    """Normalises prompts to a right-padded `{"token_ids", "padding_mask"}` pair of arrays.

    Accepts a dict with `"token_ids"` (and optionally `"padding_mask"`), a 2-D array, or a list
    of lists of ids of different lengths.
    """
    if isinstance(prompts, dict):
        token_ids = np.asarray(prompts["token_ids"])
        padding_mask = prompts.get("padding_mask")
        padding_mask = (
            np.ones(token_ids.shape, bool)
            if padding_mask is None
            else np.asarray(padding_mask).astype(bool)
        )
    elif isinstance(prompts, np.ndarray) or tf.is_tensor(prompts):
        token_ids = np.asarray(prompts)
        padding_mask = np.ones(token_ids.shape, bool)
    else:
        rows = [list(row) for row in prompts]
        if not rows:
            raise ValueError("`prompts` is empty: give at least one prompt.")
        width = max(len(row) for row in rows)
        token_ids = np.full((len(rows), width), pad_id, "int32")
        padding_mask = np.zeros((len(rows), width), bool)
        for i, row in enumerate(rows):
            token_ids[i, : len(row)] = row
            padding_mask[i, : len(row)] = True
    if token_ids.ndim != 2:
        raise ValueError(f"Prompts must be (batch, length). Received shape {token_ids.shape}.")
    lengths = padding_mask.sum(axis=1)
    if lengths.min() == 0:
        raise ValueError(
            "Every prompt needs at least one token (e.g. a begin-of-text id). "
            f"Empty prompts at rows {np.flatnonzero(lengths == 0).tolist()}."
        )
    expected = np.arange(token_ids.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(expected, padding_mask):
        raise ValueError("Prompts must be right-padded: padding_mask must be 1s then 0s.")
    return token_ids.astype("int32"), padding_mask
