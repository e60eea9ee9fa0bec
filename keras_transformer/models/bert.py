"""BERT-style models: a bidirectional encoder backbone, a masked LM and a classifier."""

import keras
from keras import ops

from keras_transformer.layers import (
    ClassificationHead,
    Dropout,
    LayerNormalization,
    MaskedLMHead,
    PositionEmbedding,
    TokenEmbedding,
    TransformerEncoderBlock,
    default_initializer,
)
from keras_transformer.layers.pooling import check_pooling, pool
from keras_transformer.models.backbone import (
    Backbone,
    InferenceMode,
    OptionalSegmentIds,
    Task,
)
from keras_transformer.models.sizes import check_sizes
from keras_transformer.training.optimizers import AdamW


class SegmentEmbedding(keras.layers.Layer):
    """Segment (token type) embedding; `segment_ids=None` means segment 0 everywhere."""

    def __init__(self, num_segments, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = num_segments
        self.hidden_dim = hidden_dim

    def build(self, inputs_shape, segment_ids_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_segments, self.hidden_dim),
            initializer=default_initializer(),
        )
        self.built = True

    def call(self, inputs, segment_ids=None):
        table = ops.cast(self.embeddings, self.compute_dtype)
        if segment_ids is None:
            return inputs + table[0]
        return inputs + ops.take(table, ops.cast(segment_ids, "int32"), axis=0)


def bert_inputs():
    """The named inputs of BERT-style models: token_ids, segment_ids (optional), padding_mask."""
    return {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "segment_ids": keras.Input(shape=(None,), dtype="int32", name="segment_ids", optional=True),
        "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
    }


@keras.saving.register_keras_serializable(package="keras_transformer")
class BertBackbone(OptionalSegmentIds, Backbone):
    """A BERT-style bidirectional Transformer encoder.

    Token + learned position + segment embeddings, layer norm and dropout, then `num_layers`
    post-norm `TransformerEncoderBlock`s. Returns the contextual token vectors and a pooled
    sentence vector (`tanh(Dense(h_[CLS]))`, BERT's pooler).

    Inputs are a dict: `"token_ids"` int (B, T); `"padding_mask"` (B, T), 1/true at real tokens
    (padding never changes the outputs at real positions); `"segment_ids"` int (B, T), optional
    (all 0 when left out).

    Args:
        vocabulary_size: int. Size of the token vocabulary V.
        num_layers: int. Number of encoder blocks.
        num_heads: int. Attention heads per block; must divide `hidden_dim`.
        hidden_dim: int. Width H.
        intermediate_dim: int. Feed-forward inner width.
        max_sequence_length: int. Longest input. Defaults to `512`.
        num_segments: int. Number of segment types. Defaults to `2`.
        dropout: float. Defaults to `0.1`.
        layer_norm_epsilon: float. Defaults to `1e-12` (BERT).
        activation: str. Feed-forward activation. Defaults to `"gelu"` (exact).
        attention_chunk_size: int or None. Self-attention over longer sequences runs this many
            queries at a time, with the weights recomputed in the backward pass
            (`MultiHeadAttention`): training memory of attention grows with T instead of T².
            Defaults to `None` (plain attention).
        dtype: dtype policy, e.g. `"mixed_bfloat16"`. Defaults to the global policy.

    Returns:
        `{"sequence_output": (B, T, H), "pooled_output": (B, H)}`.

    Example:
    >>> backbone = BertBackbone.from_size("tiny", vocabulary_size=1000)
    >>> out = backbone({"token_ids": np.ones((2, 8), "int32"),
    ...                 "padding_mask": np.ones((2, 8), "int32")})
    >>> out["sequence_output"].shape, out["pooled_output"].shape
    (TensorShape([2, 8, 128]), TensorShape([2, 128]))
    """

    CONFIG_KEYS = (
        "vocabulary_size",
        "num_layers",
        "num_heads",
        "hidden_dim",
        "intermediate_dim",
        "max_sequence_length",
        "num_segments",
        "dropout",
        "layer_norm_epsilon",
        "activation",
        "attention_chunk_size",
    )

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.1,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        attention_chunk_size=None,
        dtype=None,
        **kwargs,
    ):
        check_sizes(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            max_sequence_length=max_sequence_length,
            num_segments=num_segments,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
        )
        # === Layers ===
        self.token_embedding = TokenEmbedding(
            vocabulary_size, hidden_dim, dtype=dtype, name="token_embedding"
        )
        self.position_embedding = PositionEmbedding(
            max_sequence_length, dtype=dtype, name="position_embedding"
        )
        self.segment_embedding = SegmentEmbedding(
            num_segments, hidden_dim, dtype=dtype, name="segment_embedding"
        )
        self.embeddings_norm = LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_norm"
        )
        self.embeddings_dropout = Dropout(dropout, dtype=dtype)
        self.transformer_blocks = [
            TransformerEncoderBlock(
                num_heads,
                intermediate_dim,
                dropout=dropout,
                activation=activation,
                layer_norm_epsilon=layer_norm_epsilon,
                attention_chunk_size=attention_chunk_size,
                normalize_first=False,
                dtype=dtype,
                name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooler = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=default_initializer(),
            dtype=dtype,
            name="pooler",
        )

        # === Functional model ===
        inputs = bert_inputs()
        x = self.token_embedding(inputs["token_ids"])  # (B, T, H)
        x = x + self.position_embedding(x)
        x = self.segment_embedding(x, inputs["segment_ids"])
        x = self.embeddings_dropout(self.embeddings_norm(x))
        for block in self.transformer_blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        pooled = self.pooler(x[:, 0, :])  # (B, H), from the first ([CLS]) token
        super().__init__(
            inputs=inputs,
            outputs={"sequence_output": x, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.attention_chunk_size = attention_chunk_size


def masked_lm_loss():
    """Sparse categorical cross-entropy on logits (masked positions weighted by sample weight)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@keras.saving.register_keras_serializable(package="keras_transformer")
class BertMaskedLM(OptionalSegmentIds, Task):
    """Masked-language-model pretraining task: a `BertBackbone` and a tied `MaskedLMHead`.

    Inputs: the backbone's dict plus `"mask_positions"` int (B, P), the positions whose tokens
    are predicted. Targets: the original ids (B, P); sample weights (B, P): 1 for real
    predictions, 0 for padding in `mask_positions`.

    The backbone's pooler is not on the path to the loss: the task leaves it out of its
    trainable weights (`Task.unused_layers`), so `fit` does not update it and prints no
    "Gradients do not exist" warning for it. It is still saved, loaded and imported with the
    backbone, and a `BertClassifier` built on the same backbone trains it.

    Args:
        backbone: `BertBackbone`.

    Returns:
        (B, P, V) logits.

    Example:
    >>> model = BertMaskedLM(BertBackbone.from_size("tiny", vocabulary_size=1000))
    >>> model.compile()            # AdamW + from-logits cross-entropy + accuracy
    >>> model.fit(dataset)         # (x, mask_ids, mask_weights) batches
    """

    def __init__(self, backbone, **kwargs):
        inputs = {
            **bert_inputs(),
            "mask_positions": keras.Input(shape=(None,), dtype="int32", name="mask_positions"),
        }
        self.masked_lm_head = MaskedLMHead(
            backbone.vocabulary_size,
            token_embedding=backbone.token_embedding,
            activation=backbone.activation,
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            dtype=backbone.dtype_policy,
            name="masked_lm_head",
        )
        backbone_inputs = {k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        sequence = backbone(backbone_inputs)["sequence_output"]
        logits = self.masked_lm_head(sequence, inputs["mask_positions"])
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone

    def unused_layers(self):
        """The pooler: the masked-LM loss never reaches it."""
        backbone = getattr(self, "backbone", None)  # not set yet while the model is built
        return () if backbone is None else (backbone.pooler,)

    def compile(self, optimizer="auto", loss="auto", weighted_metrics="auto", **kwargs):
        """Compiles with AdamW (lr 5e-5, weight decay 0.01), from-logits cross-entropy and
        accuracy weighted by the sample weights, unless given."""
        if optimizer == "auto":
            optimizer = AdamW(5e-5, weight_decay=0.01)
        if loss == "auto":
            loss = masked_lm_loss()
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics, **kwargs)


@keras.saving.register_keras_serializable(package="keras_transformer")
class BertClassifier(OptionalSegmentIds, Task):
    """Sequence classification: a `BertBackbone` and a `ClassificationHead` on a pooled vector.

    Args:
        backbone: `BertBackbone`.
        num_classes: int. Number of classes.
        pooling: str. One of `keras_transformer.layers.pooling.POOLINGS`: `"pooler"` (BERT's
            tanh pooler over `[CLS]`), `"cls"` (the raw `[CLS]` vector) or `"mean"` (the mean
            of the token vectors over real tokens). Under `"cls"` and `"mean"` the pooler is
            left out of the trainable weights (see `Task.unused_layers`). Defaults to
            `"pooler"`. (Models saved before 2026-12-02 named the pooler `"cls"`; they load
            with `"pooler"`.)
        dropout: float. Dropout before the head. Defaults to `0.1`.
        hidden_dim: int or `None`. Optional hidden layer in the head. Defaults to `None`.
        freeze_backbone: bool. Transfer learning: the backbone's weights are frozen
            (`backbone.trainable = False`) and it always runs in inference mode (no dropout,
            even inside `fit`), so only the head learns. Defaults to `False`.

    Returns:
        (B, num_classes) logits (float32).
    """

    CONFIG_KEYS = ("num_classes", "pooling", "dropout", "hidden_dim", "freeze_backbone")
    # Version 2: "cls" is the raw [CLS] vector and "pooler" BERT's pooler (version 1 called
    # the pooler "cls").
    POOLING_NAMES_VERSION = 2

    def __init__(
        self,
        backbone,
        num_classes,
        pooling="pooler",
        dropout=0.1,
        hidden_dim=None,
        freeze_backbone=False,
        **kwargs,
    ):
        check_pooling(pooling)
        inputs = bert_inputs()
        self.classification_head = ClassificationHead(
            num_classes,
            hidden_dim=hidden_dim,
            dropout=dropout,
            dtype=backbone.dtype_policy,
            name="classification_head",
        )
        if freeze_backbone:
            backbone.trainable = False
            outputs = InferenceMode(backbone, name="frozen_backbone")(inputs)
        else:
            outputs = backbone(inputs)
        pooled = pool(outputs, inputs["padding_mask"], pooling)
        logits = self.classification_head(pooled)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout
        self.hidden_dim = hidden_dim
        self.freeze_backbone = freeze_backbone

    def unused_layers(self):
        """The pooler unless pooling is `"pooler"`: the classification loss never reaches it."""
        backbone = getattr(self, "backbone", None)  # not set yet while the model is built
        if backbone is None or getattr(self, "pooling", "pooler") == "pooler":
            return ()
        return (backbone.pooler,)

    def get_config(self):
        return {**super().get_config(), "pooling_names_version": self.POOLING_NAMES_VERSION}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.pop("pooling_names_version", 1) < 2 and config.get("pooling") == "cls":
            config["pooling"] = "pooler"  # saved when "cls" named the pooler
        return super().from_config(config)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Compiles with AdamW (lr 5e-5), from-logits cross-entropy and accuracy, unless given."""
        if optimizer == "auto":
            optimizer = AdamW(5e-5, weight_decay=0.01)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
