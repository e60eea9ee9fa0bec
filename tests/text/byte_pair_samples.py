"""Shared fixtures of the byte-level BPE tests: corpora, varied strings, HF references."""

import codecs
import random
import re

from text_samples import varied_strings

from keras_transformer.data import movie_sentiment, shakespeare, sources
from keras_transformer.text.byte_pair_files import bytes_to_symbols

TRAIN_CHARACTERS = 400_000  # Enough Shakespeare for a 2,000-token vocabulary in well under 1 s.


def shakespeare_lines(split):
    """The lines of one split of the Shakespeare corpus, in order (blank lines kept)."""
    text = "\n\n".join(scene.text for scene in shakespeare.read_scenes(split))
    return text.split("\n")


def training_lines():
    """The first `TRAIN_CHARACTERS` of the Shakespeare training text, as lines."""
    return "\n".join(shakespeare_lines("train"))[:TRAIN_CHARACTERS].split("\n")


def edge_cases(rng):
    """Hand-made strings for the corners of GPT-2's pre-tokenization and of byte-level BPE."""
    cases = [
        "",
        " ",
        "  ",
        "     ",
        "\t",
        "\n",
        "\n\n\n",
        " \n ",
        "\t\t x",
        "a  b",
        "a   b   ",
        "  leading",
        "trailing  ",
        " both ",
        "line one\nline two\n",
        "tabs\tand\ttabs",
        "\r\n",
        "x\u3000\u3000y",
        "\u00a0nbsp\u00a0 \u00a0",
        "\u2028\u2029\x85",
        "0",
        "1234567890",
        " 42 and 3.14159 and 1,000,000",
        "٣٤ १२३ １２３ ½ ⅷ",
        "it's",
        "you're",
        "we'll",
        "they've",
        "I'm",
        "he'd",
        "don't",
        "'s 're 'll 've 'm 'd 't",
        "  's",
        "\n's",
        "''s",
        "IT'S DON'T",
        "o'er 'tis thou'rt",
        "!!!",
        "?!?!...",
        "--- *** ### @@@",
        " ... ,,, ;;;",
        "(a) [b] {c} <d>",
        "café naïve résumé",
        "e\u0301 a\u0308 n\u0303",
        "Ångström Øresund Łódź",
        "😀 👍🏽 👨\u200d👩\u200d👧 🇫🇷",
        "emoji😀inside",
        "日本語のテキスト",
        "中文字符 漢字",
        "한국어 텍스트",
        "Привет мир Ελληνικά",
        "עברית العربية हिन्दी",
        "\x00\x01\x07\x1f\x7f",
        "\ufeffBOM",
        "\ufffd replacement",
        "<|endoftext|>",
        "before<|endoftext|>after",
        "a" * 5000,
        "é" * 5000,
        "ab" * 2500,
        "".join(rng.choice("abcdefghij") for _ in range(5000)),
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5000)),
        " " * 5000,
        "!" * 5000,
        "9" * 5000,
    ]
    return cases


def invalid_utf8(strings, count, rng):
    """`count` byte strings that are not valid UTF-8, made by corrupting `strings`."""
    corrupt = [b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"]
    corrupt += [b"\xf0\x9f\x98", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
    out = [b"\xff", b"\x80", b"a\xffb", b"  \xff", b"\xff  x", b"\xe2\x82a", b"\xc3"]
    out += [b"\xed\xa0\x80\xed\xbf\xbf", b"caf\xe9 cr\xe8me", b"<|endoftext|>\xff"]
    while len(out) < count:
        data = bytearray(rng.choice(strings).encode("utf-8"))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice(corrupt)
        if rng.random() < 0.3:
            data[rng.randrange(len(data))] = rng.randrange(128, 256)
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            out.append(bytes(data))
    return out


def parity_strings(seed=0):
    """At least 5,000 varied byte strings: held-out Shakespeare, movie reviews, edge cases.

    Returns:
        dict from group name to a list of bytes.
    """
    rng = random.Random(seed)
    lines = shakespeare_lines("validation")
    held_out = [line for line in lines if line][:1800]
    # Passages of several lines keep newlines, blank lines and indentation.
    starts = rng.sample(range(len(lines) - 6), 400)
    passages = ["\n".join(lines[s : s + rng.randrange(2, 6)]) for s in starts]
    rows = movie_sentiment.read_rated_sentences(sources.fetch("vadersentiment"), "movies")
    reviews = [row.text for row in rows[:1600]]
    varied = varied_strings(1000, seed=seed + 11)
    groups = {
        "shakespeare lines": held_out,
        "shakespeare passages": passages,
        "movie reviews": reviews,
        "varied": varied,
        "edge cases": edge_cases(rng),
    }
    groups = {name: [s.encode("utf-8") for s in strings] for name, strings in groups.items()}
    groups["invalid utf-8"] = invalid_utf8(held_out[:200] + varied[:200] + reviews[:200], 300, rng)
    return groups


_ERRORS = []


def _record(error):
    _ERRORS.append((error.start, error.end))
    return ("\ufffd", error.end)


codecs.register_error("byte_pair_samples_record", _record)


def reference_ids(tokenizer, data, special_tokens=()):
    """Hugging Face `tokenizers` ids of a byte string (a `tokenizers.Tokenizer`).

    Valid UTF-8 goes through `tokenizer.encode`. Hugging Face cannot take other bytes, so for
    them the reference is built from its parts: the text, with each ill-formed sequence
    replaced by U+FFFD (as Python decodes it), is cut at the special tokens (Python's `re`,
    longest first) and split by Hugging Face's pre-tokenizer; its BPE model encodes each
    word's original bytes.
    """
    _ERRORS.clear()
    text = data.decode("utf-8", "byte_pair_samples_record")
    if not _ERRORS:
        return tokenizer.encode(text).ids
    errors = list(_ERRORS)
    offsets, position, k = [], 0, 0
    for char in text:
        offsets.append(position)
        if k < len(errors) and errors[k][0] == position:
            position = errors[k][1]
            k += 1
        else:
            position += len(char.encode("utf-8"))
    offsets.append(position)
    assert position == len(data)
    ordered = sorted(special_tokens, key=len, reverse=True)
    pattern = "(" + "|".join(re.escape(t) for t in ordered) + ")" if ordered else None
    pieces = re.split(pattern, text) if pattern else [text]
    ids, begin = [], 0
    for index, piece in enumerate(pieces):
        if index % 2:
            ids.append(tokenizer.token_to_id(piece))
        else:
            for _, (start, end) in tokenizer.pre_tokenizer.pre_tokenize_str(piece):
                word = data[offsets[begin + start] : offsets[begin + end]]
                ids.extend(token.id for token in tokenizer.model.tokenize(bytes_to_symbols(word)))
        begin += len(piece)
    return ids
