"""Serving modules for BERT-style models: classifier, encoder and masked LM signatures.

Each module is a `tf.Module` holding the Keras model and the task's preprocessor (from
`keras_transformer.preprocessing`: the same object `tf.data` maps for training, so the served
graph frames text exactly as training did), with one `tf.function` per signature (raw strings
in, or token ids in). `signatures()` gives them by signature name for `tf.saved_model.save`;
`warmup_inputs(texts)` gives sample requests. Models run in inference mode (`training=False`).
Text batches are cut to their longest packed row (`pad_to_longest`): the values on real
positions are those of the training pipeline, padded to `sequence_length`.

- `BertClassifier`: `serving_default` (input `text`; with a 2-segment preprocessor also
  `text_pair`) -> label, probabilities, logits.
- `BertBackbone`: `embed` (input `text`; also `serving_default`) -> token_embeddings,
  padding_mask, sentence_embedding.
- `BertMaskedLM`: `fill_mask` (input `text`; also `serving_default`) -> top_tokens, top_ids,
  top_scores, mask_positions, num_masks.
- each: `from_token_ids` (inputs `token_ids`, `padding_mask`) -> the same outputs.
- each with a preprocessor: `preprocess` (the text signature's inputs) -> `token_ids`,
  `segment_ids`, `padding_mask` int32 (B, W): exactly the tensors the model is given, for
  clients that check train/serve parity or tokenize on one server and predict on another.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.layers.pooling import check_pooling, pool
from keras_transformer.preprocessing import (
    ClassifierPreprocessor,
    MaskedLMPreprocessor,
    Preprocessor,
)
from keras_transformer.preprocessing.preprocessor import has_token
from keras_transformer.text.vocabulary import CLS_TOKEN, MASK_TOKEN, PAD_TOKEN, SEP_TOKEN

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")
TEXT_PAIR_SPEC = tf.TensorSpec([None], tf.string, name="text_pair")
TOKEN_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="token_ids")
PADDING_MASK_SPEC = tf.TensorSpec([None, None], tf.int32, name="padding_mask")
SAMPLE_TEXTS = (
    "A gripping story, beautifully told.",
    "",
    "Terrible. I want my two hours back!",
)


class Untracked:
    """Holds an object out of SavedModel tracking."""

    def __init__(self, value):
        self.value = value


class ServingModule(tf.Module):
    """Base: a model, a tokenizer (or `None`: token-id signatures only) and signatures.

    The Keras model is held out of SavedModel tracking; its variables are tracked directly,
    as the `tf.Variable`s Keras 3 wraps. Tracked through the Keras `Variable` wrappers
    instead, the graph that TF1 `Session`s (TF Serving's C++ loader) restore would hold each
    weight twice, once restored and once, as read by the signatures, never initialized:
    "Could not find variable ...". Tracked both ways, every weight would be stored twice
    (as in keras issue 23553).
    """

    # Name of the raw-text signature; also exported as `serving_default`.
    TEXT_SIGNATURE = "serving_default"

    @property
    def model(self):
        """The Keras model served."""
        return self._held_model.value

    def hold_model(self, model):
        """Keeps `model` untracked and tracks its variables (each once)."""
        self._held_model = Untracked(model)
        seen, variables = set(), []
        for variable in model.variables:
            value = getattr(variable, "value", variable)
            if id(value) not in seen:
                seen.add(id(value))
                variables.append(value)
        self.model_variables = variables

    def signatures(self):
        """`{signature name: tf.function}` for `tf.saved_model.save`."""
        signatures = {"from_token_ids": self.from_token_ids}
        if self.tokenizer is not None:
            signatures[self.TEXT_SIGNATURE] = self.serve_text
            signatures["serving_default"] = self.serve_text
            if getattr(self, "serve_preprocess", None) is not None:
                signatures["preprocess"] = self.serve_preprocess
        else:
            signatures["serving_default"] = self.from_token_ids
        return signatures

    def warmup_inputs(self, texts=SAMPLE_TEXTS):
        """`[(signature name, {input name: numpy array})]`: one sample request a signature."""
        texts = np.array([t.encode("utf-8") for t in texts], dtype=object)
        requests = []
        if self.tokenizer is not None:
            requests.append((self.TEXT_SIGNATURE, {"text": texts}))
        requests.append(("from_token_ids", self.sample_token_ids(texts)))
        return requests

    def sample_token_ids(self, texts):
        if self.tokenizer is None:
            ids = np.array([[self.cls_id or 0, self.sep_id or 0]], "int32")
            return {"token_ids": ids, "padding_mask": np.ones_like(ids)}
        token_ids, padding_mask = self.pack(tf.constant(texts))
        return {"token_ids": token_ids.numpy(), "padding_mask": padding_mask.numpy()}


def special_token_names(tokenizer, special_ids):
    """`special_ids` (`cls_id`, `sep_id`, `pad_id`, `mask_id`) -> the preprocessors' token names.

    Ids left out take BERT's names (`[PAD]` only if the vocabulary has it: else padding is id 0).
    """
    special_ids = dict(special_ids or {})
    vocabulary = tokenizer.get_vocabulary()
    names = {"cls_token": CLS_TOKEN, "sep_token": SEP_TOKEN}
    names["pad_token"] = PAD_TOKEN if has_token(tokenizer, PAD_TOKEN) else None
    names["mask_token"] = MASK_TOKEN
    for key, role in (("cls_id", "cls_token"), ("sep_id", "sep_token"), ("mask_id", "mask_token")):
        if special_ids.get(key) is not None:
            names[role] = vocabulary[special_ids[key]]
    if "pad_id" in special_ids:
        pad_id = special_ids["pad_id"]
        names["pad_token"] = None if pad_id is None else vocabulary[pad_id]
    return names


class _BertModule(ServingModule):
    """Shared set-up of BERT-style modules: the preprocessor, special ids, input checks.

    The preprocessor is the one given, or one built from the tokenizer: truncation at
    `max_sequence_length` (defaults to the model's), special tokens from `special_ids` or
    BERT's names. A preprocessor longer than the model's `max_sequence_length` is refused.
    """

    PREPROCESSOR_CLASS = ClassifierPreprocessor
    # Set to False to serve `sequence_length`-wide batches (as keras-hub's preprocessors do).
    pad_to_longest = True

    def __init__(self, model, backbone, tokenizer, max_sequence_length, special_ids, name):
        super().__init__(name=name)
        self.hold_model(model)
        limit = backbone.max_sequence_length
        if isinstance(tokenizer, Preprocessor) and not isinstance(
            tokenizer, self.PREPROCESSOR_CLASS
        ):
            raise ValueError(
                f"{type(self).__name__} takes a {self.PREPROCESSOR_CLASS.__name__} (or a "
                f"tokenizer). Received: {type(tokenizer).__name__}"
            )
        if isinstance(tokenizer, self.PREPROCESSOR_CLASS):
            preprocessor = tokenizer
            if max_sequence_length and max_sequence_length != preprocessor.sequence_length:
                preprocessor = type(preprocessor).from_config(
                    {**preprocessor.get_config(), "sequence_length": max_sequence_length}
                )
        elif tokenizer is not None:
            sequence_length = min(max_sequence_length or limit, limit)
            if sequence_length < 3:
                raise ValueError(
                    f"`max_sequence_length` must be at least 3 ([CLS] x [SEP]). Received: "
                    f"{max_sequence_length}"
                )
            names = special_token_names(tokenizer, special_ids)
            if self.PREPROCESSOR_CLASS is ClassifierPreprocessor:
                names.pop("mask_token")
            preprocessor = self.PREPROCESSOR_CLASS(tokenizer, sequence_length, **names)
        else:
            preprocessor = None
        if preprocessor is not None and preprocessor.sequence_length > limit:
            raise ValueError(
                f"The preprocessor's sequence_length={preprocessor.sequence_length} exceeds the "
                f"model's max_sequence_length={limit}. Use a preprocessor of at most {limit}."
            )
        self.preprocessor = preprocessor
        self.tokenizer = None if preprocessor is None else preprocessor.tokenizer
        if preprocessor is not None:
            self.max_sequence_length = preprocessor.sequence_length
            self.cls_id = preprocessor.cls_token_id
            self.sep_id = preprocessor.sep_token_id
            self.pad_id = preprocessor.pad_token_id
        else:
            self.max_sequence_length = min(max_sequence_length or limit, limit)
            special_ids = dict(special_ids or {})
            self.cls_id = special_ids.get("cls_id")
            self.sep_id = special_ids.get("sep_id")
            self.pad_id = special_ids.get("pad_id", 0)
        self.vocabulary_size = backbone.vocabulary_size
        self.num_segments = getattr(preprocessor, "num_segments", 1)

    def text_specs(self):
        """The text signature's input specs: `text` (and `text_pair` for 2 segments)."""
        return [TEXT_SPEC, TEXT_PAIR_SPEC][: self.num_segments]

    def make_text_functions(self, serve_text):
        """Sets `serve_text` and `preprocess` as `tf.function`s over the text inputs."""
        if self.tokenizer is None:
            return
        self.serve_text = tf.function(serve_text, input_signature=self.text_specs())
        self.serve_preprocess = tf.function(self._preprocess, input_signature=self.text_specs())

    def preprocess(self, *texts):
        """Texts -> `{"token_ids", "segment_ids", "padding_mask"}` int32 (B, W), as served."""
        segments = texts[0] if len(texts) == 1 else tuple(texts)
        x = self.preprocessor(segments, pad_to_longest=self.pad_to_longest)
        return {name: tf.cast(value, tf.int32) for name, value in x.items()}

    def _preprocess(self, *texts):
        return self.preprocess(*texts)

    def pack(self, *texts):
        """Texts -> `(token_ids, padding_mask)` int32 (B, W): the model's text inputs."""
        x = self.preprocess(*texts)
        return x["token_ids"], x["padding_mask"]

    def warmup_inputs(self, texts=SAMPLE_TEXTS):
        requests = super().warmup_inputs(texts)
        if self.num_segments == 2:
            for _, inputs in requests:
                if "text" in inputs:
                    inputs["text_pair"] = inputs["text"][::-1]
        return requests

    def sample_token_ids(self, texts):
        if self.tokenizer is None or self.num_segments == 1:
            return super().sample_token_ids(texts)
        token_ids, padding_mask = self.pack(tf.constant(texts), tf.constant(texts[::-1]))
        return {"token_ids": token_ids.numpy(), "padding_mask": padding_mask.numpy()}

    def check_ids(self, token_ids, padding_mask):
        """Asserts (in the graph) that ids and mask agree and fit the model."""
        checks = [
            tf.debugging.assert_equal(
                tf.shape(token_ids),
                tf.shape(padding_mask),
                message="token_ids and padding_mask must have the same shape (B, T).",
            ),
            tf.debugging.assert_less_equal(
                tf.shape(token_ids)[1],
                self.max_sequence_length,
                message=f"Sequences are limited to {self.max_sequence_length} tokens.",
            ),
            tf.debugging.assert_non_negative(token_ids, message="token_ids must be >= 0."),
            tf.debugging.assert_less(
                token_ids,
                self.vocabulary_size,
                message=f"token_ids must be < the vocabulary size {self.vocabulary_size}.",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(token_ids), tf.identity(padding_mask)


class ClassifierModule(_BertModule):
    """`BertClassifier` signatures: `serving_default` (text) and `from_token_ids`.

    Outputs: `label` string (B,) (the most likely class name), `probabilities` float32
    (B, C) (softmax), `logits` float32 (B, C).

    With a 2-segment preprocessor (text pairs), the text signature takes `text` and
    `text_pair`.

    Args:
        model: `BertClassifier`.
        tokenizer: a `ClassifierPreprocessor` (the run's: served text is framed as it
            trained), a tokenizer layer (a default preprocessor is built), or None.
        class_names: list of str or None. Names for `label`; defaults to `"0"`, `"1"`, ...
        max_sequence_length: int or None. Truncation length; defaults to the preprocessor's
            `sequence_length`, or for a tokenizer the model's `max_sequence_length`.
        special_ids: dict or None. `cls_id`, `sep_id`, `pad_id`; defaults from the vocabulary
            (for a tokenizer).
    """

    TEXT_SIGNATURE = "serving_default"

    def __init__(
        self, model, tokenizer, class_names=None, max_sequence_length=None, special_ids=None
    ):
        super().__init__(
            model, model.backbone, tokenizer, max_sequence_length, special_ids, "classifier"
        )
        num_classes = model.num_classes
        if class_names is None:
            class_names = [str(i) for i in range(num_classes)]
        class_names = [str(name) for name in class_names]
        if len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` must name the model's {num_classes} classes. Received "
                f"{len(class_names)}: {class_names}"
            )
        self.class_names = class_names
        self.make_text_functions(self._serve_text)
        self.from_token_ids = tf.function(
            self._from_token_ids, input_signature=[TOKEN_IDS_SPEC, PADDING_MASK_SPEC]
        )

    def _serve_text(self, *texts):
        return self._classify(*self.pack(*texts))

    def _from_token_ids(self, token_ids, padding_mask):
        return self._classify(*self.check_ids(token_ids, padding_mask))

    def _classify(self, token_ids, padding_mask):
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        logits = tf.cast(self.model(inputs, training=False), tf.float32)  # (B, C)
        labels = tf.gather(tf.constant(self.class_names), tf.argmax(logits, axis=-1))
        return {"label": labels, "probabilities": tf.nn.softmax(logits), "logits": logits}


class EncoderModule(_BertModule):
    """`BertBackbone` signatures: `embed` (text; also `serving_default`) and `from_token_ids`.

    Outputs: `token_embeddings` float32 (B, T, H) (padded rows: see `padding_mask`),
    `padding_mask` int32 (B, T) (text signature only), `sentence_embedding` float32 (B, E).

    Args:
        backbone: `BertBackbone`.
        tokenizer: a `ClassifierPreprocessor` (BERT framing), a tokenizer layer, or None.
        pooling: `"mean"` (over real tokens), `"cls"` (the `[CLS]` vector), `"pooler"` (BERT's
            tanh pooler) or a callable `(sequence (B, T, H), padding_mask (B, T)) -> (B, E)`
            such as `keras_transformer.pretrained.SentencePooling`. Defaults to `"mean"`.
        max_sequence_length, special_ids: as in `ClassifierModule`.
    """

    TEXT_SIGNATURE = "embed"

    def __init__(
        self, backbone, tokenizer, pooling="mean", max_sequence_length=None, special_ids=None
    ):
        super().__init__(backbone, backbone, tokenizer, max_sequence_length, special_ids, "encoder")
        if not callable(pooling):
            check_pooling(pooling)
        self.pooling = pooling
        self.make_text_functions(self._serve_text)
        self.from_token_ids = tf.function(
            self._from_token_ids, input_signature=[TOKEN_IDS_SPEC, PADDING_MASK_SPEC]
        )

    def _serve_text(self, *texts):
        token_ids, padding_mask = self.pack(*texts)
        return {**self._embed(token_ids, padding_mask), "padding_mask": padding_mask}

    def _from_token_ids(self, token_ids, padding_mask):
        return self._embed(*self.check_ids(token_ids, padding_mask))

    def _embed(self, token_ids, padding_mask):
        outputs = self.model({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)
        sequence = tf.cast(outputs["sequence_output"], tf.float32)  # (B, T, H)
        if callable(self.pooling):
            sentence = tf.cast(self.pooling(sequence, padding_mask), tf.float32)
        else:  # the names of keras_transformer.layers.pooling, computed in float32
            float_outputs = {"sequence_output": sequence, "pooled_output": outputs["pooled_output"]}
            sentence = tf.cast(pool(float_outputs, padding_mask, self.pooling), tf.float32)
        return {"token_embeddings": sequence, "sentence_embedding": sentence}


class MaskedLMModule(_BertModule):
    """`BertMaskedLM` signatures: `fill_mask` (text; also `serving_default`), `from_token_ids`.

    `fill_mask` takes texts holding the literal `[MASK]` token (any number, e.g. `"Paris is
    the [MASK] of France."`) and returns for each mask, in order, the `top_k` most likely
    tokens. Masks cut off by truncation are dropped. Outputs, with M the most masks of a text
    in the batch (rows with fewer are padded with `""`, id 0, score 0):
    `top_tokens` string (B, M, K), `top_ids` int32 (B, M, K), `top_scores` float32 (B, M, K)
    (softmax probabilities), `mask_positions` int32 (B, M) (token positions, `[CLS]` = 0),
    `num_masks` int32 (B,).

    `from_token_ids` takes `token_ids`, `padding_mask` and `mask_positions` int32 (B, P) and
    returns `top_tokens`, `top_ids`, `top_scores` (B, P, K).

    Args:
        model: `BertMaskedLM`.
        tokenizer: a `MaskedLMPreprocessor` (its `fill_mask_preprocess` frames the texts), a
            tokenizer layer (a default preprocessor is built), or None.
        top_k: int. Candidates per mask. Defaults to `5`.
        max_sequence_length, special_ids: as in `ClassifierModule`; `special_ids` may also
            give `mask_id`.
    """

    TEXT_SIGNATURE = "fill_mask"
    PREPROCESSOR_CLASS = MaskedLMPreprocessor

    def __init__(self, model, tokenizer, top_k=5, max_sequence_length=None, special_ids=None):
        super().__init__(
            model, model.backbone, tokenizer, max_sequence_length, special_ids, "masked_lm"
        )
        if not isinstance(top_k, int) or not 0 < top_k <= self.vocabulary_size:
            raise ValueError(
                f"`top_k` must be an int in [1, {self.vocabulary_size}]. Received: {top_k!r}"
            )
        self.top_k = top_k
        if self.preprocessor is not None:
            self.mask_id = self.preprocessor.mask_token_id
            self.mask_token = self.preprocessor.mask_token
            self.vocabulary = list(self.tokenizer.get_vocabulary())
        else:
            self.mask_id = (special_ids or {}).get("mask_id")
            self.vocabulary = [str(i) for i in range(self.vocabulary_size)]
        self.make_text_functions(self._serve_text)
        positions_spec = tf.TensorSpec([None, None], tf.int32, name="mask_positions")
        self.from_token_ids = tf.function(
            self._from_token_ids,
            input_signature=[TOKEN_IDS_SPEC, PADDING_MASK_SPEC, positions_spec],
        )

    def preprocess(self, text):
        """Texts with `[MASK]` markers -> `{"token_ids", "segment_ids", "padding_mask"}` int32."""
        x = self.preprocessor.fill_mask_preprocess(text, pad_to_longest=self.pad_to_longest)
        return {name: tf.cast(value, tf.int32) for name, value in x.items()}

    def sample_token_ids(self, texts):
        inputs = super().sample_token_ids(texts)
        inputs["mask_positions"] = np.ones((len(inputs["token_ids"]), 1), "int32")
        return inputs

    def warmup_inputs(self, texts=SAMPLE_TEXTS):
        if self.tokenizer is not None:
            texts = [f"{text} {self.mask_token}" for text in texts]
        return super().warmup_inputs(texts)

    def _serve_text(self, text):
        token_ids, padding_mask = self.pack(text)  # (B, T)
        is_mask = tf.logical_and(tf.equal(token_ids, self.mask_id), padding_mask > 0)
        positions = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(tf.shape(token_ids)[1]), tf.shape(token_ids)), is_mask
        )
        num_masks = tf.cast(positions.row_lengths(), tf.int32)
        mask_positions = positions.to_tensor()  # (B, M), 0-padded
        outputs = self._top_k(token_ids, padding_mask, mask_positions)
        valid = tf.sequence_mask(num_masks, tf.shape(mask_positions)[1])[:, :, tf.newaxis]
        valid = tf.broadcast_to(valid, tf.shape(outputs["top_ids"]))
        return {
            "top_tokens": tf.where(valid, outputs["top_tokens"], ""),
            "top_ids": tf.where(valid, outputs["top_ids"], 0),
            "top_scores": tf.where(valid, outputs["top_scores"], 0.0),
            "mask_positions": mask_positions,
            "num_masks": num_masks,
        }

    def _from_token_ids(self, token_ids, padding_mask, mask_positions):
        token_ids, padding_mask = self.check_ids(token_ids, padding_mask)
        check = tf.debugging.assert_less(
            mask_positions,
            tf.shape(token_ids)[1],
            message="mask_positions must be < the sequence length T.",
        )
        with tf.control_dependencies([check]):
            mask_positions = tf.identity(mask_positions)
        return self._top_k(token_ids, padding_mask, mask_positions)

    def _top_k(self, token_ids, padding_mask, mask_positions):
        inputs = {
            "token_ids": token_ids,
            "padding_mask": padding_mask,
            "mask_positions": mask_positions,
        }
        logits = tf.cast(self.model(inputs, training=False), tf.float32)  # (B, P, V)
        scores, ids = tf.math.top_k(tf.nn.softmax(logits), k=self.top_k)  # (B, P, K)
        tokens = tf.gather(tf.constant(self.vocabulary), ids)
        return {"top_tokens": tokens, "top_ids": ids, "top_scores": scores}
