"""`CausalLMPreprocessor`: texts -> token stream blocks for training; prompts -> generation."""

import keras
import tensorflow as tf

from keras_transformer.preprocessing.preprocessor import (
    Preprocessor,
    auto_token_id,
    check_sequence_length,
    check_tokenizer,
    to_text_tensor,
)
from keras_transformer.preprocessing.ragged_ops import keep_last, right_pad
from keras_transformer.text.vocabulary import BOS_TOKEN, EOS_TOKEN, GPT2_END_TOKEN


@keras.saving.register_keras_serializable(package="keras_transformer")
class CausalLMPreprocessor(Preprocessor):
    """Causal-LM preprocessing: stream packing for training, prompt packing for generation.

    Training: texts are tokenized and joined into one stream, each followed by the end token
    (if any); the stream is cut into blocks of `sequence_length + 1` ids, and a block gives
    the inputs `block[:-1]` and the targets `block[1:]` (no padding: every position counts).
    `causal_lm_dataset` runs `stream` over batches of texts, cuts blocks across batches
    (`Dataset.rebatch`) and maps `pack_blocks`; calling the layer on one batch of texts does
    the same within that batch (the last partial block is dropped).

    Generation: `generate_preprocess` turns prompts into right-padded ids that start with the
    start token (a text in a training stream starts after the end token, so `"auto"` is
    `[EOS]` or GPT-2's `<|endoftext|>` if the vocabulary has it, else `[BOS]`, else none);
    `generate_postprocess` keeps the new tokens up to the end token and detokenizes them. The
    exported `generate` signature calls both.

    Args:
        tokenizer: a tokenizer layer of `keras_transformer.text` (ragged outputs).
        sequence_length: int. T, the training block length (inputs and targets); also the
            default `max_sequence_length` of `generate_preprocess`.
        end_token: str or None. Put after each text of the training stream, and where a
            generated row stops. `"auto"`: `[EOS]` if the vocabulary has it, else
            `<|endoftext|>` (GPT-2's), else none. Defaults to `"auto"`.
        start_token: str or None. Put before each prompt. `"auto"`: `[EOS]`, else
            `<|endoftext|>`, else `[BOS]`, else none (the first of them in the vocabulary).
            Defaults to `"auto"`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        x: string (B,) or a scalar string: texts.

    Returns:
        `(x, targets, sample_weight)`: x holds `token_ids` int32 (N, T) and `padding_mask` bool
        (N, T) (all true), N the whole blocks of the batch's stream; `targets` int32 (N, T);
        `sample_weight` float32 (N, T).

    Example:
    >>> preprocessor = CausalLMPreprocessor(CharacterTokenizer.from_text(corpus), 100)
    >>> x, targets, sample_weight = preprocessor(["To be, or not to be", "ROMEO: But soft!"])
    >>> token_ids, padding_mask, lengths, empty = preprocessor.generate_preprocess(
    ...     tf.constant(["ROMEO:"]), max_new_tokens=8, max_sequence_length=256)
    """

    def __init__(self, tokenizer, sequence_length, end_token="auto", start_token="auto", **kwargs):
        super().__init__(**kwargs)
        task = type(self).__name__
        self.tokenizer = check_tokenizer(tokenizer, task)
        self.sequence_length = check_sequence_length(sequence_length, "sequence_length", 1)
        self.end_token = end_token
        self.start_token = start_token
        self._end_id = auto_token_id(
            tokenizer, end_token, (EOS_TOKEN, GPT2_END_TOKEN), task, "end_token"
        )
        self._start_id = auto_token_id(
            tokenizer, start_token, (EOS_TOKEN, GPT2_END_TOKEN, BOS_TOKEN), task, "start_token"
        )

    @property
    def end_token_id(self):
        """int or None. The id ending each text of the stream and each generated row."""
        return self._end_id

    @property
    def start_token_id(self):
        """int or None. The id put before each prompt."""
        return self._start_id

    # Training ---------------------------------------------------------------------------------

    def stream(self, x):
        """Texts (B,) -> their ids joined into one stream, each followed by the end id: (N,)."""
        texts, _ = to_text_tensor(x, "x", type(self).__name__)
        ids = self.tokenizer(texts)
        if self._end_id is not None:
            ids = tf.concat([ids, tf.fill([ids.nrows(), 1], self._end_id)], axis=1)
        return tf.cast(ids.flat_values, tf.int32)

    def pack_blocks(self, blocks):
        """Blocks int (B, T + 1) of the stream -> `(x, targets, sample_weight)`, each (B, T)."""
        blocks = tf.convert_to_tensor(blocks)
        if not blocks.dtype.is_integer or blocks.shape.rank != 2:
            raise ValueError(
                f"{type(self).__name__}.pack_blocks takes integer blocks of shape (B, T + 1). "
                f"Received: dtype {blocks.dtype.name}, shape {blocks.shape}"
            )
        blocks = tf.cast(blocks, tf.int32)
        inputs = blocks[:, :-1]  # (B, T)
        x = {"token_ids": inputs, "padding_mask": tf.ones_like(inputs, tf.bool)}
        return x, blocks[:, 1:], tf.ones_like(inputs, tf.float32)

    def call(self, x):
        stream = self.stream(x)  # (N,)
        block = self.sequence_length + 1
        count = tf.size(stream) // block
        blocks = tf.reshape(stream[: count * block], [count, block])
        return self.pack_blocks(blocks)

    # Generation -------------------------------------------------------------------------------

    def generate_preprocess(self, prompts, max_new_tokens, max_sequence_length=None):
        """Prompts -> right-padded ids that leave room for `max_new_tokens` new ones.

        Each prompt is tokenized, cut from the left so that it, the start token and
        `max_new_tokens` fit `max_sequence_length`, and started with the start token. A
        prompt with no token at all (empty text and no start token) gets a stand-in id 0 (the
        decoding loop needs one token per row) and is flagged in `empty`.

        Args:
            prompts: string (B,).
            max_new_tokens: int or int32 scalar tensor, already capped by the caller.
            max_sequence_length: int or None. The model's limit. Defaults to
                `sequence_length`.

        Returns:
            `(token_ids, padding_mask, lengths, empty)`: int32 (B, T) and int32 (B, T)
            right-padded (T the longest prompt), `lengths` int32 (B,) the prompt lengths
            (0 for an empty prompt), `empty` bool (B,).
        """
        prompts, _ = to_text_tensor(prompts, "prompts", type(self).__name__)
        limit = max_sequence_length or self.sequence_length
        has_start = 0 if self._start_id is None else 1
        ids = tf.cast(self.tokenizer(prompts), tf.int32)  # (B, (T))
        ids = keep_last(ids, tf.maximum(limit - max_new_tokens - has_start, 0))
        if has_start:
            batch_size = ids.nrows(out_type=tf.int32)
            ids = tf.concat([tf.fill([batch_size, 1], self._start_id), ids], axis=1)
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
        empty = tf.equal(lengths, 0)
        stand_in = tf.RaggedTensor.from_row_lengths(
            tf.zeros([tf.reduce_sum(tf.cast(empty, tf.int32))], tf.int32),
            tf.cast(empty, ids.row_splits.dtype),
        )
        ids = tf.concat([ids, stand_in], axis=1)
        token_ids, padding_mask = right_pad(ids)  # (B, T)
        return token_ids, padding_mask, lengths, empty

    def generate_postprocess(self, token_ids, mask, lengths, empty, max_new_tokens):
        """Decoded rows -> the new tokens of each row (up to the end token) and their text.

        Args:
            token_ids: int32 (B, L), the prompts followed by the generated tokens.
            mask: bool or int (B, L), true on real tokens.
            lengths, empty: from `generate_preprocess`.
            max_new_tokens: int or int32 scalar tensor.

        Returns:
            A dict: `generated_text` string (B,) (the new tokens detokenized, the end token
            left out), `token_ids` int32 (B, N) (the new ids, 0-padded), `padding_mask` int32
            (B, N).
        """
        # Row i's new tokens sit at positions [lengths_i, lengths_i + max_new_tokens).
        mask = tf.cast(mask, tf.bool)
        position = tf.range(tf.shape(token_ids)[1])[tf.newaxis, :]
        starts = tf.maximum(lengths, 1)[:, tf.newaxis]
        new = (position >= starts) & (position < starts + max_new_tokens) & mask
        new = new & tf.logical_not(empty)[:, tf.newaxis]
        if self._end_id is not None:
            new = new & tf.not_equal(token_ids, self._end_id)
        generated = tf.ragged.boolean_mask(token_ids, new)  # (B, (N))
        generated_ids, generated_mask = right_pad(generated)
        return {
            "generated_text": self.tokenizer.detokenize(generated),
            "token_ids": generated_ids,
            "padding_mask": generated_mask,
        }

    def detokenize(self, token_ids):
        """Ids (B, (T)) -> strings (B,), with the tokenizer's `detokenize`."""
        return self.tokenizer.detokenize(token_ids)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "end_token": self.end_token,
                "start_token": self.start_token,
            }
        )
        return config
