"""The result of `from_huggingface`: our model, our tokenizer, and what the folder declared."""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.preprocessing import ClassifierPreprocessor
from keras_transformer.pretrained.pooling import SentencePooling
from keras_transformer.pretrained.tokenizer import SpecialTokens


@dataclasses.dataclass
class PretrainedModel:
    """A checkpoint loaded into our models.

    Attributes:
        model: `keras.Model`. `BertBackbone` (encoders without a head), `BertMaskedLM`
            (with the masked-LM head) or `GPTCausalLM` (GPT-2). Takes the dict of
            `"token_ids"` and `"padding_mask"` (B, T) (plus `"mask_positions"` for the
            masked LM), like our other models.
        backbone: the `BertBackbone` or `GPTBackbone` inside `model`.
        tokenizer: `WordPieceTokenizer` for encoders; `None` for GPT-2 (byte-level BPE has no
            tokenizer in this package: tokenize elsewhere and pass ids).
        special_tokens: `SpecialTokens` or None. `[CLS]`, `[SEP]`, `[PAD]`... ids.
        pooling: `SentencePooling` or None. How `embed` pools (encoders only).
        architecture: str. `"bert"`, `"distilbert"` or `"gpt2"`.
        config: dict. The checkpoint's config.json.
        folder: Path. The folder read.
        left_as_initialized: tuple of str. Our layers the checkpoint has no weights for
            (e.g. `"pooler"` for DistilBERT or `BertForMaskedLM`).
        unused_tensors: tuple of str. Checkpoint tensors our model has no place for (e.g. the
            next-sentence head `cls.seq_relationship.*`).
    """

    model: keras.Model
    backbone: keras.Model
    tokenizer: object
    special_tokens: SpecialTokens | None
    pooling: SentencePooling | None
    architecture: str
    config: dict
    folder: Path
    left_as_initialized: tuple = ()
    unused_tensors: tuple = ()

    @property
    def is_encoder(self):
        """True for BERT-family models (which have `encode` and `embed`)."""
        return self.architecture != "gpt2"

    def make_preprocessor(self, sequence_length=None):
        """The `ClassifierPreprocessor` framing texts for this encoder: `[CLS] tokens [SEP]`.

        Args:
            sequence_length: int or None. Truncate to this many tokens ([CLS] and [SEP]
                included). Defaults to the pooling's `max_sequence_length`, else the model's
                `max_sequence_length` (and never more than the model's).

        Returns:
            A `ClassifierPreprocessor` with the checkpoint's tokenizer and special tokens.
            The pooling's `lowercase_input` is not part of it: `encode` lower-cases first.
        """
        if self.tokenizer is None:
            reason = (
                "GPT-2's byte-level BPE is not implemented in this package"
                if self.architecture == "gpt2"
                else f"{self.folder} has neither vocab.txt nor a WordPiece tokenizer.json"
            )
            raise ValueError(
                f"This {self.architecture} checkpoint has no tokenizer here ({reason}). "
                "Tokenize with the checkpoint's own tokenizer and pass token ids to `.model`."
            )
        limit = sequence_length or (self.pooling and self.pooling.max_sequence_length)
        limit = min(limit or self.backbone.max_sequence_length, self.backbone.max_sequence_length)
        if limit < 3:
            raise ValueError(f"`sequence_length` must be at least 3. Received: {limit}")
        vocabulary = self.tokenizer.get_vocabulary()
        special = self.special_tokens
        return ClassifierPreprocessor(
            self.tokenizer,
            limit,
            cls_token=vocabulary[special.cls_id],
            sep_token=vocabulary[special.sep_id],
            pad_token=vocabulary[special.pad_id],
        )

    def encode(self, texts, sequence_length=None):
        """Tokenize texts into the padded model inputs `[CLS] tokens [SEP] [PAD]...`.

        The texts go through `make_preprocessor(sequence_length)` (lower-cased first when the
        pooling says `lowercase_input`); rows are padded to the longest row.

        Args:
            texts: str or list of str.
            sequence_length: int or None. Truncate to this many tokens ([CLS] and [SEP]
                included). Defaults to the pooling's `max_sequence_length`, else the model's
                `max_sequence_length`.

        Returns:
            dict of int32 numpy arrays `"token_ids"` and `"padding_mask"`, (B, T).
        """
        preprocessor = self.make_preprocessor(sequence_length)
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("`texts` is empty: pass at least one string.")
        if self.pooling is not None and self.pooling.lowercase_input:
            texts = [text.lower() for text in texts]
        x = preprocessor(tf.constant(texts, tf.string), pad_to_longest=True)
        return {
            "token_ids": np.asarray(x["token_ids"], "int32"),
            "padding_mask": np.asarray(x["padding_mask"], "int32"),
        }

    def embed(self, texts, batch_size=32):
        """Sentence embeddings with the pooling and normalization the folder declares.

        For all-MiniLM-L6-v2: mean pooling over the real tokens, then L2 normalization.

        Args:
            texts: str or list of str.
            batch_size: int. Texts per forward pass. Defaults to `32`.

        Returns:
            float32 numpy array (B, E).
        """
        if not self.is_encoder:
            raise ValueError(
                f"`embed` is for encoders (BERT family); this is a {self.architecture} model."
            )
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        outputs = []
        for start in range(0, len(texts), batch_size):
            inputs = self.encode(texts[start : start + batch_size])
            sequence = self.backbone(inputs, training=False)["sequence_output"]
            outputs.append(np.asarray(self.pooling(sequence, inputs["padding_mask"])))
        return np.concatenate(outputs, axis=0)
