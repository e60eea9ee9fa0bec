"""The user's own text: a file or folder as an unlabeled corpus, a CSV/TSV as a labeled one.

Both readers return plain Python lists (easy to inspect, split and count); `LabeledTexts.
as_dataset()` and `tf.data.Dataset.from_tensor_slices(texts)` turn them into `tf.data`.

Text is decoded as UTF-8 (a leading byte-order mark is dropped). Bytes that are not valid UTF-8
do not stop the reading: each is replaced by U+FFFD (`"\\ufffd"`, the Unicode replacement
character) and a `UnicodeWarning` names the file and how many replacements were made. Empty
inputs are errors, never an empty dataset.
"""

import csv
import dataclasses
import io
import warnings
from pathlib import Path

REPLACEMENT_CHARACTER = "\ufffd"


@dataclasses.dataclass(frozen=True)
class LabeledTexts:
    """Texts with integer labels.

    Args:
        texts: list of str. The texts.
        labels: list of int. `labels[i]` is the label id of `texts[i]`, an index into
            `label_names`.
        label_names: tuple of str. The name of each label id.
        ratings: list of float, or `None`. A real-valued score per text, where the source has
            one (`movie_sentiment`: the mean human rating). Defaults to `None`.
    """

    texts: list
    labels: list
    label_names: tuple
    ratings: list | None = None

    def __len__(self):
        return len(self.texts)

    def as_dataset(self):
        """Return a `tf.data.Dataset` of `(text, label)` pairs (string, int32 scalars)."""
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(
            (tf.constant(self.texts, tf.string), tf.constant(self.labels, tf.int32))
        )


def decode_text(data, path):
    """Decode bytes as UTF-8, replacing invalid bytes with U+FFFD and warning about it.

    Args:
        data: bytes. The raw content.
        path: str or Path. The file the bytes came from, for the warning.

    Returns:
        The decoded `str`, without a leading byte-order mark.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data.decode("utf-8", errors="replace")
        count = text.count(REPLACEMENT_CHARACTER) - data.count(REPLACEMENT_CHARACTER.encode())
        warnings.warn(
            f"{path} is not valid UTF-8 (first bad byte at offset {e.start}); "
            f"{count} invalid byte sequence(s) were replaced by U+FFFD. Re-encode the file as "
            f"UTF-8 to keep those characters.",
            UnicodeWarning,
            stacklevel=3,
        )
    return text.removeprefix("\ufeff")


def read_text(path):
    """Read one text file as UTF-8 (see `decode_text`).

    Args:
        path: str or Path. The file.

    Returns:
        The text.

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError / PermissionError: it cannot be read (the error names the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Text file not found: {path}")
    return decode_text(path.read_bytes(), path)


def text_corpus(path, extensions=(".txt",)):
    """Read a text file, or every text file under a folder, as an unlabeled corpus.

    A folder is searched recursively; files are read in sorted order of their path, so the result
    is deterministic. Files whose text is empty or only whitespace are skipped.

    Args:
        path: str or Path. A file (any extension) or a folder.
        extensions: tuple of str. In a folder, which file name endings to read (case
            insensitive). Defaults to `(".txt",)`.

    Returns:
        A list of str, one document per file.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is empty, or the folder holds no non-empty file with one of
            `extensions`.

    Example:
    >>> docs = text_corpus("my_books/")
    >>> dataset = tf.data.Dataset.from_tensor_slices(docs)
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Corpus path not found: {path}")
    if path.is_file():
        text = read_text(path)
        if not text.strip():
            raise ValueError(f"The corpus file {path} is empty. Give a file that holds text.")
        return [text]
    suffixes = tuple(e.lower() for e in extensions)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))
    if not files:
        raise ValueError(
            f"The corpus folder {path} holds no file ending in {list(extensions)}. Pass "
            f"extensions=... to read other files."
        )
    texts = [read_text(f) for f in files]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(
            f"All {len(files)} file(s) ending in {list(extensions)} under {path} are empty."
        )
    return texts


def _delimiter_for(path, delimiter):
    if delimiter is not None:
        return delimiter
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    raise ValueError(
        f"Cannot tell the delimiter of {path} from its extension {suffix!r}: expected .csv, .tsv "
        f"or .tab. Pass delimiter=',' or delimiter='\\t'."
    )


def _sort_labels(names):
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


def labeled_csv(path, text_column="text", label_column="label", delimiter=None, label_names=None):
    """Read a CSV or TSV file with a header row as texts with labels.

    Rows whose text is empty are skipped (with a warning that counts them). Labels are read as
    strings and mapped to ids: by `label_names` if given, else by sorted order (numeric order
    when every label is a number, so `"0"`, `"1"`, `"2"` get ids 0, 1, 2).

    Args:
        path: str or Path. The file; `.csv` means comma-separated, `.tsv` or `.tab` tab-separated.
        text_column: str. The header of the text column. Defaults to `"text"`.
        label_column: str. The header of the label column. Defaults to `"label"`.
        delimiter: str. Overrides the delimiter picked from the extension. Defaults to `None`.
        label_names: sequence of str. The allowed labels in id order. Defaults to `None`.

    Returns:
        A `LabeledTexts`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, a named column is missing, a label is empty or not in
            `label_names`, or no row has text. The message names the file (and the line).

    Example:
    >>> data = labeled_csv("reviews.csv", text_column="review", label_column="stars")
    >>> dataset = data.as_dataset()
    """
    path = Path(path).expanduser()
    delimiter = _delimiter_for(path, delimiter)
    text = read_text(path)
    if not text.strip():
        raise ValueError(f"The labeled file {path} is empty. It needs a header row and rows.")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    missing = [c for c in (text_column, label_column) if c not in header]
    if missing:
        raise ValueError(
            f"{path} has no column {missing[0]!r} (looked for text_column={text_column!r}, "
            f"label_column={label_column!r}; the header has {header}). Pass the right column "
            f"names, or delimiter=... if the header was split wrongly."
        )
    texts, raw_labels, skipped = [], [], 0
    try:
        for row in reader:
            text_value = (row.get(text_column) or "").strip()
            label_value = (row.get(label_column) or "").strip()
            if not text_value:
                skipped += 1
                continue
            if not label_value:
                raise ValueError(
                    f"{path}, line {reader.line_num}: the label column {label_column!r} is empty."
                )
            texts.append(text_value)
            raw_labels.append(label_value)
    except csv.Error as e:
        raise ValueError(f"{path}, line {reader.line_num}: malformed {delimiter!r} row: {e}") from e
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} row(s) with an empty text.", stacklevel=2)
    if not texts:
        raise ValueError(f"{path} has a header but no row with text in column {text_column!r}.")
    if label_names is None:
        label_names = _sort_labels(set(raw_labels))
    label_names = tuple(str(name) for name in label_names)
    ids = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(raw_labels) - ids.keys())
    if unknown:
        raise ValueError(
            f"{path}: labels {unknown[:10]} are not in label_names={list(label_names)}. Add them "
            f"to label_names, or leave label_names=None to use every label found."
        )
    return LabeledTexts(texts, [ids[label] for label in raw_labels], label_names)
