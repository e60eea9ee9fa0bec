"""`ClassifierPreprocessor`: text (or text pairs) -> `[CLS] a [SEP] (b [SEP])` model inputs."""

import keras

from keras_transformer.preprocessing.preprocessor import (
    Preprocessor,
    check_sequence_length,
    check_tokenizer,
    special_token_ids,
    to_text_tensor,
)
from keras_transformer.preprocessing.ragged_ops import trim_to_longest
from keras_transformer.text.packing import TRUNCATE_STRATEGIES, MultiSegmentPacker
from keras_transformer.text.vocabulary import CLS_TOKEN, PAD_TOKEN, SEP_TOKEN


def split_segments(x, num_segments, task):
    """`x` -> a list of `num_segments` string (B,) tensors and whether the input was scalar.

    A tuple, or a list of tensors or of lists, is a pair of segments; a str, a list of str or
    a string tensor is one segment.
    """
    is_pair = isinstance(x, tuple) or (
        isinstance(x, list) and bool(x) and not isinstance(x[0], (str, bytes))
    )
    segments = list(x) if is_pair else [x]
    if len(segments) != num_segments:
        got = f"{len(segments)} segments" if is_pair else "one text"
        raise ValueError(
            f"{task} was built for num_segments={num_segments} and takes "
            f"{'one text (B,)' if num_segments == 1 else 'a pair (text_a, text_b)'} as `x`. "
            f"Received: {got}"
        )
    names = ["x"] if num_segments == 1 else [f"x[{i}]" for i in range(num_segments)]
    converted = [to_text_tensor(s, n, task) for s, n in zip(segments, names, strict=True)]
    scalars = {scalar for _, scalar in converted}
    if len(scalars) > 1:
        raise ValueError(f"{task} takes segments of one rank (all (B,) or all scalars).")
    return [texts for texts, _ in converted], scalars.pop()


@keras.saving.register_keras_serializable(package="keras_transformer")
class ClassifierPreprocessor(Preprocessor):
    """Classification preprocessing: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, labels through.

    Each text is tokenized; the segments are truncated together to fit `sequence_length`
    (`"round_robin"` gives one token to each segment in turn, `"waterfall"` keeps the first
    whole), framed with `[CLS]` and `[SEP]`, and right-padded with `[PAD]`. Segment ids are
    0 for `[CLS]`, the first segment and its `[SEP]`, 1 for the second.

    The output width is `sequence_length` (what `classification_dataset` trains on), or with
    `pad_to_longest=True` the batch's longest packed row (what the exported signatures serve:
    a batch of short texts costs little). Both give the same values on the real positions.
    BERT-style encoders use the same framing: the `embed` export uses this preprocessor too.

    Labels and sample weights pass through untouched, as in keras-hub
    (`keras.utils.pack_x_y_sample_weight`), so `dataset.map(preprocessor)` works on
    `(text, label)` datasets.

    Args:
        tokenizer: a tokenizer layer of `keras_transformer.text` (ragged outputs).
        sequence_length: int. T, tokens per example, specials included. Defaults to `128`.
        truncate: str. `"round_robin"` or `"waterfall"` (pairs). Defaults to `"round_robin"`.
        num_segments: int. 1 (one text) or 2 (text pairs). Defaults to `1`.
        cls_token, sep_token: str. The framing tokens. Default to `"[CLS]"`, `"[SEP]"`.
        pad_token: str or None. The padding token; None pads with id 0. Defaults to `"[PAD]"`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        x: string (B,) or a scalar string; with `num_segments=2` a tuple `(text_a, text_b)`.
        y: labels or None, passed through.
        sample_weight: weights or None, passed through.
        pad_to_longest: bool. Cut the outputs to the batch's longest row. Defaults to `False`.

    Returns:
        `x`, `(x, y)` or `(x, y, sample_weight)`; x holds `token_ids` int32 (B, T),
        `segment_ids` int32 (B, T) and `padding_mask` bool (B, T) (T shorter with
        `pad_to_longest`; (T,) each for a scalar input).

    Example:
    >>> preprocessor = ClassifierPreprocessor(tokenizer, sequence_length=64)
    >>> x, y = preprocessor(tf.constant(["A fine film."]), tf.constant([1]))
    >>> train = examples.batch(32).map(preprocessor)  # (text, label) batches
    """

    def __init__(
        self,
        tokenizer,
        sequence_length=128,
        truncate="round_robin",
        num_segments=1,
        cls_token=CLS_TOKEN,
        sep_token=SEP_TOKEN,
        pad_token=PAD_TOKEN,
        **kwargs,
    ):
        super().__init__(**kwargs)
        task = type(self).__name__
        self.tokenizer = check_tokenizer(tokenizer, task)
        if num_segments not in (1, 2):
            raise ValueError(f"`num_segments` must be 1 or 2. Received: {num_segments!r}")
        if truncate not in TRUNCATE_STRATEGIES:
            raise ValueError(
                f"`truncate` must be one of {TRUNCATE_STRATEGIES}. Received: truncate={truncate!r}"
            )
        minimum = 2 + num_segments  # [CLS], a [SEP] per segment, and one token.
        self.sequence_length = check_sequence_length(sequence_length, "sequence_length", minimum)
        self.truncate = truncate
        self.num_segments = num_segments
        self.cls_token = cls_token
        self.sep_token = sep_token
        self.pad_token = pad_token
        roles = {"cls_token": cls_token, "sep_token": sep_token}
        if pad_token is not None:
            roles["pad_token"] = pad_token
        ids = special_token_ids(tokenizer, roles, task)
        self.cls_token_id = ids["cls_token"]
        self.sep_token_id = ids["sep_token"]
        self.pad_token_id = ids.get("pad_token", 0)
        self.packer = MultiSegmentPacker(
            sequence_length,
            self.cls_token_id,
            self.sep_token_id,
            self.pad_token_id,
            truncate=truncate,
        )

    def call(self, x, y=None, sample_weight=None, pad_to_longest=False):
        segments, scalar = split_segments(x, self.num_segments, type(self).__name__)
        token_ids, segment_ids, padding_mask = self.packer([self.tokenizer(s) for s in segments])
        if pad_to_longest:
            padding_mask, token_ids, segment_ids = trim_to_longest(
                padding_mask, token_ids, segment_ids
            )
        features = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        }
        if scalar:
            features = {name: value[0] for name, value in features.items()}
        return keras.utils.pack_x_y_sample_weight(features, y, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "truncate": self.truncate,
                "num_segments": self.num_segments,
                "cls_token": self.cls_token,
                "sep_token": self.sep_token,
                "pad_token": self.pad_token,
            }
        )
        return config
