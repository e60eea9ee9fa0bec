"""The result of `from_huggingface`: our model, our tokenizer, and what the folder declared."""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.preprocessing import CausalLMPreprocessor, ClassifierPreprocessor
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
        tokenizer: `WordPieceTokenizer` for encoders, `BytePairTokenizer` for GPT-2 (the ids
            of the checkpoint's `transformers` tokenizer), or None for a folder without
            tokenizer files (pass token ids to `.model`).
        special_tokens: `SpecialTokens` or None. `[CLS]`, `[SEP]`, `[PAD]`... ids (encoders).
        pooling: `SentencePooling` or None. How `embed` pools (encoders only).
        architecture: str. `"bert"`, `"distilbert"` or `"gpt2"`.
        config: dict. The checkpoint's config.json.
        folder: Path. The folder read.
        left_as_initialized: tuple of str. Our layers the checkpoint has no weights for
            (e.g. `"pooler"` for DistilBERT or `BertForMaskedLM`).
        unused_tensors: tuple of str. Checkpoint tensors our model has no place for (e.g. the
            next-sentence head `cls.seq_relationship.*`).
        end_token: str or None. GPT-2: the token at which `transformers`' `generate` stops
            (the checkpoint's `eos_token_id`, `<|endoftext|>` for GPT-2), or None (never).
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
    end_token: str | None = None

    @property
    def is_encoder(self):
        """True for BERT-family models (which have `encode` and `embed`)."""
        return self.architecture != "gpt2"

    def make_preprocessor(self, sequence_length=None):
        """The preprocessor framing texts for this model.

        Encoders: a `ClassifierPreprocessor`, `[CLS] tokens [SEP]`. GPT-2: a
        `CausalLMPreprocessor` framed as `transformers` frames a prompt: no start token
        (`GPT2Tokenizer` adds none) and `end_token` (the checkpoint's `eos_token_id`) ending a
        generated row. So the exported `generate` keeps a prompt's last
        `max_sequence_length - max_new_tokens` tokens and its greedy text is what
        `model.generate(tokenizer(prompt).input_ids)` gives on those tokens.

        Args:
            sequence_length: int or None. Encoders: truncate to this many tokens ([CLS] and
                [SEP] included); defaults to the pooling's `max_sequence_length`, else the
                model's `max_sequence_length` (and never more than the model's). GPT-2: the
                training block length; defaults to the model's `max_sequence_length`.

        Returns:
            A `ClassifierPreprocessor` or `CausalLMPreprocessor` with the checkpoint's
            tokenizer and special tokens. The pooling's `lowercase_input` is not part of it:
            `encode` lower-cases first.

        Raises:
            ValueError: the checkpoint has no tokenizer, or `sequence_length` is out of range.
        """
        if self.tokenizer is None:
            files = (
                "vocab.json + merges.txt nor a ByteLevel BPE tokenizer.json"
                if self.architecture == "gpt2"
                else "vocab.txt nor a WordPiece tokenizer.json"
            )
            raise ValueError(
                f"This {self.architecture} checkpoint has no tokenizer here ({self.folder} has "
                f"neither {files}). Tokenize with the checkpoint's own tokenizer and pass token "
                "ids to `.model`."
            )
        maximum = self.backbone.max_sequence_length
        if not self.is_encoder:
            limit = sequence_length or maximum
            if not 1 <= limit <= maximum:
                raise ValueError(
                    f"`sequence_length` must be in [1, {maximum}] (the model's "
                    f"max_sequence_length). Received: {sequence_length}"
                )
            return CausalLMPreprocessor(
                self.tokenizer, limit, end_token=self.end_token, start_token=None
            )
        limit = sequence_length or (self.pooling and self.pooling.max_sequence_length)
        limit = min(limit or maximum, maximum)
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
        """Tokenize texts into the padded encoder inputs `[CLS] tokens [SEP] [PAD]...`.

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
        if self.tokenizer is not None and not self.is_encoder:
            raise ValueError(
                f"`encode` frames encoder inputs; this is a {self.architecture} model: tokenize "
                "with `.tokenizer(texts)`, or generate with `make_preprocessor()`."
            )
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
