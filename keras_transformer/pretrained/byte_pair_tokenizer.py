"""The byte-level BPE tokenizer of a Hugging Face GPT-2 folder as our `BytePairTokenizer`, and back.

Reading follows what `transformers.AutoTokenizer` (its `GPT2Tokenizer`) does with the same
folder, so that our ids are its ids:

- The vocabulary and merges come from `vocab.json` + `merges.txt`, or, when those are absent,
  from `tokenizer.json` (a `BPE` model with the `ByteLevel` pre-tokenizer).
- Added tokens (`tokenizer.json`'s `added_tokens`, `tokenizer_config.json`'s
  `added_tokens_decoder`, `added_tokens.json`), special or not, are split out of the text
  whole, as Hugging Face does with both kinds: they become our `special_tokens`; ids past
  `vocab.json`'s extend the vocabulary. So do the named special tokens of
  `tokenizer_config.json` and `special_tokens_map.json` (`bos_token`, `eos_token`,
  `unk_token`, ... and their extra lists); `bos_token`, `eos_token` and `unk_token` default
  to `<|endoftext|>`, as in `GPT2Tokenizer`. A named token that is not in the vocabulary is
  left out (with a warning).
- `add_prefix_space` is `tokenizer_config.json`'s (default `False`); as in `transformers`, it
  overrides the `ByteLevel` setting of `tokenizer.json`.

No start token is prepended to a text: `GPT2Tokenizer` adds none (`tokenizer(prompt)` gives
the text's ids alone), so a prompt generates from its own tokens, as a `transformers`
`model.generate(tokenizer(prompt).input_ids)` does.

Malformed files fail at load with the messages of `keras_transformer.text.byte_pair_files`,
which name the file and the line.
"""

import json
import logging
from pathlib import Path

from keras_transformer.pretrained.checkpoint import read_json, write_json
from keras_transformer.text import byte_pair_files as files
from keras_transformer.text.byte_pair import BytePairTokenizer
from keras_transformer.text.vocabulary import EOS_TOKEN, GPT2_END_TOKEN

logger = logging.getLogger(__name__)

# Keys of tokenizer_config.json / special_tokens_map.json naming one special token; the first
# three default to GPT-2's <|endoftext|> (GPT2Tokenizer's defaults).
NAMED_SPECIAL_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
)
DEFAULTED_KEYS = ("bos_token", "eos_token", "unk_token")
# Keys naming a list of special tokens (transformers 4 and 5 spellings).
SPECIAL_LIST_KEYS = ("additional_special_tokens", "extra_special_tokens")


def _content(value):
    """A token entry of the config files: a string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def _check_flags(entry, source):
    """Refuse an added token whose matching we do not implement (as load_tokenizer_json)."""
    for flag in ("lstrip", "rstrip", "single_word"):
        if isinstance(entry, dict) and entry.get(flag):
            raise ValueError(
                f"{source}: the added token {entry.get('content')!r} has {flag}=true, which is "
                "not supported (its matching would swallow neighbouring text)."
            )


def _added_tokens(folder, settings, read_fast_json):
    """`[(id, content, source)]`: the added tokens every tokenizer file of `folder` lists."""
    found = []
    if read_fast_json and (folder / "tokenizer.json").is_file():
        path = folder / "tokenizer.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not valid UTF-8 JSON: {error}") from error
        for entry in (data.get("added_tokens") if isinstance(data, dict) else None) or []:
            _check_flags(entry, path)
            found.append((entry.get("id"), entry.get("content"), str(path)))
    decoder = settings.get("added_tokens_decoder") or {}
    source = str(folder / "tokenizer_config.json")
    if not isinstance(decoder, dict):
        raise ValueError(f"{source}: added_tokens_decoder must map token ids to tokens.")
    for key, entry in decoder.items():
        _check_flags(entry, source)
        try:
            token_id = int(key)
        except ValueError:
            raise ValueError(
                f"{source}: added_tokens_decoder keys must be token ids. Received: {key!r}"
            ) from None
        found.append((token_id, _content(entry), source))
    if (folder / "added_tokens.json").is_file():
        path = folder / "added_tokens.json"
        table = read_json(path)
        if not isinstance(table, dict):
            raise ValueError(f"{path} must hold a JSON object mapping each token to its id.")
        found.extend((token_id, token, str(path)) for token, token_id in table.items())
    for token_id, content, where in found:
        if not isinstance(content, str) or not content:
            raise ValueError(f"{where}: an added token must be a non-empty string: {content!r}")
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(
                f"{where}: the added token {content!r} needs a non-negative int id. "
                f"Received: {token_id!r}"
            )
    return found


def _extend(vocabulary, added):
    """`vocabulary` with the added tokens placed at their ids (checked against it)."""
    vocabulary = list(vocabulary)
    index = {token: i for i, token in enumerate(vocabulary)}
    beyond = {}
    for token_id, content, where in added:
        if content in index and index[content] != token_id:
            raise ValueError(
                f"{where}: the added token {content!r} has id {token_id}, but the vocabulary "
                f"gives it id {index[content]}. Fix the id (the files disagree)."
            )
        if token_id < len(vocabulary) and vocabulary[token_id] != content:
            raise ValueError(
                f"{where}: the added token {content!r} has id {token_id}, which the "
                f"vocabulary gives to {vocabulary[token_id]!r}. Fix the id (the files disagree)."
            )
        if token_id >= len(vocabulary):
            if beyond.get(token_id, (content,))[0] != content:
                raise ValueError(
                    f"{where}: the added tokens {beyond[token_id][0]!r} and {content!r} both "
                    f"have id {token_id}. Each id must name one token."
                )
            beyond[token_id] = (content, where)
    for expected, token_id in enumerate(sorted(beyond), start=len(vocabulary)):
        content, where = beyond[token_id]
        if token_id != expected:
            raise ValueError(
                f"{where}: the added token {content!r} has id {token_id}, but id {expected} "
                f"is unused: ids past the vocabulary's {len(vocabulary)} tokens must follow "
                "on without gaps."
            )
        vocabulary.append(content)
    return vocabulary


def _named_special_tokens(folder, settings):
    """The special tokens named by tokenizer_config.json and special_tokens_map.json.

    Returns:
        A tuple `(named, defaults)`: the tokens the files name, and GPT2Tokenizer's default
        `<|endoftext|>` if some of `bos_token`, `eos_token`, `unk_token` is not named.
    """
    named, lists, sources = {}, [], []
    if (folder / "special_tokens_map.json").is_file():
        sources.append(read_json(folder / "special_tokens_map.json"))
    sources.append(settings)  # tokenizer_config.json wins, as for BERT folders.
    for source in sources:
        if not isinstance(source, dict):
            raise ValueError(f"The special token files of {folder} must hold JSON objects.")
        for key in NAMED_SPECIAL_KEYS:
            if key in source:
                named[key] = _content(source[key])
        for key in SPECIAL_LIST_KEYS:
            value = source.get(key)
            if isinstance(value, dict):  # transformers 5: {name: token}
                value = list(value.values())
            lists.extend(_content(v) for v in value or [])
    defaults = [GPT2_END_TOKEN] if any(key not in named for key in DEFAULTED_KEYS) else []
    tokens = [t for t in named.values() if t] + [t for t in lists if t]
    return list(dict.fromkeys(tokens)), defaults


def load_byte_pair_tokenizer(folder):
    """Our `BytePairTokenizer` for a GPT-2 checkpoint folder, or None if it has no tokenizer.

    Args:
        folder: str or Path. The folder with `vocab.json` + `merges.txt` or `tokenizer.json`
            (and optionally `tokenizer_config.json`, `special_tokens_map.json`,
            `added_tokens.json`).

    Returns:
        A `BytePairTokenizer`, or None for a folder with none of the tokenizer files.

    Raises:
        FileNotFoundError: the folder has `vocab.json` or `merges.txt` without the other and
            no `tokenizer.json`.
        ValueError: a malformed file (the message names the file and, where it can, the
            line), a tokenizer.json of another kind than ByteLevel BPE, or added tokens whose
            ids disagree with the vocabulary.
    """
    folder = Path(folder)
    settings = {}
    if (folder / "tokenizer_config.json").is_file():
        settings = read_json(folder / "tokenizer_config.json")
        if not isinstance(settings, dict):
            raise ValueError(f"{folder / 'tokenizer_config.json'} must hold a JSON object.")
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    fast_path = folder / "tokenizer.json"
    if vocab_path.is_file() and merges_path.is_file():
        vocabulary = files.load_vocabulary_json(vocab_path)
        files.check_vocabulary(vocabulary, source=str(vocab_path))
        merges = str(merges_path)  # Read by the tokenizer: its errors name the line.
        added = _added_tokens(folder, settings, read_fast_json=True)
        file_special = []
    elif fast_path.is_file():
        loaded = files.load_tokenizer_json(fast_path)
        vocabulary, merges = loaded["vocabulary"], loaded["merges"]
        file_special = loaded["special_tokens"]
        added = _added_tokens(folder, settings, read_fast_json=False)
        if loaded["add_prefix_space"] != bool(settings.get("add_prefix_space", False)):
            logger.info(
                "%s says add_prefix_space=%s; tokenizer_config.json's %s is used, as in "
                "transformers.",
                fast_path,
                loaded["add_prefix_space"],
                settings.get("add_prefix_space", False),
            )
    elif vocab_path.is_file() or merges_path.is_file():
        present, missing = (
            (vocab_path, merges_path) if vocab_path.is_file() else (merges_path, vocab_path)
        )
        raise FileNotFoundError(
            f"{folder} has {present.name} but no {missing.name} (and no tokenizer.json): a "
            "byte-level BPE tokenizer needs both. Add the missing file, or remove the other "
            "to load the model without a tokenizer."
        )
    else:
        return None
    vocabulary = _extend(vocabulary, added)
    names, defaults = _named_special_tokens(folder, settings)
    index = set(vocabulary)
    absent = [t for t in names if t not in index]
    if absent:
        logger.warning(
            "The tokenizer files of %s name the special token(s) %s, which the vocabulary "
            "lacks: they are left out (text holding them is tokenized as any other).",
            folder,
            absent,
        )
    special = file_special + [content for _, content, _ in added] + names + defaults
    special = [t for t in dict.fromkeys(special) if t in index]
    return BytePairTokenizer(
        vocabulary,
        merges,
        special_tokens=special,
        add_prefix_space=bool(settings.get("add_prefix_space", False)),
    )


def generation_end_token(folder, config, tokenizer):
    """The token where `transformers`' `generate` stops for this checkpoint, or None.

    That is the `eos_token_id` of `generation_config.json` (if it sets one), else of
    `config.json`. An id missing or outside the vocabulary never stops `generate` there: None.
    Of a list of ids, the first in the vocabulary is used (with a warning: one end token here).

    Args:
        folder: Path. The checkpoint folder.
        config: dict. Its config.json.
        tokenizer: `BytePairTokenizer`.
    """
    eos = config.get("eos_token_id")
    path = Path(folder) / "generation_config.json"
    if path.is_file():
        generation = read_json(path)
        if isinstance(generation, dict) and "eos_token_id" in generation:
            eos = generation["eos_token_id"]
    ids = eos if isinstance(eos, list) else [eos]
    size = tokenizer.vocabulary_size()
    valid = [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size]
    if len(valid) > 1:
        logger.warning(
            "%s lists several eos_token_id %s; generation stops at the first, %d, only.",
            folder,
            valid,
            valid[0],
        )
    return tokenizer.id_to_token(valid[0]) if valid else None


def end_token_of(tokenizer, preferred=None):
    """The token that ends a text for `tokenizer`: `preferred` if it is one of its special
    tokens, else `<|endoftext|>`, else `[EOS]` (the first special one), else None."""
    special = set(tokenizer.special_tokens)
    for token in (preferred, GPT2_END_TOKEN, EOS_TOKEN):
        if token and token in special:
            return token
    return None


def save_byte_pair_tokenizer(tokenizer, folder, max_length, end_token=None):
    """Write the files `transformers.AutoTokenizer` loads a GPT-2 tokenizer from.

    `vocab.json`, `merges.txt`, `tokenizer.json`, `tokenizer_config.json` (`GPT2Tokenizer`,
    `model_max_length`, `add_prefix_space`, `bos_token` / `eos_token` / `unk_token` the end
    token, the special tokens as `added_tokens_decoder`) and `special_tokens_map.json`.

    Args:
        tokenizer: our `BytePairTokenizer`.
        folder: str or Path. An existing folder.
        max_length: int. `model_max_length`, the model's longest input.
        end_token: str or None. The end token's name (see `end_token_of`).

    Returns:
        str or None: the end token written as `bos_token`, `eos_token` and `unk_token`.
    """
    folder = Path(folder)
    end = end_token_of(tokenizer, end_token)
    tokenizer.save_files(folder)
    tokenizer.save_tokenizer_json(folder / "tokenizer.json")
    names = {"bos_token": end, "eos_token": end, "unk_token": end}
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in tokenizer.special_tokens
    }
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": max_length,
        "add_prefix_space": tokenizer.add_prefix_space,
        "add_bos_token": False,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
        "pad_token": None,
        **names,
        "added_tokens_decoder": added,
    }
    write_json(folder / "tokenizer_config.json", config)
    write_json(folder / "special_tokens_map.json", {k: v for k, v in names.items() if v})
    return end
