"""The tokens of a `pretrain` run: characters, WordPiece or byte-level BPE, learned or given.

- `char`: the characters of the training split (`CharacterTokenizer.from_text`).
- `wordpiece`: a given `vocab.txt`, or a vocabulary learned from the training split.
- `bpe`: GPT-2's byte-level BPE (`BytePairTokenizer`). Learned from the training split
  (`--vocabulary-size` tokens: `<|endoftext|>`, the 256 byte symbols and the merges), or given
  as `--vocabulary vocab.json --merges merges.txt` (GPT-2 / Hugging Face files; a
  `<|endoftext|>` of the vocabulary is a special token, as in `transformers`' `GPT2Tokenizer`)
  or `--vocabulary tokenizer.json` (Hugging Face, ByteLevel BPE; its added tokens are the
  special ones). Given files are used as they are: the ids are theirs.

`<|endoftext|>`, when it is a special token of the tokenizer, ends each text of the training
stream and starts each prompt (`causal_lm_tokens`); without it the texts run on one into the
next and prompts have no start token, and a note says so.
"""

import json
import os
import time

import tensorflow as tf

from keras_transformer.text import (
    BytePairTokenizer,
    CharacterTokenizer,
    WordPieceTokenizer,
    train_byte_pair_vocabulary,
)
from keras_transformer.text.vocabulary import GPT2_END_TOKEN, train_word_piece_vocabulary

# How many byte symbols every byte-level BPE vocabulary holds (one per byte value).
BYTE_SYMBOLS = 256


def check_token_settings(config):
    """Refuses token settings that do not go together, before the run starts.

    Reads the given BPE files (to tell a `vocab.json` from a `tokenizer.json`), so that a
    wrong file fails here and not after the corpus is loaded.

    Args:
        config: a `workflows.pretrain.Config`.

    Raises:
        ValueError: `--merges` without `--tokens bpe`; `--vocabulary` with `--tokens char`; a
            BPE file for wordpiece or a non-JSON file (a `vocab.txt`) for bpe; a `vocab.json`
            without `--merges` or a `tokenizer.json` with it; masked LM with bpe; a learned BPE
            smaller than its byte symbols and `<|endoftext|>`.
        FileNotFoundError: a given file does not exist.
    """
    if config.objective == "masked" and config.tokens == "bpe":
        raise ValueError(
            "Masked-LM pretraining needs the [CLS]/[SEP]/[MASK] tokens of a WordPiece "
            "vocabulary, which byte-level BPE has none of: use --tokens wordpiece with "
            "--objective masked, or --objective causal for BPE tokens."
        )
    if config.merges is not None and config.tokens != "bpe":
        raise ValueError(
            f"--merges is a byte-level BPE merges.txt, used with --tokens bpe only. Received "
            f"--tokens {config.tokens} and --merges {config.merges!r}: drop --merges or use "
            "--tokens bpe."
        )
    if config.vocabulary is not None and config.tokens == "char":
        raise ValueError(
            f"--vocabulary is for --tokens wordpiece (a vocab.txt) or --tokens bpe (a "
            f"vocab.json or tokenizer.json); --tokens char takes its characters from the "
            f"corpus. Received --vocabulary {config.vocabulary!r}: drop it or choose the "
            "tokens it holds."
        )
    if config.tokens == "wordpiece" and str(config.vocabulary or "").lower().endswith(".json"):
        raise ValueError(
            f"--vocabulary {config.vocabulary!r} is a JSON file, which a WordPiece vocabulary "
            "(vocab.txt, one token a line) is not: for a BPE vocab.json or tokenizer.json use "
            "--tokens bpe."
        )
    if config.tokens != "bpe":
        return
    if config.vocabulary is None:
        if config.merges is not None:
            raise ValueError(
                f"--merges {config.merges!r} needs the vocab.json it belongs to: add "
                "--vocabulary vocab.json (or drop --merges to learn merges from the corpus)."
            )
        smallest = BYTE_SYMBOLS + 1
        if config.vocabulary_size < smallest:
            raise ValueError(
                f"A byte-level BPE vocabulary holds the {BYTE_SYMBOLS} byte symbols and "
                f"{GPT2_END_TOKEN}, then the merges: --vocabulary-size must be at least "
                f"{smallest}. Received: {config.vocabulary_size}"
            )
        return
    kind = byte_pair_file_kind(config.vocabulary)
    if kind == "tokenizer.json" and config.merges is not None:
        raise ValueError(
            f"--vocabulary {config.vocabulary!r} is a Hugging Face tokenizer.json, which holds "
            f"its merges: drop --merges {config.merges!r}."
        )
    if kind == "vocab.json" and config.merges is None:
        raise ValueError(
            f"--vocabulary {config.vocabulary!r} is a vocab.json (token -> id): give its "
            "merges.txt with --merges, or a Hugging Face tokenizer.json as --vocabulary."
        )
    if kind == "vocab.json" and not os.path.isfile(config.merges):
        raise FileNotFoundError(f"The --merges file {config.merges!r} does not exist.")


def byte_pair_file_kind(path):
    """`"vocab.json"` (a JSON object of token -> id) or `"tokenizer.json"` (one with `model`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a JSON object (a WordPiece `vocab.txt`, say).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The --vocabulary file {path!r} does not exist.")
    with open(path, encoding="utf-8", errors="replace") as file:
        text = file.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--vocabulary {path!r} is not JSON (line {error.lineno}: {error.msg}): --tokens "
            "bpe takes a vocab.json (with --merges merges.txt) or a Hugging Face "
            "tokenizer.json. A WordPiece vocab.txt goes with --tokens wordpiece."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"--vocabulary {path!r} holds a JSON {type(data).__name__}, not an object: --tokens "
            "bpe takes a vocab.json (token -> id) or a Hugging Face tokenizer.json."
        )
    return "tokenizer.json" if isinstance(data.get("model"), dict) else "vocab.json"


def build_tokenizer(config, train_texts):
    """The run's tokenizer: given by the config's files or learned from `train_texts`."""
    if config.tokens == "char":
        return CharacterTokenizer.from_text(train_texts)
    if config.tokens == "bpe":
        return build_byte_pair_tokenizer(config, train_texts)
    if config.vocabulary:
        return WordPieceTokenizer(config.vocabulary)
    vocabulary = train_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(train_texts), config.vocabulary_size
    )
    return WordPieceTokenizer(vocabulary)


def build_byte_pair_tokenizer(config, train_texts):
    """A `BytePairTokenizer` from the given files, or with merges learned from `train_texts`.

    Learned: `config.vocabulary_size` tokens at most (`<|endoftext|>`, the byte symbols, then
    merges while a pair occurs twice), with progress printed. Given: the files' vocabulary,
    merges and ids as they are; a note is printed when `<|endoftext|>` is not one of its
    special tokens (the stream then has no end token).
    """
    if config.vocabulary is None:
        characters = sum(len(text) for text in train_texts)
        print(
            f"[pretrain] learning byte-level BPE merges ({config.vocabulary_size:,} tokens at "
            f"most) from {characters:,} characters ...",
            flush=True,
        )
        start = time.monotonic()
        vocabulary, merges = train_byte_pair_vocabulary(
            train_texts,
            config.vocabulary_size,
            [GPT2_END_TOKEN],
            verbose=config.verbose == 1,  # a progress bar; 2 (logs): the lines around it
        )
        print(
            f"[pretrain] {len(merges):,} merges learned in {time.monotonic() - start:.1f} s: "
            f"vocabulary {len(vocabulary):,}",
            flush=True,
        )
        return BytePairTokenizer(vocabulary, merges, special_tokens=[GPT2_END_TOKEN])
    if byte_pair_file_kind(config.vocabulary) == "tokenizer.json":
        tokenizer = BytePairTokenizer.from_tokenizer_json(config.vocabulary)
        source = config.vocabulary
    else:
        with open(config.vocabulary, encoding="utf-8", errors="replace") as file:
            ids = json.load(file)
        special = [GPT2_END_TOKEN] if GPT2_END_TOKEN in ids else []
        tokenizer = BytePairTokenizer(config.vocabulary, config.merges, special_tokens=special)
        source = f"{config.vocabulary} and {config.merges}"
    if GPT2_END_TOKEN not in tokenizer.special_tokens:
        print(
            f"[pretrain] note: {source} has no {GPT2_END_TOKEN} special token: the training "
            "stream has no end token (each text runs on into the next) and prompts get no "
            "start token.",
            flush=True,
        )
    return tokenizer


def causal_lm_tokens(tokenizer):
    """The `end_token` and `start_token` of a causal-LM preprocessor for `tokenizer`.

    A BPE run's are `<|endoftext|>` if it is one of the tokenizer's special tokens, else none
    (a given tokenizer.json whose vocabulary holds it as plain text does not end texts with
    it); other tokenizers leave the choice to `CausalLMPreprocessor` (`"auto"`: `[EOS]`).
    """
    if isinstance(tokenizer, BytePairTokenizer):
        token = GPT2_END_TOKEN if GPT2_END_TOKEN in tokenizer.special_tokens else None
        return {"end_token": token, "start_token": token}
    return {}
