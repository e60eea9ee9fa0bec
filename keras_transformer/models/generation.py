"""Decoding for the generative tasks: one in-graph loop for greedy, sampling and beam search.

`decode` is a `tf.while_loop` of core TensorFlow ops (exportable, no Python per step) over a
task's one-token step `next_logits`, built on its backbone's `call_with_cache`. The same loop
runs `GPTCausalLM.generate`, `Seq2SeqTransformer.generate` and the exported `generate`
signatures. It fills a right-padded buffer of token ids left to right: positions where the
padding mask is true are the prompt (kept), the others are generated.

Under XLA (`tf.function(..., jit_compile=True)`) the loop gives the same tokens as without it
(tests/gpu/test_xla_generate.py); see `previous_token` for the bug that once made them differ.
`keras_transformer.serving.export(..., jit_compile=True)` compiles it so inside the SavedModel
(`serving.generation.compiled_decoders`; tests/serving/test_export_xla_generate.py).

- `num_beams=1`: greedy (`temperature=0`) or sampling (`temperature > 0`, with `top_k`,
  `top_p` and a stateless `seed`: the same seed gives the same tokens). A row stops after
  the end token.
- `num_beams > 1`: beam search (deterministic; beam sampling is not implemented). Each row
  keeps `num_beams` live hypotheses; a hypothesis that ends with the end token is finished
  and scored `sum(log p) / length ** length_penalty`, `length` the generated tokens with the
  end token (as Hugging Face's beam search). The row's answer is its best finished
  hypothesis, or its best live one at its last position. A row stops once no live beam can
  beat its best finished hypothesis: a live beam's sum of log-probabilities only falls, so
  its best possible score is its current sum over its longest reachable length when
  `length_penalty > 0`, over its current length otherwise (Hugging Face's
  `early_stopping="never"` bound, which never stops too soon).
"""

import math
import numbers

import numpy as np
import tensorflow as tf
from keras import ops

SEED_RANGE = 2**31 - 1


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_generate_arguments(
    max_new_tokens,
    temperature,
    top_k,
    top_p,
    seed,
    end_token,
    num_beams,
    length_penalty,
    vocabulary_size,
):
    """Raises a one-line `ValueError` naming the first bad argument of `generate`.

    The rules: `max_new_tokens` a positive int; `temperature` a number >= 0 (0: greedy);
    `top_k` an int >= 0 (0: all tokens); `top_p` a number in (0, 1]; `seed` None or an int in
    [0, 2**31 - 1); `end_token` None or an id in [0, vocabulary_size); `num_beams` an int >=
    1; `length_penalty` a finite number; beam search (`num_beams > 1`) needs `temperature=0`.
    """
    if not _is_int(max_new_tokens) or max_new_tokens < 1:
        raise ValueError(
            "`max_new_tokens` must be a positive integer. "
            f"Received: max_new_tokens={max_new_tokens!r}"
        )
    if not _is_number(temperature) or not temperature >= 0:
        raise ValueError(
            "`temperature` must be a number >= 0 (0: greedy, > 0: sampling). "
            f"Received: temperature={temperature!r}"
        )
    if not _is_int(top_k) or top_k < 0:
        raise ValueError(
            f"`top_k` must be an integer >= 0 (0: all tokens). Received: top_k={top_k!r}"
        )
    if not _is_number(top_p) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be a number in (0, 1]. Received: top_p={top_p!r}")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < SEED_RANGE):
        raise ValueError(
            f"`seed` must be None or an integer in [0, {SEED_RANGE}). Received: seed={seed!r}"
        )
    if end_token is not None:
        check_token_id(end_token, "end_token", vocabulary_size)
    if not _is_int(num_beams) or num_beams < 1:
        raise ValueError(
            "`num_beams` must be an integer >= 1 (1: greedy or sampling, > 1: beam search). "
            f"Received: num_beams={num_beams!r}"
        )
    if not _is_number(length_penalty) or not math.isfinite(length_penalty):
        raise ValueError(
            f"`length_penalty` must be a finite number. Received: length_penalty={length_penalty!r}"
        )
    if num_beams > 1 and temperature > 0:
        raise ValueError(
            f"Beam search (num_beams={num_beams}) is deterministic: it needs temperature=0 "
            f"(beam sampling is not implemented). Received: temperature={temperature!r}"
        )


def check_token_id(value, name, vocabulary_size):
    """Raises a one-line `ValueError` unless `value` is an int id in [0, vocabulary_size)."""
    if not _is_int(value) or not 0 <= value < vocabulary_size:
        raise ValueError(
            f"`{name}` must be a token id: an integer in [0, {vocabulary_size}) (the "
            f"vocabulary size). Received: {name}={value!r}"
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


def decode(
    next_logits,
    token_ids,
    padding_mask,
    state,
    *,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    seed=(0, 0),
    end_token=-1,
    num_beams=1,
    length_penalty=1.0,
    max_new_tokens=None,
):
    """Fills the non-prompt positions of a right-padded (B, L) buffer, in graph ops.

    Position `index` is chosen from `next_logits(token_ids[:, index - 1 : index], state,
    index - 1)` (taken by `previous_token`, whose static width 1 XLA needs), from the first
    position after the shortest prompt on; rows still in their prompt keep it. A row stops
    after `end_token`, after `max_new_tokens` new tokens, or at the buffer's end; its later
    positions stay 0 with a false mask.

    Args:
        next_logits: callable `(token_ids (B', 1), state, index) -> (logits (B', V), state)`:
            one step of the model, writing its key/value cache at `index`.
        token_ids: int (B, L). The prompts, right-padded, with room after them.
        padding_mask: bool or int (B, L). True at the prompt tokens (at least one per row).
        state: a nest of tensors with batch axis 0 (the cache, already filled for the
            prompt positions the first step does not feed; for an encoder-decoder also the
            encoder's output and mask). Beam search repeats each row `num_beams` times and
            reorders the rows as beams are chosen.
        temperature, top_k, top_p: sampling settings (see `sample_next_token`); with
            `num_beams > 1`, `temperature` must be 0 and `top_k`, `top_p` are unused.
        seed: int32 (2,). Stateless sampling seed; step `index` uses `(seed[0], seed[1] +
            index)`.
        end_token: int scalar. A row stops after it; `-1`: never.
        num_beams: int scalar. 1: greedy or sampling; > 1: beam search.
        length_penalty: float scalar. Scores are `sum(log p) / length ** length_penalty`.
        max_new_tokens: int scalar or None. New tokens per row at most; None: up to the
            buffer's end (then a shorter prompt gets more).

    Returns:
        A dict: `token_ids` int32 (B, L) (prompts and generated tokens), `padding_mask` bool
        (B, L) (true at both), `scores` float32 (B,): the generated tokens' summed
        log-probabilities (the model's softmax, before temperature or filtering) divided by
        their number ** `length_penalty`; beam search returns the row's best such score.
    """
    num_beams = tf.cast(num_beams, tf.int32)
    buffer = (next_logits, token_ids, padding_mask, state)
    common = {
        "end_token": end_token,
        "length_penalty": length_penalty,
        "max_new_tokens": max_new_tokens,
    }

    def sample():
        settings = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
        return sample_loop(*buffer, **settings, **common)

    def beams():
        return beam_search(*buffer, num_beams, **common)

    static_beams = tf.get_static_value(num_beams)
    if static_beams is not None:
        return beams() if static_beams > 1 else sample()
    return tf.cond(num_beams > 1, beams, sample)


def previous_token(token_ids, index):
    """The (B, 1) column `index - 1` of `token_ids`, its width static.

    Not `token_ids[:, index - 1 : index]`: inside the `tf.while_loop` that slice's width is
    unknown to the graph (None), and under XLA (`jit_compile=True`) the attention layers'
    cache write (`ops.slice_update`) then wrote the one token's keys and values over every
    cache position (seen on TF 2.21, CPU: after one step all L positions held the same
    values). Compiled greedy decoding so drifted from the second step on, its logits off
    by about 0.1 on a tiny GPT, and picked other tokens. `tf.slice` with size 1 keeps the
    width static; compiled and uncompiled decoding then give the same tokens.
    """
    return tf.slice(token_ids, tf.stack([0, index - 1]), [-1, 1])


def _buffer(token_ids, padding_mask, max_new_tokens):
    """`(token_ids int32, prompt_mask bool, lengths (B,), limits (B,))`: each row fills
    positions `lengths <= i < limits`."""
    token_ids = tf.cast(token_ids, tf.int32)
    prompt_mask = tf.cast(padding_mask, tf.bool)
    lengths = tf.reduce_sum(tf.cast(prompt_mask, tf.int32), axis=1)  # (B,)
    width = tf.shape(token_ids)[1]
    if max_new_tokens is None:
        limits = tf.fill(tf.shape(lengths), width)
    else:
        limits = tf.minimum(lengths + tf.cast(max_new_tokens, tf.int32), width)
    return token_ids, prompt_mask, lengths, limits


def _normalized(total, count, length_penalty):
    """`total / count ** length_penalty`, with `count` ints (at least 1)."""
    count = tf.cast(tf.maximum(count, 1), tf.float32)
    return total / tf.pow(count, length_penalty)


def sample_loop(
    next_logits,
    token_ids,
    padding_mask,
    state,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    seed=(0, 0),
    end_token=-1,
    length_penalty=1.0,
    max_new_tokens=None,
):
    """Greedy or sampled decoding, one token per row and step: `decode` with one beam."""
    token_ids, prompt_mask, lengths, limits = _buffer(token_ids, padding_mask, max_new_tokens)
    batch_size, width = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    seed = tf.cast(seed, tf.int32)
    end_token = tf.cast(end_token, tf.int32)
    length_penalty = tf.cast(length_penalty, tf.float32)

    def keep_going(index, token_ids, mask, state, done, total):
        return tf.logical_and(
            index < width, tf.logical_not(tf.reduce_all(done | (index >= limits)))
        )

    def step(index, token_ids, mask, state, done, total):
        previous = previous_token(token_ids, index)  # (B, 1)
        logits, state = next_logits(previous, state, index - 1)  # (B, V)
        step_seed = tf.stack([seed[0], seed[1] + index])
        sampled = sample_next_token(logits, temperature, top_k, top_p, step_seed)
        is_prompt = prompt_mask[:, index]
        generated = ~is_prompt & ~done & (index < limits)
        current = token_ids[:, index]
        new = tf.where(is_prompt, current, tf.where(generated, sampled, 0))
        done = tf.logical_or(done, tf.logical_and(generated, tf.equal(new, end_token)))
        token_ids = ops.slice_update(token_ids, [0, index], new[:, tf.newaxis])
        new_mask = tf.logical_or(is_prompt, generated)
        mask = ops.slice_update(mask, [0, index], new_mask[:, tf.newaxis])
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))  # (B, V)
        chosen = tf.gather(log_probs, new[:, tf.newaxis], batch_dims=1)[:, 0]
        total = total + tf.where(generated, chosen, 0.0)
        return index + 1, token_ids, mask, state, done, total

    start = tf.reduce_min(lengths)
    done = tf.zeros([batch_size], tf.bool)
    total = tf.zeros([batch_size], tf.float32)
    _, token_ids, mask, _, _, total = tf.while_loop(
        keep_going, step, (start, token_ids, prompt_mask, state, done, total)
    )
    count = tf.reduce_sum(tf.cast(mask & ~prompt_mask, tf.int32), axis=1)
    scores = _normalized(total, count, length_penalty)
    return {"token_ids": token_ids, "padding_mask": mask, "scores": scores}


def _keep_shape(new, old):
    """`new` with the static shape of `old` (a loop variable keeps its shape each step)."""
    new.set_shape(old.shape)
    return new


def beam_search(
    next_logits,
    token_ids,
    padding_mask,
    state,
    num_beams,
    end_token=-1,
    length_penalty=1.0,
    max_new_tokens=None,
):
    """Beam search with finished hypotheses kept and length-penalised (see `decode`).

    Row b's beams are rows `b * K .. b * K + K - 1` of the (B * K, L) buffers, K =
    `num_beams`; at the start they are copies, beam 0 scored 0 and the others -inf, so the
    first expansion draws from one beam. Each step takes the 2K best (beam, token)
    expansions of the row: those among the K best that end are offered as finished
    hypotheses (the best one kept), and the K best that do not end become the live beams.
    Arguments and outputs as in `decode`; with one beam and no end token it is greedy.
    """
    token_ids, prompt_mask, lengths, limits = _buffer(token_ids, padding_mask, max_new_tokens)
    batch_size, width = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    k = tf.cast(num_beams, tf.int32)
    end_token = tf.cast(end_token, tf.int32)
    length_penalty = tf.cast(length_penalty, tf.float32)
    lengths_f = tf.cast(lengths, tf.float32)
    longest = tf.maximum(tf.cast(limits - lengths, tf.float32), 1.0)  # (B,) most new tokens
    positions = tf.range(width)[tf.newaxis, :]  # (1, L)
    beam_range = tf.range(k)[tf.newaxis, :]  # (1, K)
    first_row = tf.range(batch_size) * k  # (B,) each row's beam 0

    def repeat(x):
        return tf.repeat(x, k, axis=0)

    def keep_going(index, ids, mask, state, beam_scores, best_ids, best_mask, best, converged):
        return tf.logical_and(
            index < width, tf.reduce_any(tf.logical_not(converged) & (index < limits))
        )

    def step(*inputs):
        index, ids, mask, state, beam_scores, best_ids, best_mask, best, converged = inputs
        logits, state = next_logits(previous_token(ids, index), state, index - 1)  # (BK, V)
        vocabulary_size = tf.shape(logits)[-1]
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        log_probs = tf.reshape(log_probs, [batch_size, k, vocabulary_size])
        candidates = tf.reshape(beam_scores[:, :, tf.newaxis] + log_probs, [batch_size, -1])
        count = tf.minimum(2 * k, k * vocabulary_size)
        top_scores, top_indices = tf.math.top_k(candidates, count)  # (B, C), best first
        top_beams = top_indices // vocabulary_size
        top_tokens = top_indices % vocabulary_size
        active = ~converged & (index >= lengths) & (index < limits)  # (B,)
        # (B,) tokens generated with this one (rows still in their prompt: clamped to 1).
        length = tf.maximum(tf.cast(index + 1, tf.float32) - lengths_f, 1.0)
        at_index = tf.equal(positions, index)  # (1, L)

        # Finished hypotheses: expansions among the K best that end; keep the best one.
        ends = tf.equal(top_tokens, end_token)
        finishing = ends & (tf.range(count)[tf.newaxis, :] < k) & active[:, tf.newaxis]
        normalized = top_scores / tf.pow(length, length_penalty)[:, tf.newaxis]
        finish_scores = tf.where(finishing, normalized, -np.inf)
        choice = tf.argmax(finish_scores, axis=1, output_type=tf.int32)  # (B,)
        choice_score = tf.reduce_max(finish_scores, axis=1)
        improves = choice_score > best
        source = first_row + tf.gather(top_beams, choice[:, tf.newaxis], batch_dims=1)[:, 0]
        finished_ids = tf.where(at_index, end_token, tf.gather(ids, source))
        finished_mask = tf.gather(mask, source) | at_index
        best_ids = tf.where(improves[:, tf.newaxis], finished_ids, best_ids)
        best_mask = tf.where(improves[:, tf.newaxis], finished_mask, best_mask)
        best = tf.where(improves, choice_score, best)

        # Live beams: the K best expansions that do not end. Inactive rows keep theirs.
        live_scores, order = tf.math.top_k(tf.where(ends, -np.inf, top_scores), k)  # (B, K)
        live_beams = tf.gather(top_beams, order, batch_dims=1)
        live_tokens = tf.gather(top_tokens, order, batch_dims=1)
        beams = tf.where(active[:, tf.newaxis], live_beams, beam_range)
        beam_scores = tf.where(active[:, tf.newaxis], live_scores, beam_scores)
        rows = tf.reshape(first_row[:, tf.newaxis] + beams, [-1])  # (BK,)
        ids, mask = tf.gather(ids, rows), tf.gather(mask, rows)
        state = tf.nest.map_structure(lambda x: tf.gather(x, rows), state)
        write = at_index & repeat(active)[:, tf.newaxis]  # (BK, L)
        ids = tf.where(write, tf.reshape(live_tokens, [-1, 1]), ids)
        mask = mask | write

        # Stop a row when no live beam can beat its best finished hypothesis.
        reach = tf.where(length_penalty > 0, longest, length)
        bound = beam_scores[:, 0] / tf.pow(reach, length_penalty)
        converged = converged | (active & (best >= bound))
        outputs = (index + 1, ids, mask, state, beam_scores, best_ids, best_mask, best, converged)
        return tf.nest.map_structure(_keep_shape, outputs, inputs)

    initial_scores = tf.where(beam_range == 0, 0.0, -np.inf)  # (1, K)
    loop_vars = (
        tf.reduce_min(lengths),
        repeat(token_ids),
        repeat(prompt_mask),
        tf.nest.map_structure(repeat, state),
        tf.tile(initial_scores, [batch_size, 1]),  # (B, K) live beams' sums of log p
        token_ids,  # (B, L) best finished hypothesis
        prompt_mask,
        tf.fill([batch_size], tf.constant(-np.inf, tf.float32)),  # its score
        tf.zeros([batch_size], tf.bool),  # converged
    )
    outputs = tf.while_loop(keep_going, step, loop_vars)
    _, ids, mask, _, beam_scores, best_ids, best_mask, best, converged = outputs
    # A row that ran to its last position: its best live beam (beam 0) competes too.
    live = _normalized(beam_scores[:, 0], limits - lengths, length_penalty)
    take_live = ~converged & (live > best)
    return {
        "token_ids": tf.where(take_live[:, tf.newaxis], tf.gather(ids, first_row), best_ids),
        "padding_mask": tf.where(take_live[:, tf.newaxis], tf.gather(mask, first_row), best_mask),
        "scores": tf.where(take_live, live, best),
    }


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
