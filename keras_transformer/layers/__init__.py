"""Transformer building blocks as Keras 3 layers.

Every layer is registered serializable under the package `keras_transformer`, and its
`get_config` returns exactly its constructor arguments.
"""

from keras_transformer.layers.classification_head import ClassificationHead
from keras_transformer.layers.dropout import Dropout
from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.initializers import clone_initializer, default_initializer
from keras_transformer.layers.language_model_head import LanguageModelHead
from keras_transformer.layers.layer_normalization import LayerNormalization
from keras_transformer.layers.masked_lm_head import MaskedLMHead
from keras_transformer.layers.masks import (
    compute_causal_mask,
    merge_masks,
    padding_to_attention_mask,
)
from keras_transformer.layers.multi_head_attention import MultiHeadAttention
from keras_transformer.layers.position_embedding import PositionEmbedding
from keras_transformer.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from keras_transformer.layers.token_embedding import TokenEmbedding
from keras_transformer.layers.transformer_decoder_block import TransformerDecoderBlock
from keras_transformer.layers.transformer_encoder_block import TransformerEncoderBlock

__all__ = [
    "ClassificationHead",
    "Dropout",
    "FeedForward",
    "LanguageModelHead",
    "LayerNormalization",
    "MaskedLMHead",
    "MultiHeadAttention",
    "PositionEmbedding",
    "SinusoidalPositionEncoding",
    "TokenEmbedding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "clone_initializer",
    "compute_causal_mask",
    "default_initializer",
    "merge_masks",
    "padding_to_attention_mask",
]
