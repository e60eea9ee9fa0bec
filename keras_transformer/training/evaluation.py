"""Bits per character: a causal LM's loss in a unit that does not depend on its tokens.

A loss per token cannot compare a character-level model with a BPE model: a BPE token spells
several characters. Bits per character can: the total negative log-likelihood of a text, in
bits, divided by the number of characters the predicted tokens spell.

    bpc = bits_per_character(model, preprocessor, validation_texts)
    bpc["bits_per_character"], bpc["characters_per_token"]
"""

import math

import numpy as np
import tensorflow as tf

_CONTINUATION = np.zeros(256, bool)
_CONTINUATION[0x80:0xC0] = True  # UTF-8 bytes 10xxxxxx continue a character.


def characters_per_id(tokenizer, one_character_ids=()):
    """The number of characters each id of `tokenizer` spells: int64 (vocabulary_size,).

    A token's characters are the UTF-8 characters that start in its bytes (bytes that are not
    continuation bytes `10xxxxxx`): summed over a run of tokens, that is exactly the number
    of characters of their text, even where a byte-level BPE token splits a character. Ids in
    `one_character_ids` (the end token that stands for the break between two texts, the
    out-of-vocabulary token) count as one character each.

    Args:
        tokenizer: a tokenizer layer of `keras_transformer.text` (`detokenize`,
            `vocabulary_size`).
        one_character_ids: iterable of int.
    """
    size = int(tokenizer.vocabulary_size())
    texts = tokenizer.detokenize(tf.ragged.constant([[i] for i in range(size)], tf.int32))
    counts = np.array(
        [int(np.sum(~_CONTINUATION[np.frombuffer(t, np.uint8)])) for t in texts.numpy()],
        np.int64,
    )
    for i in one_character_ids:
        if i is not None:
            counts[int(i)] = 1
    return counts


def bits_per_character(
    model, preprocessor, texts, batch_size=32, max_blocks=None, drop_remainder=False
):
    """Validation bits per character of a causal LM over texts, cut as training cuts them.

    The texts become one stream with `preprocessor.stream` (each text followed by the end
    token), cut into blocks of `sequence_length + 1` ids (the last partial block is left out),
    as `causal_lm_dataset` does without shuffling. Every target id of every block is scored:
    bits = sum of -log2 p(target); characters = sum of `characters_per_id` over the targets
    (the end token counting one, like the line break it stands for).

    Args:
        model: a `GPTCausalLM` (or any model mapping `{"token_ids", "padding_mask"}` (B, T) to
            logits (B, T, V)).
        preprocessor: the `CausalLMPreprocessor` the model trained with.
        texts: list of str.
        batch_size: int. Blocks per forward pass. Defaults to `32`.
        max_blocks: int or None. Score only the first blocks. Defaults to `None` (all).
        drop_remainder: bool. Score whole batches of `batch_size` blocks only, as a validation
            dataset batched with `drop_remainder=True` does. Defaults to `False`.

    Returns:
        A dict: `bits_per_character`, `loss_per_token` (nats), `characters_per_token`,
        `tokens` and `characters` (the counts scored), `blocks`.

    Raises:
        ValueError: the texts make no whole block.
    """
    stream = np.concatenate(
        [
            preprocessor.stream(tf.constant(texts[i : i + 256])).numpy()
            for i in range(0, len(texts), 256)
        ]
        or [np.zeros([0], np.int32)]
    )
    block = preprocessor.sequence_length + 1
    count = len(stream) // block
    if max_blocks is not None:
        count = min(count, int(max_blocks))
    if drop_remainder:
        count -= count % batch_size
    if count == 0:
        raise ValueError(
            f"The texts make {len(stream)} tokens, fewer than one block of {block}"
            + (f" (or one batch of {batch_size} blocks)" if drop_remainder else "")
            + ": give more text or a model with a shorter sequence_length."
        )
    blocks = stream[: count * block].reshape(count, block)
    tokenizer = preprocessor.tokenizer
    oov = getattr(tokenizer, "oov_token", None)
    special = [preprocessor.end_token_id, preprocessor.start_token_id]
    if oov is not None:
        special.append(int(tokenizer.token_to_id(oov)))
    characters = characters_per_id(tokenizer, special)

    @tf.function(reduce_retracing=True)
    def negative_log_likelihood(inputs, targets):
        logits = model(
            {"token_ids": inputs, "padding_mask": tf.ones_like(inputs, tf.bool)}, training=False
        )
        return tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=targets, logits=tf.cast(logits, tf.float32)
            )
        )

    nats = 0.0
    for i in range(0, count, batch_size):
        chunk = tf.constant(blocks[i : i + batch_size], tf.int32)
        nats += float(negative_log_likelihood(chunk[:, :-1], chunk[:, 1:]))
    tokens = count * (block - 1)
    spelled = int(characters[blocks[:, 1:]].sum())
    return {
        "bits_per_character": nats / math.log(2) / spelled,
        "loss_per_token": nats / tokens,
        "characters_per_token": spelled / tokens,
        "tokens": tokens,
        "characters": spelled,
        "blocks": count,
    }
