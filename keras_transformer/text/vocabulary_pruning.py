"""Prune a WordPiece vocabulary, and a BERT model's embedding, to the tokens a corpus uses.

`prune_vocabulary` tokenizes a corpus with the full tokenizer and keeps the ids that occur,
the special tokens and (by default) every single-character piece, in the vocabulary's
original order. `prune_backbone` and `prune_masked_lm` build the matching smaller models: all
weights copied, vocabulary-sized weights restricted to the kept rows. Text the corpus holds
tokenizes to the same pieces, and the pruned model gives the same outputs on it.
"""

import dataclasses
import re

import numpy as np
import tensorflow as tf

from keras_transformer.text.wordpiece import WordPieceTokenizer

_UNUSED_PATTERN = re.compile(r"\[unused\d+\]")
_BRACKETED_PATTERN = re.compile(r"\[[^\[\]]+\]")
_BATCH_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class PrunedVocabulary:
    """A vocabulary pruned from a larger one.

    Attributes:
        vocabulary: list of str. The kept tokens, in the original vocabulary's order.
        kept_ids: int64 `np.ndarray` (V',). The old id of each kept token, increasing.
        old_to_new: int64 `np.ndarray` (V,). The new id of each old id, `-1` if dropped.
        tokenizer_config: dict. The full tokenizer's config, less its vocabulary.
    """

    vocabulary: list
    kept_ids: np.ndarray
    old_to_new: np.ndarray
    tokenizer_config: dict

    def tokenizer(self):
        """Build the pruned `WordPieceTokenizer`: the full one's settings, the kept vocabulary.

        Returns:
            `WordPieceTokenizer`.
        """
        return WordPieceTokenizer(self.vocabulary, **self.tokenizer_config)


def default_special_tokens(vocabulary, oov_token="[UNK]"):
    """The special tokens of a BERT vocabulary: `oov_token` and every bracketed token.

    A bracketed token is one of the form `[...]` (`[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`, ...);
    BERT's placeholder tokens `[unusedN]` are not special and are left out.

    Args:
        vocabulary: list of str.
        oov_token: str. Always included.

    Returns:
        list of str, in vocabulary order.
    """
    return [
        token
        for token in vocabulary
        if token == oov_token
        or (_BRACKETED_PATTERN.fullmatch(token) and not _UNUSED_PATTERN.fullmatch(token))
    ]


def _corpus_dataset(texts):
    if isinstance(texts, tf.data.Dataset):
        return (
            texts.rebatch(_BATCH_SIZE)
            if texts.element_spec.shape.rank
            else texts.batch(_BATCH_SIZE)
        )
    if isinstance(texts, str):
        raise ValueError(
            "`texts` must be a list of strings or a `tf.data.Dataset` of strings, not one "
            "string. Wrap it in a list."
        )
    texts = list(texts)
    return tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(_BATCH_SIZE)


def _occurring_ids(tokenizer, texts):
    """Sorted ids that the tokenizer produces on the corpus; `None` if it holds no text."""
    occurring = np.zeros(len(tokenizer.vocabulary), bool)
    seen_text = False
    for batch in _corpus_dataset(texts).map(lambda x: (x, tokenizer(x))):
        text, ids = batch
        ids = ids.flat_values.numpy() if isinstance(ids, tf.RaggedTensor) else ids.numpy()
        if ids.size:
            occurring[ids] = True
        if not seen_text:
            seen_text = bool(tf.reduce_any(tf.strings.strip(text) != "").numpy())
    return occurring if seen_text else None


def prune_vocabulary(tokenizer, texts, keep_characters=True, special_tokens=None):
    """Prune a WordPiece vocabulary to the tokens a corpus uses, plus special tokens.

    The corpus is tokenized with `tokenizer` itself (batched in TensorFlow), so the kept set
    holds exactly the pieces the full tokenizer gives on it: the corpus tokenizes to the same
    pieces with the pruned tokenizer. With `keep_characters`, every single-character token and
    single-character suffix piece (`"##c"`) is kept as well, so an unseen word whose characters
    the full vocabulary covers still splits into kept pieces instead of becoming `oov_token`.

    Args:
        tokenizer: `WordPieceTokenizer`. The full tokenizer.
        texts: list of str or a `tf.data.Dataset` of strings (scalar or batched).
        keep_characters: bool. Keep all single-character pieces. Defaults to `True`.
        special_tokens: list of str or None. The tokens to keep whatever the corpus; each must
            be in the vocabulary. Defaults to `default_special_tokens` of the vocabulary
            (`oov_token` and bracketed tokens such as `[CLS]`, without `[unusedN]`).
            `oov_token` is always kept.

    Returns:
        `PrunedVocabulary`.

    Raises:
        ValueError: if the corpus holds no text, or a special token is not in the vocabulary.
    """
    vocabulary = list(tokenizer.vocabulary)
    index = {token: i for i, token in enumerate(vocabulary)}
    if special_tokens is None:
        special_tokens = default_special_tokens(vocabulary, tokenizer.oov_token)
    missing = [token for token in special_tokens if token not in index]
    if missing:
        raise ValueError(
            f"Special tokens {missing} are not in the tokenizer's vocabulary, so the pruned "
            "vocabulary cannot keep them. Remove them from `special_tokens` or add them to "
            "the vocabulary."
        )
    keep = _occurring_ids(tokenizer, texts)
    if keep is None:
        raise ValueError(
            "The corpus holds no text (it is empty or every line is blank), so there is "
            "nothing to prune the vocabulary to. Pass the texts the model will see."
        )
    for token in (*special_tokens, tokenizer.oov_token):
        keep[index[token]] = True
    if keep_characters:
        suffix = tokenizer.suffix_indicator
        for i, token in enumerate(vocabulary):
            if len(token) == 1 or (token.startswith(suffix) and len(token) == len(suffix) + 1):
                keep[i] = True
    kept_ids = np.flatnonzero(keep).astype(np.int64)
    old_to_new = np.full(len(vocabulary), -1, np.int64)
    old_to_new[kept_ids] = np.arange(len(kept_ids))
    config = {
        key: getattr(tokenizer, key)
        for key in (
            "sequence_length",
            "lowercase",
            "strip_accents",
            "split_on_cjk",
            "suffix_indicator",
            "oov_token",
            "max_bytes_per_word",
        )
    }
    return PrunedVocabulary(
        vocabulary=[vocabulary[i] for i in kept_ids],
        kept_ids=kept_ids,
        old_to_new=old_to_new,
        tokenizer_config=config,
    )


def _check_size(vocabulary_size, pruned, what):
    if len(pruned.old_to_new) != vocabulary_size:
        raise ValueError(
            f"The {what} has vocabulary_size={vocabulary_size}, but the vocabulary was pruned "
            f"from {len(pruned.old_to_new)} tokens. Prune the vocabulary the model was "
            "trained with."
        )


def _copy_weights(source_layer, target_layer, pruned, vocabulary_weights):
    """Copy weights by position; those in `vocabulary_weights` (by id) keep the kept rows."""
    for source, target in zip(source_layer.weights, target_layer.weights, strict=True):
        value = np.asarray(source.numpy())
        if id(source) in vocabulary_weights:
            value = value[pruned.kept_ids]
        target.assign(value)


def prune_backbone(backbone, pruned):
    """A `BertBackbone` with the pruned vocabulary: same config, kept token-embedding rows.

    Args:
        backbone: `BertBackbone`. Left unchanged.
        pruned: `PrunedVocabulary` pruned from the backbone's vocabulary.

    Returns:
        a new `BertBackbone` of `vocabulary_size=len(pruned.vocabulary)`.

    Raises:
        ValueError: if the backbone's vocabulary size is not the unpruned vocabulary's.
    """
    _check_size(backbone.vocabulary_size, pruned, "backbone")
    config = {**backbone.get_config(), "vocabulary_size": len(pruned.vocabulary)}
    new = type(backbone).from_config(config)
    _copy_weights(backbone, new, pruned, {id(backbone.token_embedding.embeddings)})
    return new


def prune_masked_lm(model, pruned):
    """A `BertMaskedLM` with the pruned vocabulary; its logits are the old ones at `kept_ids`.

    The head is tied to the token embedding, so its only vocabulary-sized weight of its own is
    the output bias, of which the kept entries are copied.

    Args:
        model: `BertMaskedLM`. Left unchanged.
        pruned: `PrunedVocabulary` pruned from the model's vocabulary.

    Returns:
        a new `BertMaskedLM` on `prune_backbone(model.backbone, pruned)`.

    Raises:
        ValueError: if the model's vocabulary size is not the unpruned vocabulary's.
    """
    _check_size(model.backbone.vocabulary_size, pruned, "model")
    backbone = prune_backbone(model.backbone, pruned)
    new = type(model)(backbone)
    # The tied embedding was copied with the backbone; copy only the head's own weights.
    tied = id(model.masked_lm_head.token_embedding.embeddings)
    sources = [w for w in model.masked_lm_head.weights if id(w) != tied]
    targets = [
        w for w in new.masked_lm_head.weights if id(w) != id(backbone.token_embedding.embeddings)
    ]
    for source, target in zip(sources, targets, strict=True):
        value = np.asarray(source.numpy())
        if id(source) == id(model.masked_lm_head.output_bias):
            value = value[pruned.kept_ids]
        target.assign(value)
    return new
