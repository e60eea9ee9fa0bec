"""Byte-level BPE vocabularies: GPT-2's byte-to-unicode map and the files of the ecosystem.

A byte-level BPE tokenizer is a vocabulary (token -> id) and a ranked list of merges. Its tokens
are strings over an alphabet of 256 printable characters, one per byte (GPT-2's
`bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the others are moved to
U+0100 and up, so a space is `"Ġ"` and a newline `"Ċ"`). Three file layouts hold them:

- `vocab.json` (a JSON object token -> id) and `merges.txt` (an optional `#version` line, then
  one merge per line, `"a b"`, lowest rank first), as GPT-2 and Hugging Face write them;
- a Hugging Face `tokenizer.json` whose model is `BPE` and whose pre-tokenizer is `ByteLevel`.

Readers check what a tokenizer relies on and fail at load with a message naming the file and
the line: ids 0..n-1 each used once, all 256 byte symbols present, every merge two tokens of
the vocabulary whose concatenation is in the vocabulary too.
"""

import json
import os
import re
import tempfile

MERGES_HEADER = "#version: 0.2"


def _bytes_to_unicode():
    """GPT-2's map from each byte to a printable character (a list of 256 characters)."""
    kept = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = {b: chr(b) for b in kept}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


BYTE_SYMBOLS = tuple(_bytes_to_unicode())
SYMBOL_BYTES = {symbol: b for b, symbol in enumerate(BYTE_SYMBOLS)}


def bytes_to_symbols(data):
    """Write `data` (bytes) in the byte-level alphabet, e.g. `b" hi"` -> `"Ġhi"`."""
    return "".join(BYTE_SYMBOLS[b] for b in data)


def symbols_to_bytes(token):
    """The bytes a byte-level token stands for, or `None` if a character is not a byte symbol."""
    try:
        return bytes(SYMBOL_BYTES[c] for c in token)
    except KeyError:
        return None


# --------------------------------------------------------------------------------------------
# Validation shared by every source.


def _line_of(raw, token, occurrence=1):
    """The 1-based line of `token`'s `occurrence`-th key in a JSON text, or None."""
    for key in (json.dumps(token), json.dumps(token, ensure_ascii=False)):
        found = [m.start() for m in re.finditer(re.escape(key) + r"\s*:", raw)]
        if len(found) >= occurrence:
            return raw.count("\n", 0, found[occurrence - 1]) + 1
    return None


def _where(source, line=None, index=None):
    if line is not None:
        return f"{source} line {line}"
    if index is not None:
        return f"{source}[{index}]"
    return source


def vocabulary_from_ids(token_ids, source="vocabulary", raw=None):
    """Turn a token -> id mapping into the list of tokens in id order, checking the ids.

    Args:
        token_ids: dict or list of `(token, id)` pairs.
        source: str. Named in error messages (a file name).
        raw: str or None. The JSON text, to name the line of a bad entry.

    Returns:
        list of str, the token of id i at index i.
    """
    by_id = {}
    seen = {}
    pairs = token_ids.items() if isinstance(token_ids, dict) else token_ids
    for token, token_id in pairs:
        occurrence = 2 if token in seen else 1
        line = _line_of(raw, token, occurrence) if raw is not None else None
        if not isinstance(token, str) or not token:
            raise ValueError(
                f"{_where(source, line)}: every token must be a non-empty string. "
                f"Received: {token!r}"
            )
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(
                f"{_where(source, line)}: the id of {token!r} must be a non-negative int. "
                f"Received: {token_id!r}"
            )
        if token in seen:
            raise ValueError(
                f"{_where(source, line)}: the token {token!r} appears twice. Each token must "
                "appear once."
            )
        if token_id in by_id:
            raise ValueError(
                f"{_where(source, line)}: the tokens {by_id[token_id]!r} and {token!r} both "
                f"have id {token_id}. Each id must name one token."
            )
        seen[token] = token_id
        by_id[token_id] = token
    if not by_id:
        raise ValueError(f"{source} holds no tokens. Pass a non-empty vocabulary.")
    size = max(by_id) + 1
    if size != len(by_id):
        missing = [i for i in range(size) if i not in by_id]
        raise ValueError(
            f"{source}: the ids must be 0..{len(by_id) - 1} without gaps, but id "
            f"{missing[0]} is missing ({len(missing)} ids missing, largest id {size - 1})."
        )
    return [by_id[i] for i in range(size)]


def check_vocabulary(vocabulary, special_tokens=(), source="vocabulary"):
    """Check a list vocabulary of a byte-level BPE: unique tokens, all 256 byte symbols.

    Returns:
        dict token -> id.
    """
    if isinstance(vocabulary, (str, bytes)) or not vocabulary:
        raise ValueError(
            f"`vocabulary` must be a non-empty list of tokens, a dict token -> id or a "
            f"vocab.json path. Received: {vocabulary!r:.100}"
        )
    token_to_id = {}
    for index, token in enumerate(vocabulary):
        if not isinstance(token, str) or not token:
            raise ValueError(
                f"{_where(source, index=index)}: every token must be a non-empty string. "
                f"Received: {token!r}"
            )
        if token in token_to_id:
            raise ValueError(
                f"{_where(source, index=index)}: the token {token!r} appears twice (also at "
                f"id {token_to_id[token]}). Each token must appear once."
            )
        token_to_id[token] = index
    missing = [b for b, symbol in enumerate(BYTE_SYMBOLS) if symbol not in token_to_id]
    if missing:
        examples = ", ".join(f"{BYTE_SYMBOLS[b]!r} (byte 0x{b:02x})" for b in missing[:3])
        raise ValueError(
            f"{source} lacks {len(missing)} of the 256 byte symbols, e.g. {examples}. A "
            "byte-level BPE vocabulary holds every byte so that any text can be tokenized; "
            "train it with all 256 (train_byte_pair_vocabulary does)."
        )
    for token in special_tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"Special tokens must be non-empty strings. Received: {token!r}")
        if token not in token_to_id:
            raise ValueError(
                f"The special token {token!r} is not in {source} ({len(vocabulary)} tokens). "
                "Add it to the vocabulary (train_byte_pair_vocabulary(special_tokens=...) "
                "does) or leave it out of `special_tokens`."
            )
    return token_to_id


def check_merges(merges, token_to_id, source="merges", lines=None):
    """Check merges against a vocabulary and return them as `(left, right)` pairs.

    Args:
        merges: list of `"a b"` strings or `(a, b)` pairs, lowest rank first.
        token_to_id: dict token -> id.
        source: str. Named in error messages (a file name).
        lines: list of int or None. The file line of each merge, for error messages.

    Returns:
        list of `(left, right)` tuples of str.
    """
    if isinstance(merges, (str, bytes)):
        raise ValueError(
            f"`merges` must be a list of 'a b' strings or pairs, or a merges.txt path. "
            f"Received: {merges!r:.100}"
        )
    pairs = []
    for index, merge in enumerate(merges):
        where = _where(source, line=lines[index]) if lines else _where(source, index=index)
        if isinstance(merge, str):
            parts = merge.split(" ")
        elif isinstance(merge, (list, tuple)):
            parts = list(merge)
        else:
            parts = None
        if (
            parts is None
            or len(parts) != 2
            or not all(isinstance(p, str) and p and " " not in p for p in parts)
        ):
            raise ValueError(
                f"{where}: a merge is two tokens separated by one space, e.g. 'Ġ t'. "
                f"Received: {merge!r}"
            )
        left, right = parts
        for part in (left, right, left + right):
            if part not in token_to_id:
                role = "merged token" if part == left + right else "token"
                raise ValueError(
                    f"{where}: the {role} {part!r} of the merge {left + ' ' + right!r} is not "
                    "in the vocabulary. Merges and vocabulary must come from the same "
                    "tokenizer."
                )
        pairs.append((left, right))
    return pairs


# --------------------------------------------------------------------------------------------
# vocab.json and merges.txt.


def _read_text(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {what} file at {path!r}.")
    with open(path, "rb") as file:
        raw = file.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path} line {line}: not valid UTF-8 (byte {error.start}). Re-encode it as UTF-8."
        ) from error


def load_vocabulary_json(path):
    """Read a `vocab.json` (token -> id) and return the tokens in id order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not an object of str -> int, a token or id used twice, or ids
            with gaps; the message names the line.
    """
    raw = _read_text(path, "vocab.json")
    try:
        pairs = json.loads(raw, object_pairs_hook=lambda items: items)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} line {error.lineno}: not valid JSON ({error.msg}, column {error.colno})."
        ) from error
    if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
        raise ValueError(f"{path} must hold a JSON object mapping each token to its id.")
    for token, value in pairs:
        if isinstance(value, list):
            line = _line_of(raw, token)
            raise ValueError(
                f"{_where(path, line)}: the id of {token!r} must be an int. Received a "
                "nested JSON value."
            )
    return vocabulary_from_ids(pairs, source=str(path), raw=raw)


def load_merges_txt(path):
    """Read a `merges.txt`: an optional `#version` line, then one `"a b"` merge per line.

    Returns:
        A tuple `(merges, lines)`: the merges as `"a b"` strings and the line of each.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8.
    """
    text = _read_text(path, "merges.txt")
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()  # The newline that ends the last line.
    merges, lines = [], []
    for number, row in enumerate(rows, start=1):
        row = row[:-1] if row.endswith("\r") else row
        if row.startswith("#version"):
            continue
        merges.append(row)
        lines.append(number)
    return merges, lines


def _write_atomically(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def save_byte_pair_files(folder, vocabulary, merges):
    """Write `vocab.json` and `merges.txt` into `folder` (GPT-2 / Hugging Face layout).

    Args:
        folder: str. Created if needed.
        vocabulary: list of str, in id order.
        merges: list of `"a b"` strings, lowest rank first.

    Returns:
        A tuple `(vocab_path, merges_path)`.
    """
    vocab_path = os.path.join(os.fspath(folder), "vocab.json")
    merges_path = os.path.join(os.fspath(folder), "merges.txt")
    vocab = {token: i for i, token in enumerate(vocabulary)}
    _write_atomically(vocab_path, json.dumps(vocab, ensure_ascii=False) + "\n")
    _write_atomically(merges_path, MERGES_HEADER + "\n" + "".join(m + "\n" for m in merges))
    return vocab_path, merges_path


# --------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json.


def _byte_level_pre_tokenizer(pre_tokenizer, path):
    """The ByteLevel step of a tokenizer.json pre-tokenizer (alone or in a one-step Sequence)."""
    if isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "Sequence":
        steps = pre_tokenizer.get("pretokenizers") or []
        pre_tokenizer = steps[0] if len(steps) == 1 else None
    if not isinstance(pre_tokenizer, dict) or pre_tokenizer.get("type") != "ByteLevel":
        raise ValueError(
            f"{path}: the pre_tokenizer must be ByteLevel (GPT-2's byte-level BPE). Received: "
            f"{json.dumps(pre_tokenizer)[:200]}"
        )
    if not pre_tokenizer.get("use_regex", True):
        raise ValueError(
            f"{path}: a ByteLevel pre_tokenizer with use_regex=false (used after another "
            "splitter, as in Llama 3) is not supported; only GPT-2's split is."
        )
    return pre_tokenizer


def load_tokenizer_json(path):
    """Read a Hugging Face `tokenizer.json` of the ByteLevel BPE kind (GPT-2, RoBERTa, ...).

    Added tokens (`added_tokens`) become special tokens: they are split out of the text before
    pre-tokenization and are one id each, as in Hugging Face. A post-processor (which adds
    special tokens around a sequence in `encode`) is not applied: pack ids with
    `StartEndPacker` instead.

    Returns:
        dict with `vocabulary` (list of str), `merges` (list of `"a b"`), `special_tokens`
        (list of str) and `add_prefix_space` (bool): constructor arguments of
        `BytePairTokenizer`.

    Raises:
        ValueError: not a ByteLevel BPE tokenizer, options that change the ids which we do not
            implement (a normalizer, dropout, subword prefixes, `ignore_merges`, added tokens
            with `lstrip`/`rstrip`/`single_word`), or a bad vocabulary or merge.
    """
    raw = _read_text(path, "tokenizer.json")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} line {error.lineno}: not valid JSON ({error.msg}, column {error.colno})."
        ) from error
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or "merges" not in model:
        kind = model.get("type") if isinstance(model, dict) else None
        raise ValueError(f"{path}: the model must be BPE with merges. Received type={kind!r}")
    if data.get("normalizer") is not None:
        raise ValueError(
            f"{path}: a normalizer ({data['normalizer'].get('type')}) is not supported; "
            "byte-level BPE as GPT-2's has none."
        )
    pre_tokenizer = _byte_level_pre_tokenizer(data.get("pre_tokenizer"), path)
    for option, allowed in (
        ("dropout", (None,)),
        ("continuing_subword_prefix", (None, "")),
        ("end_of_word_suffix", (None, "")),
        ("ignore_merges", (None, False)),
    ):
        if model.get(option) not in allowed:
            raise ValueError(
                f"{path}: the BPE option {option}={model.get(option)!r} is not supported "
                f"(allowed: {allowed})."
            )
    decoder = data.get("decoder")
    if decoder is not None and decoder.get("type") != "ByteLevel":
        raise ValueError(f"{path}: the decoder must be ByteLevel. Received: {decoder.get('type')}")
    token_ids = dict(model.get("vocab") or {})
    special_tokens = []
    for added in data.get("added_tokens") or []:
        content = added.get("content")
        for flag in ("lstrip", "rstrip", "single_word"):
            if added.get(flag):
                raise ValueError(
                    f"{path}: the added token {content!r} has {flag}=true, which is not "
                    "supported (its matching would swallow neighbouring text)."
                )
        if token_ids.get(content, added.get("id")) != added.get("id"):
            raise ValueError(
                f"{path}: the added token {content!r} has id {added.get('id')} but the model "
                f"vocabulary gives it id {token_ids[content]}."
            )
        token_ids[content] = added.get("id")
        special_tokens.append(content)
    vocabulary = vocabulary_from_ids(token_ids, source=f"{path} (model.vocab)", raw=raw)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    check_merges(
        [m if isinstance(m, str) else tuple(m) for m in model["merges"]],
        {t: i for i, t in enumerate(vocabulary)},
        source=f"{path} (model.merges)",
    )
    return {
        "vocabulary": vocabulary,
        "merges": merges,
        "special_tokens": special_tokens,
        "add_prefix_space": bool(pre_tokenizer.get("add_prefix_space", False)),
    }


def save_tokenizer_json(path, vocabulary, merges, special_tokens=(), add_prefix_space=False):
    """Write a Hugging Face `tokenizer.json` (ByteLevel BPE) that `tokenizers` loads as is.

    Returns:
        `path`.
    """
    token_to_id = {token: i for i, token in enumerate(vocabulary)}
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": add_prefix_space,
        "trim_offsets": True,
        "use_regex": True,
    }
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": token_to_id[token],
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for token in special_tokens
        ],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": dict(byte_level),
        "decoder": dict(byte_level),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": token_to_id,
            "merges": [m.split(" ") for m in merges],
        },
    }
    _write_atomically(os.fspath(path), json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return path
