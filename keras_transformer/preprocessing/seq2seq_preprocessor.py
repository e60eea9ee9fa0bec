"""`Seq2SeqPreprocessor`: (source, target) -> encoder inputs and teacher-forced decoder inputs."""

import keras
import tensorflow as tf

from keras_transformer.preprocessing.preprocessor import (
    Preprocessor,
    check_sequence_length,
    check_tokenizer,
    special_token_ids,
    to_text_tensor,
)
from keras_transformer.text.packing import StartEndPacker
from keras_transformer.text.vocabulary import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN


@keras.saving.register_keras_serializable(package="keras_transformer")
class Seq2SeqPreprocessor(Preprocessor):
    """Encoder-decoder preprocessing with teacher forcing.

    The source becomes `source [EOS]` padded to S; the target becomes `[BOS] target [EOS]`
    padded to T + 1, whose first T tokens feed the decoder and whose last T are the labels
    (the decoder inputs shifted by one), weighted 1 on real target tokens.

    Args:
        source_tokenizer: tokenizer layer for sources; needs `[PAD]` and `[EOS]`.
        encoder_sequence_length: int. S.
        decoder_sequence_length: int. T.
        target_tokenizer: tokenizer layer for targets; needs `[PAD]`, `[BOS]`, `[EOS]`.
            Defaults to `source_tokenizer`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        source: string (B,) or a scalar string.
        target: string (B,) or a scalar string (the same rank as `source`).

    Returns:
        `(x, targets, sample_weight)`: x holds `encoder_token_ids` int32 (B, S),
        `encoder_padding_mask` bool (B, S), `decoder_token_ids` int32 (B, T),
        `decoder_padding_mask` bool (B, T); `targets` int32 (B, T); `sample_weight` float32
        (B, T). Scalar inputs give unbatched outputs ((S,), (T,)).

    Example:
    >>> preprocessor = Seq2SeqPreprocessor(tokenizer, 32, 16)
    >>> x, targets, weights = preprocessor(tf.constant(["12 may 2020"]), tf.constant(["12/5"]))
    >>> inputs = preprocessor.generate_preprocess(tf.constant(["3 june 1999"]))
    """

    TOKENIZER_ARGUMENTS = ("source_tokenizer", "target_tokenizer")

    def __init__(
        self,
        source_tokenizer,
        encoder_sequence_length,
        decoder_sequence_length,
        target_tokenizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        task = type(self).__name__
        self.source_tokenizer = check_tokenizer(source_tokenizer, task)
        self.target_tokenizer = (
            None if target_tokenizer is None else check_tokenizer(target_tokenizer, task)
        )
        self.encoder_sequence_length = check_sequence_length(
            encoder_sequence_length, "encoder_sequence_length", 2
        )
        self.decoder_sequence_length = check_sequence_length(
            decoder_sequence_length, "decoder_sequence_length", 2
        )
        target = self.target_vocabulary
        source_ids = special_token_ids(
            source_tokenizer, {"source pad": PAD_TOKEN, "source end": EOS_TOKEN}, task
        )
        target_ids = special_token_ids(
            target,
            {"target pad": PAD_TOKEN, "target start": BOS_TOKEN, "target end": EOS_TOKEN},
            task,
        )
        self._source_pad_id = source_ids["source pad"]
        self._source_end_id = source_ids["source end"]
        self._target_pad_id = target_ids["target pad"]
        self._start_id = target_ids["target start"]
        self._end_id = target_ids["target end"]
        self.encoder_packer = StartEndPacker(
            encoder_sequence_length, end_value=self._source_end_id, pad_value=self._source_pad_id
        )
        self.decoder_packer = StartEndPacker(
            decoder_sequence_length + 1,
            start_value=self._start_id,
            end_value=self._end_id,
            pad_value=self._target_pad_id,
        )

    @property
    def target_vocabulary(self):
        """The target tokenizer (the source tokenizer if none was given)."""
        return self.target_tokenizer or self.source_tokenizer

    @property
    def start_token_id(self):
        """int. `[BOS]` of the targets: the decoder's first input."""
        return self._start_id

    @property
    def end_token_id(self):
        """int. `[EOS]` of the targets: where generation stops."""
        return self._end_id

    def call(self, source, target):
        task = type(self).__name__
        sources, scalar = to_text_tensor(source, "source", task)
        targets, target_scalar = to_text_tensor(target, "target", task)
        if scalar != target_scalar:
            raise ValueError(
                f"{task} takes `source` and `target` of one rank (both (B,) or scalars)."
            )
        encoder = self.generate_preprocess(sources)
        decoder_ids, decoder_mask = self.decoder_packer(self.target_vocabulary(targets))
        x = {
            **encoder,
            "decoder_token_ids": decoder_ids[:, :-1],  # (B, T)
            "decoder_padding_mask": decoder_mask[:, :-1],
        }
        outputs = (x, decoder_ids[:, 1:], tf.cast(decoder_mask[:, 1:], tf.float32))
        if scalar:
            outputs = tf.nest.map_structure(lambda value: value[0], outputs)
        return outputs

    def generate_preprocess(self, sources):
        """Sources (B,) -> `{"encoder_token_ids": int32 (B, S), "encoder_padding_mask": bool}`."""
        sources, _ = to_text_tensor(sources, "sources", type(self).__name__)
        token_ids, padding_mask = self.encoder_packer(self.source_tokenizer(sources))
        return {"encoder_token_ids": token_ids, "encoder_padding_mask": padding_mask}

    def detokenize(self, token_ids):
        """Target ids (B, (T)) -> strings (B,), with the target tokenizer's `detokenize`."""
        return self.target_vocabulary.detokenize(token_ids)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder_sequence_length": self.encoder_sequence_length,
                "decoder_sequence_length": self.decoder_sequence_length,
            }
        )
        return config
