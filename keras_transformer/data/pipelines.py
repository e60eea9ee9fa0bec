"""`tf.data` pipelines per task: text in, batched and prefetched model inputs out.

Every pipeline takes a `tf.data.Dataset` of strings (or of `(text, label)` / `(source, target)`
pairs) and a tokenizer from `keras_transformer.text` (any layer that maps a (B,) batch of strings
to (B, (T)) ragged ids and has `token_to_id`), or the task's preprocessor from
`keras_transformer.preprocessing` in its place. A pipeline is the task's preprocessor mapped
over batches (`Dataset.map(preprocessor, num_parallel_calls=AUTOTUNE)`, in graph mode, in
order, so the same `seed` gives the same batches), plus shuffling, batching and prefetching:
the exported SavedModel calls the same preprocessor, so serving sees what training saw. The
outputs follow the models' input format:

- masked LM: `(x, mask_ids, mask_weights)`, x = `token_ids`, `padding_mask`, `segment_ids`,
  `mask_positions`;
- causal LM: `(x, targets, sample_weight)`, x = `token_ids`, `padding_mask`; targets are the
  inputs shifted by one;
- classification: `(x, label)`, x = `token_ids`, `padding_mask`, `segment_ids`;
- seq2seq: `(x, targets, sample_weight)`, x = `encoder_token_ids`, `encoder_padding_mask`,
  `decoder_token_ids`, `decoder_padding_mask` (teacher forcing).
"""

import tensorflow as tf

from keras_transformer.preprocessing import (
    CausalLMPreprocessor,
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
    Preprocessor,
    Seq2SeqPreprocessor,
)
from keras_transformer.preprocessing.preprocessor import has_token
from keras_transformer.text.vocabulary import EOS_TOKEN

AUTOTUNE = tf.data.AUTOTUNE


def masked_lm_dataset(
    texts,
    tokenizer,
    sequence_length,
    batch_size,
    mask_selection_rate=0.15,
    max_selections=None,
    mask_token_rate=0.8,
    random_token_rate=0.1,
    seed=0,
    shuffle_buffer_size=None,
    drop_remainder=False,
):
    """Masked-LM batches: `[CLS] text [SEP]`, 15% of tokens chosen, 80/10/10 corrupted.

    Masks are drawn per batch from a stateless seed stream (`tf.data.Dataset.random` with
    `rerandomize_each_iteration=True`): the same `seed` gives the same batches, and every epoch
    draws fresh masks. Special tokens and padding are never chosen.

    Args:
        texts: `tf.data.Dataset` of scalar strings.
        tokenizer: a WordPiece-style tokenizer whose vocabulary holds `[PAD]`, `[CLS]`, `[SEP]`
            and `[MASK]`; or a `MaskedLMPreprocessor` (then the masking arguments and
            `sequence_length` are its own, and its `seed` seeds the masks).
        sequence_length: int, or None with a preprocessor. T.
        batch_size: int. B.
        mask_selection_rate: float. Defaults to `0.15`.
        max_selections: int or None. P, prediction slots per sequence. Defaults to
            `ceil(mask_selection_rate * sequence_length)`.
        mask_token_rate: float. Defaults to `0.8`.
        random_token_rate: float. Defaults to `0.1`.
        seed: int. Seeds the masks (and the shuffle). Defaults to `0`.
        shuffle_buffer_size: int or None. Shuffle texts with this buffer first. Defaults to
            `None` (no shuffle).
        drop_remainder: bool. Drop a last, smaller batch. Defaults to `False`.

    Returns:
        `tf.data.Dataset` of `(x, mask_ids, mask_weights)`: x holds `token_ids` int32 (B, T),
        `padding_mask` bool (B, T), `segment_ids` int32 (B, T), `mask_positions` int32 (B, P);
        `mask_ids` int32 (B, P); `mask_weights` float32 (B, P).

    Example:
    >>> ds = masked_lm_dataset(texts, tokenizer, sequence_length=128, batch_size=32)
    >>> model.fit(ds)  # doctest: +SKIP
    """
    _check_dataset(texts, "texts", tf.string)
    preprocessor = _preprocessor(
        tokenizer,
        MaskedLMPreprocessor,
        sequence_length,
        lambda: MaskedLMPreprocessor(
            tokenizer,
            sequence_length,
            mask_selection_rate=mask_selection_rate,
            max_selections=max_selections,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
            seed=seed,
        ),
    )
    texts = _maybe_shuffle(texts, shuffle_buffer_size, seed)
    batches = texts.batch(batch_size, drop_remainder=drop_remainder)
    seeds = tf.data.Dataset.random(seed=preprocessor.seed, rerandomize_each_iteration=True)

    def to_inputs(text, random_value):
        return preprocessor(
            text, seed=tf.stack([tf.constant(preprocessor.seed, tf.int64), random_value])
        )

    dataset = tf.data.Dataset.zip((batches, seeds)).map(to_inputs, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def causal_lm_dataset(
    texts,
    tokenizer,
    sequence_length,
    batch_size,
    separator_token=EOS_TOKEN,
    seed=0,
    shuffle_buffer_size=None,
):
    """Causal-LM batches: the token stream cut into contiguous blocks, targets shifted by one.

    Texts are tokenized, joined into one stream (each followed by `separator_token` if the
    vocabulary has it), and cut into blocks of `sequence_length + 1` tokens; a block gives the
    inputs `block[:-1]` and the targets `block[1:]`. The last partial block and batch are
    dropped, so every batch is full and no padding is needed.

    Args:
        texts: `tf.data.Dataset` of scalar strings.
        tokenizer: a tokenizer from `keras_transformer.text`, or a `CausalLMPreprocessor` (then
            its `end_token` separates the texts and `separator_token` is not used).
        sequence_length: int, or None with a preprocessor. T.
        batch_size: int. B.
        separator_token: str or None. Appended after each text if in the vocabulary. Defaults
            to `"[EOS]"`.
        seed: int. Seeds the shuffle. Defaults to `0`.
        shuffle_buffer_size: int or None. Shuffle texts with this buffer first. Defaults to
            `None`.

    Returns:
        `tf.data.Dataset` of `(x, targets, sample_weight)`: x holds `token_ids` int32 (B, T) and
        `padding_mask` bool (B, T) (all true); `targets` int32 (B, T); `sample_weight` float32
        (B, T).

    Example:
    >>> ds = causal_lm_dataset(texts, CharacterTokenizer.from_text(corpus), 100, 64)
    >>> model.fit(ds)  # doctest: +SKIP
    """
    _check_dataset(texts, "texts", tf.string)
    if not isinstance(tokenizer, Preprocessor):
        _check_positive(sequence_length=sequence_length)
    _check_positive(batch_size=batch_size)
    preprocessor = _preprocessor(
        tokenizer,
        CausalLMPreprocessor,
        sequence_length,
        lambda: CausalLMPreprocessor(
            tokenizer,
            sequence_length,
            end_token=(
                separator_token
                if separator_token is not None and has_token(tokenizer, separator_token)
                else None
            ),
        ),
    )
    texts = _maybe_shuffle(texts, shuffle_buffer_size, seed)
    stream = texts.batch(256).map(preprocessor.stream, num_parallel_calls=AUTOTUNE)
    blocks = stream.rebatch(preprocessor.sequence_length + 1, drop_remainder=True)
    dataset = blocks.batch(batch_size, drop_remainder=True).map(
        preprocessor.pack_blocks, num_parallel_calls=AUTOTUNE
    )
    return dataset.prefetch(AUTOTUNE)


def classification_dataset(
    examples,
    tokenizer,
    sequence_length,
    batch_size,
    seed=0,
    shuffle_buffer_size=None,
    truncate="round_robin",
    drop_remainder=False,
):
    """Classification batches: `[CLS] text [SEP]` (or `[CLS] a [SEP] b [SEP]`) and labels.

    Args:
        examples: `tf.data.Dataset` of `(text, label)` or `((text_a, text_b), label)`.
        tokenizer: a WordPiece-style tokenizer whose vocabulary holds `[PAD]`, `[CLS]`, `[SEP]`;
            or a `ClassifierPreprocessor` (then `truncate` and `sequence_length` are its own).
        sequence_length: int, or None with a preprocessor. T.
        batch_size: int. B.
        seed: int. Seeds the shuffle. Defaults to `0`.
        shuffle_buffer_size: int or None. Defaults to `None` (no shuffle).
        truncate: str. For pairs: `"round_robin"` or `"waterfall"`. Defaults to `"round_robin"`.
        drop_remainder: bool. Defaults to `False`.

    Returns:
        `tf.data.Dataset` of `(x, label)`: x holds `token_ids`, `segment_ids` int32 (B, T) and
        `padding_mask` bool (B, T); `label` int32 (B,).

    Example:
    >>> ds = classification_dataset(examples, tokenizer, sequence_length=64, batch_size=32)
    """
    if not isinstance(examples, tf.data.Dataset) or not isinstance(examples.element_spec, tuple):
        raise ValueError(
            "`examples` must be a tf.data.Dataset of (text, label) or ((text_a, text_b), label)."
            f" Received: {getattr(examples, 'element_spec', type(examples).__name__)}"
        )
    is_pair = isinstance(examples.element_spec[0], tuple)
    preprocessor = _preprocessor(
        tokenizer,
        ClassifierPreprocessor,
        sequence_length,
        lambda: ClassifierPreprocessor(
            tokenizer, sequence_length, truncate=truncate, num_segments=2 if is_pair else 1
        ),
    )

    def to_inputs(texts, label):
        return preprocessor(texts, tf.cast(label, tf.int32))

    examples = _maybe_shuffle(examples, shuffle_buffer_size, seed)
    batches = examples.batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(to_inputs, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def seq2seq_dataset(
    pairs,
    source_tokenizer,
    encoder_sequence_length,
    decoder_sequence_length,
    batch_size,
    target_tokenizer=None,
    seed=0,
    shuffle_buffer_size=None,
    drop_remainder=False,
):
    """Encoder-decoder batches with teacher forcing.

    The source becomes `source [EOS]` (padded); the target becomes `[BOS] target [EOS]`, whose
    first `decoder_sequence_length` tokens feed the decoder and whose last ones are the labels
    (the decoder inputs shifted by one).

    Args:
        pairs: `tf.data.Dataset` of `(source, target)` scalar strings.
        source_tokenizer: tokenizer for sources; needs `[PAD]` and `[EOS]`. Or a
            `Seq2SeqPreprocessor` (then the lengths and `target_tokenizer` are its own).
        encoder_sequence_length: int. S.
        decoder_sequence_length: int. T.
        batch_size: int. B.
        target_tokenizer: tokenizer for targets; needs `[PAD]`, `[BOS]`, `[EOS]`. Defaults to
            `source_tokenizer`.
        seed: int. Seeds the shuffle. Defaults to `0`.
        shuffle_buffer_size: int or None. Defaults to `None`.
        drop_remainder: bool. Defaults to `False`.

    Returns:
        `tf.data.Dataset` of `(x, targets, sample_weight)`: x holds `encoder_token_ids` int32
        (B, S), `encoder_padding_mask` bool (B, S), `decoder_token_ids` int32 (B, T),
        `decoder_padding_mask` bool (B, T); `targets` int32 (B, T); `sample_weight` float32
        (B, T), 1 on real target tokens.

    Example:
    >>> ds = seq2seq_dataset(pairs, tokenizer, 32, 16, batch_size=64)
    """
    if not isinstance(pairs, tf.data.Dataset) or not isinstance(pairs.element_spec, tuple):
        raise ValueError(
            "`pairs` must be a tf.data.Dataset of (source, target) strings. "
            f"Received: {getattr(pairs, 'element_spec', type(pairs).__name__)}"
        )
    preprocessor = _preprocessor(
        source_tokenizer,
        Seq2SeqPreprocessor,
        None,
        lambda: Seq2SeqPreprocessor(
            source_tokenizer,
            encoder_sequence_length,
            decoder_sequence_length,
            target_tokenizer=target_tokenizer,
        ),
    )
    pairs = _maybe_shuffle(pairs, shuffle_buffer_size, seed)
    batches = pairs.batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(preprocessor, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def _preprocessor(tokenizer, preprocessor_class, sequence_length, build):
    """The task's preprocessor: `tokenizer` itself if it is one, else `build()`."""
    if isinstance(tokenizer, Preprocessor):
        if not isinstance(tokenizer, preprocessor_class):
            raise ValueError(
                f"This pipeline takes a tokenizer or a {preprocessor_class.__name__}. Received: "
                f"{type(tokenizer).__name__}"
            )
        if sequence_length is not None and sequence_length != tokenizer.sequence_length:
            raise ValueError(
                f"`sequence_length`={sequence_length} differs from the preprocessor's "
                f"sequence_length={tokenizer.sequence_length}. Pass sequence_length=None or the "
                "preprocessor's."
            )
        return tokenizer
    return build()


def _check_dataset(dataset, name, dtype):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"`{name}` must be a tf.data.Dataset. Received: {type(dataset).__name__}. "
            "Wrap Python lists with tf.data.Dataset.from_tensor_slices."
        )
    spec = dataset.element_spec
    if not isinstance(spec, tf.TensorSpec) or spec.dtype != dtype or spec.shape.rank != 0:
        raise ValueError(
            f"`{name}` must hold scalar {dtype.name} elements (one text each). "
            f"Received element_spec={spec}"
        )


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


def _maybe_shuffle(dataset, buffer_size, seed):
    if not buffer_size:
        return dataset
    return dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
