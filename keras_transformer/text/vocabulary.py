"""WordPiece vocabularies: special tokens, training from a dataset, and `vocab.txt` files.

A vocabulary is a list of tokens whose index is the token id, as in BERT's `vocab.txt` (one token
per line). Our vocabularies reserve, in this order, `[PAD]` (id 0), `[UNK]`, `[CLS]`, `[SEP]`,
`[MASK]`, then `[BOS]` and `[EOS]` for GPT-style models, so the first five ids match BERT's
convention of the padding id being 0.
"""

import os

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
BOS_TOKEN = "[BOS]"
EOS_TOKEN = "[EOS]"
# GPT-2's one special token: it ends each text of a training stream and starts a prompt.
GPT2_END_TOKEN = "<|endoftext|>"

BERT_SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)
SPECIAL_TOKENS = BERT_SPECIAL_TOKENS + (BOS_TOKEN, EOS_TOKEN)


def validate_vocabulary(vocabulary, required_tokens=BERT_SPECIAL_TOKENS):
    """Check a vocabulary and return it as a list.

    Args:
        vocabulary: iterable of str. The tokens; a token's id is its index.
        required_tokens: iterable of str. Tokens that must be present. Defaults to the BERT
            special tokens `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`.

    Returns:
        list of str.

    Raises:
        ValueError: if the vocabulary is empty, holds a non-string, an empty or a duplicated
            token, or lacks a required token (named in the message).

    Example:
    >>> validate_vocabulary(["[UNK]", "a"], required_tokens=["[UNK]"])
    ['[UNK]', 'a']
    """
    if isinstance(vocabulary, (str, bytes)):
        raise ValueError(
            "`vocabulary` must be a list of tokens (or pass a path to a vocab.txt file to "
            f"`load_vocabulary`). Received: vocabulary={vocabulary!r:.100}"
        )
    vocabulary = list(vocabulary)
    if not vocabulary:
        raise ValueError("`vocabulary` is empty. Pass a list of tokens or a vocab.txt path.")
    seen = {}
    for index, token in enumerate(vocabulary):
        if not isinstance(token, str):
            raise ValueError(
                f"Every vocabulary token must be a str. Received: {token!r} at index {index}."
            )
        if not token:
            raise ValueError(
                f"The vocabulary holds an empty token at index {index}. Remove blank lines or "
                "empty strings from the vocabulary."
            )
        if token in seen:
            raise ValueError(
                f"The vocabulary holds the token {token!r} twice, at index {seen[token]} and "
                f"{index}. Each token must appear once."
            )
        seen[token] = index
    missing = [token for token in required_tokens if token not in seen]
    if missing:
        raise ValueError(
            f"The vocabulary lacks the special token(s) {missing}. Add them (our vocabularies "
            f"start with {list(BERT_SPECIAL_TOKENS)}), or pass `required_tokens` / `oov_token` "
            "naming the special tokens your vocabulary uses."
        )
    return vocabulary


def load_vocabulary(path, required_tokens=BERT_SPECIAL_TOKENS):
    """Read a `vocab.txt` file: one token per line, the line number (from 0) being the id.

    This is the format of BERT checkpoints and of `save_vocabulary`, so BERT vocabularies load
    as they are.

    Args:
        path: str or `os.PathLike`. The file, UTF-8 encoded.
        required_tokens: iterable of str. Tokens that must be present. Defaults to the BERT
            special tokens.

    Returns:
        list of str.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not UTF-8 or fails `validate_vocabulary`.

    Example:
    >>> vocab = load_vocabulary("bert/vocab.txt")  # doctest: +SKIP
    >>> vocab[:5]  # doctest: +SKIP
    ['[PAD]', '[unused0]', '[unused1]', '[unused2]', '[unused3]']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No vocabulary file at {path!r}. Pass the path of a vocab.txt file (one token per "
            "line) or a list of tokens."
        )
    with open(path, "rb") as file:
        raw = file.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The vocabulary file {path!r} is not valid UTF-8 (byte {error.start}: "
            f"{raw[error.start : error.start + 4]!r}). Re-encode it as UTF-8."
        ) from error
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # The newline that ends the last line.
    tokens = [line[:-1] if line.endswith("\r") else line for line in lines]
    try:
        return validate_vocabulary(tokens, required_tokens=required_tokens)
    except ValueError as error:
        raise ValueError(f"Invalid vocabulary file {path!r}: {error}") from None


def save_vocabulary(vocabulary, path):
    """Write a vocabulary as a `vocab.txt` file, one token per line.

    Args:
        vocabulary: list of str. The tokens, in id order.
        path: str or `os.PathLike`. The file to write (UTF-8).

    Returns:
        str. The path written.

    Example:
    >>> save_vocabulary(["[PAD]", "[UNK]", "a"], "/tmp/vocab.txt")  # doctest: +SKIP
    '/tmp/vocab.txt'
    """
    vocabulary = validate_vocabulary(vocabulary, required_tokens=())
    for token in vocabulary:
        if "\n" in token or "\r" in token:
            raise ValueError(f"Token {token!r} holds a line break; vocab.txt cannot store it.")
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write("".join(token + "\n" for token in vocabulary))
    return path


def train_word_piece_vocabulary(
    data,
    vocabulary_size,
    lowercase=True,
    strip_accents=True,
    split_on_cjk=True,
    reserved_tokens=SPECIAL_TOKENS,
    suffix_indicator="##",
):
    """Learn a WordPiece vocabulary from text with keras-hub's trainer.

    Training needs tensorflow-text (through keras-hub); tokenizing with the result does not.

    Args:
        data: a `tf.data.Dataset` of strings, or a list of strings.
        vocabulary_size: int. The size of the vocabulary, reserved tokens included.
        lowercase: bool. Lower-case the text first, as the tokenizer will. Defaults to `True`.
        strip_accents: bool. Strip accents first, as the tokenizer will. Defaults to `True`.
        split_on_cjk: bool. Split CJK ideographs into words. Defaults to `True`.
        reserved_tokens: list of str. Tokens placed first, in this order. Defaults to
            `SPECIAL_TOKENS`: `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, `[BOS]`, `[EOS]`.
        suffix_indicator: str. Prefix of continuation pieces. Defaults to `"##"`.

    Returns:
        list of str. The vocabulary, reserved tokens first.

    Example:
    >>> vocab = train_word_piece_vocabulary(["the quick brown fox"], 40)  # doctest: +SKIP
    >>> vocab[:3]  # doctest: +SKIP
    ['[PAD]', '[UNK]', '[CLS]']
    """
    import tensorflow as tf
    from keras_hub.tokenizers import compute_word_piece_vocabulary

    reserved_tokens = list(reserved_tokens)
    if not isinstance(vocabulary_size, int) or vocabulary_size <= len(reserved_tokens):
        raise ValueError(
            f"`vocabulary_size` must be an int larger than the {len(reserved_tokens)} reserved "
            f"tokens. Received: vocabulary_size={vocabulary_size!r}"
        )
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("`data` is empty: pass a dataset or a non-empty list of strings.")
        data = tf.data.Dataset.from_tensor_slices(list(data))
    elif not isinstance(data, tf.data.Dataset):
        raise ValueError(
            "`data` must be a tf.data.Dataset of strings or a list of strings. "
            f"Received: {type(data).__name__}"
        )
    if data.element_spec.dtype != tf.string:
        raise ValueError(
            "`data` must hold strings (e.g. `ds.map(lambda text, label: text)`). "
            f"Received element_spec={data.element_spec}"
        )
    vocabulary = compute_word_piece_vocabulary(
        data.batch(1000) if data.element_spec.shape.rank == 0 else data,
        vocabulary_size=vocabulary_size,
        lowercase=lowercase,
        strip_accents=strip_accents,
        split_on_cjk=split_on_cjk,
        suffix_indicator=suffix_indicator,
        reserved_tokens=reserved_tokens,
    )
    return validate_vocabulary(vocabulary, required_tokens=reserved_tokens)
