"""Serving module for encoder-decoder models: source text in, generated text out, in-graph.

`generate` takes raw source strings. The run's `Seq2SeqPreprocessor` frames each source as
training did (`source [EOS]`, truncated and padded to its encoder length S); the decoding is
`Seq2SeqTransformer.generate_ids`, the one loop of `keras_transformer.models.generation`
(greedy, sampling or beam search), which runs the encoder once per request, projects each
decoder block's cross-attention keys and values once, and then feeds the decoder one token a
step against its self-attention key/value cache. The decoder starts from the preprocessor's
start token (`[BOS]`) and a row stops after its end token (`[EOS]`).

The scalar inputs (`max_new_tokens`, `temperature`, `top_k`, `top_p`, `seed`, `num_beams`,
`length_penalty`) are those of the GPT `generate` signature (`CausalLMModule`), with their
defaults recorded in the SignatureDef and as `PlaceholderWithDefault` ops, so TF Serving and
a TF1 `Session` may leave them out.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.preprocessing import Preprocessor, Seq2SeqPreprocessor
from keras_transformer.preprocessing.ragged_ops import right_pad
from keras_transformer.serving.generation import SCALAR_SPECS, GenerationModule, named_scalars
from keras_transformer.serving.signatures import SAMPLE_TEXTS, Untracked
from keras_transformer.text.vocabulary import SPECIAL_TOKENS, UNK_TOKEN

SOURCES_SPEC = tf.TensorSpec([None], tf.string, name="sources")
ENCODER_IDS_SPECS = [
    tf.TensorSpec([None, None], tf.int32, name="encoder_token_ids"),
    tf.TensorSpec([None, None], tf.int32, name="encoder_padding_mask"),
]


def text_token_mask(tokenizer, size):
    """bool (size,): the ids whose tokens belong in generated text.

    Special tokens (`[PAD]`, `[BOS]`, `[EOS]`, ...; not `[UNK]`), `[unused...]` placeholders
    and ids past the tokenizer's vocabulary are left out before detokenizing (WordPiece
    would spell them out).
    """
    keep = np.zeros(size, bool)
    for i, token in enumerate(tokenizer.get_vocabulary()[:size]):
        special = token in SPECIAL_TOKENS and token != UNK_TOKEN
        placeholder = token.startswith("[unused") and token.endswith("]")
        keep[i] = not (special or placeholder)
    return keep


class Seq2SeqModule(GenerationModule):
    """`Seq2SeqTransformer` signatures: `generate` (sources; also `serving_default`) and
    `from_token_ids`.

    `generate` inputs: `sources` string (B,), and the scalar inputs of `CausalLMModule`'s
    `generate`: `max_new_tokens` int32 (default set at export: the preprocessor's decoder
    length T), `temperature` float32 (default `0.0`: greedy), `top_k` int32 (default `0`),
    `top_p` float32 (default `1.0`), `seed` int32 (default `-1`: a new seed per request),
    `num_beams` int32 (default `1`; 2 to `MAX_NUM_BEAMS`: beam search, with temperature 0),
    `length_penalty` float32 (default `1.0`). `max_new_tokens` is capped at the model's
    `max_sequence_length - 1` (the start token takes one position). Outputs:
    `generated_text` string (B,): the generated target detokenized by the target tokenizer,
    special tokens left out; `token_ids` int32 (B, N): the generated ids after the start
    token and before the end token (what `Seq2SeqTransformer.generate` returns for the row),
    0-padded, and their `padding_mask` int32 (B, N). A source with no tokens (an empty
    string) gets an empty text and no ids: the model is not asked to answer it.

    `from_token_ids` takes `encoder_token_ids` and `encoder_padding_mask` int32 (B, S),
    right-padded (each row at least one token, S at most `max_sequence_length`), and the
    same scalar inputs, and returns `token_ids` and `padding_mask` int32 (B, 1 +
    max_new_tokens): the start token and the generated tokens, end token included, exactly
    what `Seq2SeqTransformer.generate(..., start_token, end_token)` returns.

    Args:
        model: `Seq2SeqTransformer`.
        preprocessor: the run's `Seq2SeqPreprocessor`, or a tokenizer layer (shared by
            sources and targets, with `[PAD]`, `[BOS]` and `[EOS]`; a `Seq2SeqPreprocessor`
            is built with the model's `max_sequence_length` as both lengths).
        max_new_tokens: int or None. Default of the `max_new_tokens` input, in [1,
            max_sequence_length - 1]. Defaults to `None`: the preprocessor's
            `decoder_sequence_length` (at most `max_sequence_length - 1`).

    Raises:
        ValueError: no preprocessor or tokenizer, another preprocessor kind, or a bad
            `max_new_tokens`.
    """

    TEXT_SIGNATURE = "generate"

    def __init__(self, model, preprocessor, max_new_tokens=None):
        super().__init__(name="seq2seq")
        self.hold_model(model)
        self.max_sequence_length = model.backbone.max_sequence_length
        self.vocabulary_size = model.backbone.vocabulary_size
        self.preprocessor = self._preprocessor(preprocessor)
        self.tokenizer = self.preprocessor.target_vocabulary
        self.start_id = self.preprocessor.start_token_id
        self.end_id = self.preprocessor.end_token_id
        limit = self.max_sequence_length - 1
        if max_new_tokens is None:
            max_new_tokens = min(self.preprocessor.decoder_sequence_length, limit)
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, int)
            or not 0 < max_new_tokens <= limit
        ):
            raise ValueError(
                f"`max_new_tokens` must be an int in [1, {limit}] (the model's "
                f"max_sequence_length - 1). Received: {max_new_tokens!r}"
            )
        self.default_max_new_tokens = max_new_tokens
        self._text_tokens = tf.constant(text_token_mask(self.tokenizer, self.vocabulary_size))
        self._decode_function = Untracked(model.generate_ids)
        # Tensor defaults become the SignatureDef's `defaults` and PlaceholderWithDefault ops.
        defaults = {name: tf.constant(value) for name, value in self.default_scalars().items()}

        def generate(
            sources,
            max_new_tokens=defaults["max_new_tokens"],
            temperature=defaults["temperature"],
            top_k=defaults["top_k"],
            top_p=defaults["top_p"],
            seed=defaults["seed"],
            num_beams=defaults["num_beams"],
            length_penalty=defaults["length_penalty"],
        ):
            scalars = named_scalars(
                max_new_tokens, temperature, top_k, top_p, seed, num_beams, length_penalty
            )
            return self._generate(sources, scalars)

        def from_token_ids(
            encoder_token_ids,
            encoder_padding_mask,
            max_new_tokens=defaults["max_new_tokens"],
            temperature=defaults["temperature"],
            top_k=defaults["top_k"],
            top_p=defaults["top_p"],
            seed=defaults["seed"],
            num_beams=defaults["num_beams"],
            length_penalty=defaults["length_penalty"],
        ):
            scalars = named_scalars(
                max_new_tokens, temperature, top_k, top_p, seed, num_beams, length_penalty
            )
            return self._from_token_ids(encoder_token_ids, encoder_padding_mask, scalars)

        self.serve_text = tf.function(generate, input_signature=[SOURCES_SPEC, *SCALAR_SPECS])
        self.from_token_ids = tf.function(
            from_token_ids, input_signature=[*ENCODER_IDS_SPECS, *SCALAR_SPECS]
        )

    def _preprocessor(self, preprocessor):
        """The `Seq2SeqPreprocessor` given, or one built from a tokenizer."""
        if isinstance(preprocessor, Seq2SeqPreprocessor):
            return preprocessor
        if preprocessor is None or isinstance(preprocessor, Preprocessor):
            received = "None" if preprocessor is None else type(preprocessor).__name__
            raise ValueError(
                "Exporting a Seq2SeqTransformer needs its Seq2SeqPreprocessor (a seq2seq run "
                "folder's preprocessor.json) or a tokenizer with [PAD], [BOS] and [EOS]: the "
                f"decoder starts from the target start token. Received: {received}"
            )
        length = self.max_sequence_length
        return Seq2SeqPreprocessor(preprocessor, length, length)

    def warmup_inputs(self, texts=SAMPLE_TEXTS):
        # Every input is sent: older TF Serving versions reject requests that rely on defaults.
        scalars = {k: np.asarray(v) for k, v in self.default_scalars().items()}
        scalars["seed"] = np.asarray(0, np.int32)
        sources = np.array([t.encode("utf-8") for t in texts], dtype=object)
        beams = dict(scalars, num_beams=np.asarray(2, np.int32))
        encoder = self.preprocessor.generate_preprocess(tf.constant(sources))
        ids = {
            "encoder_token_ids": encoder["encoder_token_ids"].numpy(),
            "encoder_padding_mask": encoder["encoder_padding_mask"].numpy().astype("int32"),
        }
        return [
            (self.TEXT_SIGNATURE, {"sources": sources, **scalars}),
            (self.TEXT_SIGNATURE, {"sources": sources, **beams}),  # the beam-search branch
            ("from_token_ids", {**ids, **scalars}),
        ]

    # ----------------------------------------------------------------------------------------

    def _decode(self, encoder_token_ids, encoder_padding_mask, scalars):
        """Runs the model's decoding loop from the start token, `max_new_tokens` positions."""
        with tf.control_dependencies(self._check_scalars(scalars)):
            max_new_tokens = tf.minimum(scalars["max_new_tokens"], self.max_sequence_length - 1)
        batch_size = tf.shape(encoder_token_ids)[0]
        starts = tf.fill([batch_size, 1], tf.constant(self.start_id, tf.int32))
        decoder_token_ids = tf.pad(starts, [[0, 0], [0, max_new_tokens]])  # (B, 1 + N)
        decoder_padding_mask = tf.sequence_mask(tf.ones([batch_size], tf.int32), 1 + max_new_tokens)
        outputs = self._decode_function.value(
            {
                "encoder_token_ids": encoder_token_ids,
                "encoder_padding_mask": tf.cast(encoder_padding_mask, tf.bool),
                "decoder_token_ids": decoder_token_ids,
                "decoder_padding_mask": decoder_padding_mask,
            },
            temperature=scalars["temperature"],
            top_k=scalars["top_k"],
            top_p=scalars["top_p"],
            seed=self._seed_pair(scalars["seed"]),
            end_token=self.end_id,
            num_beams=scalars["num_beams"],
            length_penalty=scalars["length_penalty"],
        )
        return outputs["token_ids"], outputs["padding_mask"]  # (B, 1 + N)

    def _generate(self, sources, scalars):
        encoder = self.preprocessor.generate_preprocess(sources)  # (B, S)
        encoder_padding_mask = encoder["encoder_padding_mask"]
        # A source with no tokens is framed as `[EOS]` alone: it gets no answer.
        empty = tf.reduce_sum(tf.cast(encoder_padding_mask, tf.int32), axis=1) <= 1  # (B,)
        token_ids, mask = self._decode(encoder["encoder_token_ids"], encoder_padding_mask, scalars)
        token_ids, mask = token_ids[:, 1:], mask[:, 1:]  # without the start token
        new = mask & tf.not_equal(token_ids, self.end_id) & ~empty[:, tf.newaxis]
        generated_ids, generated_mask = right_pad(tf.ragged.boolean_mask(token_ids, new))
        shown = new & tf.gather(self._text_tokens, token_ids)
        return {
            "generated_text": self.preprocessor.detokenize(
                tf.ragged.boolean_mask(token_ids, shown)
            ),
            "token_ids": generated_ids,
            "padding_mask": generated_mask,
        }

    def _from_token_ids(self, encoder_token_ids, encoder_padding_mask, scalars):
        lengths = tf.reduce_sum(tf.cast(encoder_padding_mask > 0, tf.int32), axis=1)
        expected = tf.sequence_mask(lengths, tf.shape(encoder_padding_mask)[1], dtype=tf.int32)
        checks = [
            tf.debugging.assert_equal(
                tf.shape(encoder_token_ids),
                tf.shape(encoder_padding_mask),
                message=(
                    "encoder_token_ids and encoder_padding_mask must have the same shape (B, S)."
                ),
            ),
            tf.debugging.assert_positive(
                lengths, message="Every source needs at least one token (e.g. its [EOS])."
            ),
            tf.debugging.assert_equal(
                tf.cast(encoder_padding_mask > 0, tf.int32),
                expected,
                message="Sources must be right-padded: encoder_padding_mask must be 1s then 0s.",
            ),
            tf.debugging.assert_less_equal(
                tf.shape(encoder_token_ids)[1],
                self.max_sequence_length,
                message=(
                    "S exceeds the model's max_sequence_length="
                    f"{self.max_sequence_length}. Shorten the sources."
                ),
            ),
            tf.debugging.assert_non_negative(
                encoder_token_ids, message="encoder_token_ids must be >= 0."
            ),
            tf.debugging.assert_less(
                encoder_token_ids,
                self.vocabulary_size,
                message=(
                    f"encoder_token_ids must be < the vocabulary size {self.vocabulary_size}."
                ),
            ),
        ]
        with tf.control_dependencies(checks):
            encoder_token_ids = tf.identity(encoder_token_ids)
        token_ids, mask = self._decode(encoder_token_ids, encoder_padding_mask > 0, scalars)
        return {"token_ids": token_ids, "padding_mask": tf.cast(mask, tf.int32)}
