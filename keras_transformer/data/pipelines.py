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
    trim=False,
    length_buckets=0,
):
    """Encoder-decoder batches with teacher forcing.

    The source becomes `source [EOS]` (padded); the target becomes `[BOS] target [EOS]`, whose
    first `decoder_sequence_length` tokens feed the decoder and whose last ones are the labels
    (the decoder inputs shifted by one).

    With `trim`, each batch is cut to its own longest source and target (`trim_seq2seq_batch`):
    the positions dropped are padding in every row, so a model's outputs at the real positions,
    and a loss averaged over the sample weights, are those of the full-length batch. With
    `length_buckets` (of use with `trim`), pairs are grouped by the length of
    their source text into that many buckets of equal width up to the longest source the
    encoder holds, and each batch is drawn from one bucket: less padding, batches of similar
    lengths. The grouping is deterministic given the (seeded) order of `pairs`, so skipping
    batches resumes the same stream.

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
        trim: bool. Cut each batch to its longest source and target. Defaults to `False`
            (every batch is (B, S) and (B, T)).
        length_buckets: int. Batch pairs of similar source length together, from this many
            buckets (0: off). Defaults to `0`.

    Returns:
        `tf.data.Dataset` of `(x, targets, sample_weight)`: x holds `encoder_token_ids` int32
        (B, S), `encoder_padding_mask` bool (B, S), `decoder_token_ids` int32 (B, T),
        `decoder_padding_mask` bool (B, T); `targets` int32 (B, T); `sample_weight` float32
        (B, T), 1 on real target tokens. Trimmed, S and T are each batch's own (unknown in
        the element spec).

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
    if not isinstance(length_buckets, int) or length_buckets < 0:
        raise ValueError(
            f"`length_buckets` must be an int >= 0 (0: no bucketing). Received: {length_buckets!r}"
        )
    pairs = _maybe_shuffle(pairs, shuffle_buffer_size, seed)
    if length_buckets > 1:
        batches = _length_buckets(
            pairs,
            length_buckets,
            preprocessor.encoder_sequence_length,
            batch_size,
            drop_remainder,
        )
    else:
        batches = pairs.batch(batch_size, drop_remainder=drop_remainder)
    batches = batches.map(preprocessor, num_parallel_calls=AUTOTUNE)
    if trim:
        batches = batches.map(trim_seq2seq_batch, num_parallel_calls=AUTOTUNE)
    return batches.prefetch(AUTOTUNE)


def trim_seq2seq_batch(x, targets, sample_weight):
    """A `seq2seq_dataset` batch cut to its longest source and its longest target.

    Sources and targets are padded on the right. The source columns dropped (past the longest
    `encoder_padding_mask` row) are padding in every row; the target columns dropped (past the
    longest row of nonzero sample weights) weigh 0 in every row, and the decoder inputs there
    (padding, or the `[EOS]` that ends the longest target) feed, causally, only outputs that
    weigh 0. The labels and sample weights lose the same columns as the decoder inputs.

    Args:
        x: dict of `encoder_token_ids`, `encoder_padding_mask` (B, S), `decoder_token_ids`,
            `decoder_padding_mask` (B, T).
        targets: (B, T) labels, or (B, T, V) one-hot labels.
        sample_weight: (B, T).

    Returns:
        `(x, targets, sample_weight)` with S and T the batch's own longest (at least 1).
    """

    def longest(mask):  # (B, L) -> the number of leading columns holding a real token
        return tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)), 1)

    source_length = longest(x["encoder_padding_mask"])
    target_length = longest(sample_weight > 0)
    x = {
        name: value[:, : source_length if name.startswith("encoder_") else target_length]
        for name, value in x.items()
    }
    return x, targets[:, :target_length], sample_weight[:, :target_length]


def _length_buckets(pairs, buckets, encoder_sequence_length, batch_size, drop_remainder):
    """Batches of `(source, target)` strings, each from one bucket of source text lengths."""
    width = max(-(-encoder_sequence_length // buckets), 1)
    boundaries = [width * (i + 1) for i in range(buckets - 1)]  # the last bucket takes the rest
    return pairs.bucket_by_sequence_length(
        lambda source, target: tf.strings.length(source, unit="UTF8_CHAR"),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * buckets,
        drop_remainder=drop_remainder,
    )


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
