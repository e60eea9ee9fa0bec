"""`MaskedLMPreprocessor`: text -> `[CLS] text [SEP]` with BERT's 15% / 80-10-10 masking."""

import math

import keras
import tensorflow as tf

from keras_transformer.preprocessing.preprocessor import (
    Preprocessor,
    check_sequence_length,
    check_tokenizer,
    has_token,
    special_token_ids,
    to_text_tensor,
)
from keras_transformer.preprocessing.ragged_ops import split_on_marker, trim_to_longest
from keras_transformer.text.masking import MaskedLMMaskGenerator
from keras_transformer.text.packing import StartEndPacker
from keras_transformer.text.vocabulary import (
    CLS_TOKEN,
    MASK_TOKEN,
    PAD_TOKEN,
    SEP_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedLMPreprocessor(Preprocessor):
    """Masked-LM preprocessing: `[CLS] text [SEP]`, tokens chosen and corrupted 80/10/10.

    For training, each text is framed and padded to `sequence_length`, then
    `MaskedLMMaskGenerator` chooses `mask_selection_rate` of its tokens (never special tokens
    or padding; at most `max_selections`) and sets `mask_token_rate` of them to `[MASK]`,
    `random_token_rate` to a random token and leaves the rest. The randomness is stateless:
    the `seed` call argument (a (2,) tensor) fixes the masks; `masked_lm_dataset` feeds
    `[seed, r]` with `r` from `tf.data.Dataset.random(seed)`, so the same `seed` gives the same
    batches and every epoch draws fresh masks. Without a `seed` argument, a call draws one
    at random.

    For serving, `fill_mask_preprocess` frames texts that hold the literal `[MASK]` token (the
    tokenizer would split it into `[`, `mask`, `]`) exactly as training frames text, cut to the
    batch's longest row: the exported `fill_mask` signature calls it.

    Args:
        tokenizer: a tokenizer layer of `keras_transformer.text` (ragged outputs) whose
            vocabulary holds `[PAD]`, `[CLS]`, `[SEP]` and `[MASK]`.
        sequence_length: int. T.
        mask_selection_rate: float. Defaults to `0.15`.
        max_selections: int or None. P, prediction slots per sequence. Defaults to
            `ceil(mask_selection_rate * sequence_length)`.
        mask_token_rate: float. Defaults to `0.8`.
        random_token_rate: float. Defaults to `0.1`.
        seed: int. The first half of every stateless seed. Defaults to `0`.
        cls_token, sep_token, pad_token, mask_token: str. The special tokens (never chosen for
            masking, like every other special token of the vocabulary but `[UNK]`). Default to
            `"[CLS]"`, `"[SEP]"`, `"[PAD]"`, `"[MASK]"`; `pad_token=None` pads with id 0.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        x: string (B,) or a scalar string (then the outputs are unbatched).
        seed: int (2,) tensor or None. The stateless seed of this batch's masks.

    Returns:
        `(x, mask_ids, mask_weights)`: x holds `token_ids` int32 (B, T) (corrupted),
        `padding_mask` bool (B, T), `segment_ids` int32 (B, T) (zeros), `mask_positions` int32
        (B, P); `mask_ids` int32 (B, P) (the original ids); `mask_weights` float32 (B, P).

    Example:
    >>> preprocessor = MaskedLMPreprocessor(tokenizer, sequence_length=128)
    >>> x, mask_ids, mask_weights = preprocessor(tf.constant(["A fine film."]))
    >>> served = preprocessor.fill_mask_preprocess(tf.constant(["Paris is the [MASK]."]))
    """

    def __init__(
        self,
        tokenizer,
        sequence_length,
        mask_selection_rate=0.15,
        max_selections=None,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        seed=0,
        cls_token=CLS_TOKEN,
        sep_token=SEP_TOKEN,
        pad_token=PAD_TOKEN,
        mask_token=MASK_TOKEN,
        **kwargs,
    ):
        super().__init__(**kwargs)
        task = type(self).__name__
        self.tokenizer = check_tokenizer(tokenizer, task)
        self.sequence_length = check_sequence_length(sequence_length, "sequence_length", 3)
        if max_selections is None:
            max_selections = max(1, math.ceil(mask_selection_rate * sequence_length))
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"`seed` must be an int. Received: seed={seed!r}")
        self.mask_selection_rate = mask_selection_rate
        self.max_selections = max_selections
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate
        self.seed = seed
        self.cls_token = cls_token
        self.sep_token = sep_token
        self.pad_token = pad_token
        self.mask_token = mask_token
        roles = {"cls_token": cls_token, "sep_token": sep_token, "mask_token": mask_token}
        if pad_token is not None:
            roles["pad_token"] = pad_token
        ids = special_token_ids(tokenizer, roles, task)
        self.cls_token_id = ids["cls_token"]
        self.sep_token_id = ids["sep_token"]
        self.pad_token_id = ids.get("pad_token", 0)
        self.mask_token_id = ids["mask_token"]
        self.packer = StartEndPacker(
            sequence_length, self.cls_token_id, self.sep_token_id, self.pad_token_id
        )
        unselectable = [
            tokenizer.token_to_id(t)
            for t in SPECIAL_TOKENS
            if t != UNK_TOKEN and has_token(tokenizer, t)
        ] + [ids[role] for role in ("cls_token", "sep_token", "pad_token") if role in ids]
        self.masker = MaskedLMMaskGenerator(
            vocabulary_size=tokenizer.vocabulary_size(),
            mask_token_id=self.mask_token_id,
            max_selections=max_selections,
            unselectable_token_ids=unselectable,
            mask_selection_rate=mask_selection_rate,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
        )

    def call(self, x, seed=None):
        texts, scalar = to_text_tensor(x, "x", type(self).__name__)
        if seed is None:
            seed = tf.stack(
                [
                    tf.constant(self.seed, tf.int64),
                    tf.random.uniform([], maxval=tf.int64.max, dtype=tf.int64),
                ]
            )
        token_ids, padding_mask = self.packer(self.tokenizer(texts))
        masked = self.masker(token_ids, padding_mask, seed)
        features = {
            "token_ids": masked["token_ids"],
            "padding_mask": padding_mask,
            "segment_ids": tf.zeros_like(token_ids),
            "mask_positions": masked["mask_positions"],
        }
        outputs = (features, masked["mask_ids"], masked["mask_weights"])
        if scalar:
            outputs = tf.nest.map_structure(lambda value: value[0], outputs)
        return outputs

    def fill_mask_preprocess(self, x, pad_to_longest=True):
        """Texts with literal `[MASK]` markers -> framed ids, as training frames text.

        Args:
            x: string (B,). `[MASK]` (case-sensitive) stands for the mask token wherever it
                appears; the rest is tokenized as usual.
            pad_to_longest: bool. Cut to the batch's longest row. Defaults to `True`.

        Returns:
            A dict: `token_ids` int32 (B, W), `segment_ids` int32 (B, W) (zeros),
            `padding_mask` bool (B, W); W <= `sequence_length`.
        """
        texts, _ = to_text_tensor(x, "x", type(self).__name__)
        ids = split_on_marker(texts, self.mask_token, self.tokenizer, self.mask_token_id)
        token_ids, padding_mask = self.packer(ids)
        if pad_to_longest:
            padding_mask, token_ids = trim_to_longest(padding_mask, token_ids)
        return {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": padding_mask,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "mask_selection_rate": self.mask_selection_rate,
                "max_selections": self.max_selections,
                "mask_token_rate": self.mask_token_rate,
                "random_token_rate": self.random_token_rate,
                "seed": self.seed,
                "cls_token": self.cls_token,
                "sep_token": self.sep_token,
                "pad_token": self.pad_token,
                "mask_token": self.mask_token,
            }
        )
        return config
