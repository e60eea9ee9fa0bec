"""Byte-level BPE files: vocab.json, merges.txt and tokenizer.json, good and bad."""

import json

import pytest
import tokenizers

from keras_transformer.text import BytePairTokenizer
from keras_transformer.text.byte_pair_files import (
    BYTE_SYMBOLS,
    bytes_to_symbols,
    load_tokenizer_json,
    symbols_to_bytes,
)

TOKENS = ["Ġt", "he", "Ġthe", "ll"]
VOCAB = list(BYTE_SYMBOLS) + TOKENS + ["<|endoftext|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "l l"]


def _write_vocab(path, vocab):
    """One entry per line, so that errors can name a line other than the first."""
    entries = [f"  {json.dumps(token)}: {json.dumps(i)}" for token, i in vocab]
    path.write_text("{\n" + ",\n".join(entries) + "\n}\n", encoding="utf-8")
    return str(path)


def _write_merges(path, lines):
    path.write_text("#version: 0.2\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    vocab = _write_vocab(tmp_path / "vocab.json", [(t, i) for i, t in enumerate(VOCAB)])
    merges = _write_merges(tmp_path / "merges.txt", MERGES)
    return vocab, merges


def test_byte_symbols_are_gpt2s_map():
    assert len(set(BYTE_SYMBOLS)) == 256
    assert BYTE_SYMBOLS[ord(" ")] == "Ġ" and BYTE_SYMBOLS[ord("\n")] == "Ċ"
    assert BYTE_SYMBOLS[ord("a")] == "a" and BYTE_SYMBOLS[0] == "Ā"
    assert sorted(BYTE_SYMBOLS) == sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    data = bytes(range(256))
    assert symbols_to_bytes(bytes_to_symbols(data)) == data
    assert symbols_to_bytes("a b") is None  # A plain space is not a byte symbol.


def test_files_load_and_round_trip(files, tmp_path):
    vocab_path, merges_path = files
    tokenizer = BytePairTokenizer(vocab_path, merges_path, special_tokens=["<|endoftext|>"])
    assert tokenizer.get_vocabulary() == VOCAB and tokenizer.merges == MERGES
    ids = tokenizer([" the hello<|endoftext|>"]).to_list()
    assert ids == [[258, VOCAB.index("Ġ"), 257, 259, VOCAB.index("o"), 260]]
    again = BytePairTokenizer(*tokenizer.save_files(tmp_path / "again"))
    assert again.get_vocabulary() == VOCAB and again.merges == MERGES
    # A dict vocabulary and merges as pairs, and merges.txt without its #version line.
    (tmp_path / "bare.txt").write_text("\n".join(MERGES) + "\n", encoding="utf-8")
    bare = BytePairTokenizer({t: i for i, t in enumerate(VOCAB)}, str(tmp_path / "bare.txt"))
    assert bare.merges == MERGES
    assert BytePairTokenizer(VOCAB, [m.split(" ") for m in MERGES]).merges == MERGES


@pytest.mark.parametrize(
    "lines, message",
    [
        (["Ġ t", "h e x", "l l"], r"merges.txt line 3: a merge is two tokens .* 'h e x'"),
        (["Ġ t", "", "l l"], r"merges.txt line 3: a merge is two tokens .* ''"),
        (["Ġ t", "he"], r"merges.txt line 3: a merge is two tokens .* 'he'"),
        (["Ġ t", "h  e"], r"merges.txt line 3: a merge is two tokens"),
        (["Ġ t", "h e", "Ġt zz"], r"merges.txt line 4: the token 'zz' of the merge 'Ġt zz'"),
        (["Ġ t", "a b"], r"merges.txt line 3: the merged token 'ab' of the merge 'a b' is not"),
    ],
)
def test_a_bad_merges_file_fails_naming_the_line(files, tmp_path, lines, message):
    vocab_path, _ = files
    merges_path = _write_merges(tmp_path / "bad_merges.txt", lines)
    with pytest.raises(ValueError, match=message):
        BytePairTokenizer(vocab_path, merges_path)


def _entries(replace=None, drop=None, extra=()):
    entries = [(t, i) for i, t in enumerate(VOCAB)]
    if drop is not None:
        entries = [e for e in entries if e[0] != drop]
    if replace is not None:
        entries = [replace.get(t, (t, i)) for t, i in entries]
    return entries + list(extra)


@pytest.mark.parametrize(
    "entries, message",
    [
        # Line numbers: line 1 is "{", token i is on line i + 2.
        (_entries(extra=[("he", 262)]), r"vocab.json line 263: the token 'he' appears twice"),
        (
            _entries(extra=[("xyz", 5)]),
            r"vocab.json line 263: the tokens .* and 'xyz' both have id 5",
        ),
        (_entries(replace={"ll": ("ll", "7")}), r"vocab.json line 261: the id of 'll' must be"),
        (_entries(replace={"ll": ("ll", 300)}), r"id 259 is missing"),
        (_entries(drop="Ā"), r"id 0 is missing"),
    ],
)
def test_a_bad_vocabulary_file_fails_naming_the_line(files, tmp_path, entries, message):
    _, merges_path = files
    vocab_path = _write_vocab(tmp_path / "bad_vocab.json", entries)
    with pytest.raises(ValueError, match=message):
        BytePairTokenizer(vocab_path, merges_path)


def test_bad_vocabularies_fail_clearly(files, tmp_path):
    _, merges_path = files
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "a": 0,\n  "b" 1\n}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.json line 3: not valid JSON"):
        BytePairTokenizer(str(broken), merges_path)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(VOCAB), encoding="utf-8")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        BytePairTokenizer(str(listed), merges_path)
    no_byte = [t for t in VOCAB if t != "Ā"]  # Byte 0x00's symbol.
    with pytest.raises(ValueError, match=r"lacks 1 of the 256 byte symbols, e.g. 'Ā' \(byte 0x00"):
        BytePairTokenizer(no_byte, [])
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        BytePairTokenizer(str(tmp_path / "missing.json"), merges_path)
    with pytest.raises(ValueError, match="twice"):
        BytePairTokenizer(VOCAB + ["he"], MERGES)


def test_tokenizer_json_of_hugging_face_loads(tmp_path):
    reference = tokenizers.Tokenizer(
        tokenizers.models.BPE(
            {t: i for i, t in enumerate(VOCAB)}, [tuple(m.split()) for m in MERGES]
        )
    )
    reference.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True)
    reference.decoder = tokenizers.decoders.ByteLevel()
    reference.add_special_tokens(["<|endoftext|>", "<pad>"])
    path = tmp_path / "tokenizer.json"
    reference.save(str(path))
    loaded = load_tokenizer_json(str(path))
    assert loaded["special_tokens"] == ["<|endoftext|>", "<pad>"]
    assert loaded["add_prefix_space"] is True and loaded["merges"] == MERGES
    tokenizer = BytePairTokenizer.from_tokenizer_json(str(path))
    assert tokenizer.vocabulary_size() == len(VOCAB) + 1
    texts = ["the hello", "<pad>the<|endoftext|>ll", "  the", ""]
    assert tokenizer(texts).to_list() == [e.ids for e in reference.encode_batch(texts)]
    # Merges in the older "a b" string form load too.
    data = json.loads(path.read_text(encoding="utf-8"))
    data["model"]["merges"] = MERGES
    path.write_text(json.dumps(data), encoding="utf-8")
    assert BytePairTokenizer.from_tokenizer_json(str(path)).merges == MERGES


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(normalizer={"type": "NFC"}), "a normalizer \\(NFC\\)"),
        (lambda d: d["model"].update(type="WordPiece"), "the model must be BPE"),
        (lambda d: d["model"].update(dropout=0.1), "dropout=0.1"),
        (lambda d: d["model"].update(ignore_merges=True), "ignore_merges=True"),
        (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "must be ByteLevel"),
        (lambda d: d["pre_tokenizer"].update(use_regex=False), "use_regex=false"),
        (lambda d: d["added_tokens"][0].update(lstrip=True), r"'<\|endoftext\|>' has lstrip"),
        (lambda d: d["model"]["merges"].append(["Ġthe", "zz"]), r"'zz' of the merge"),
    ],
)
def test_unsupported_tokenizer_json_fails_clearly(tmp_path, change, message):
    tokenizer = BytePairTokenizer(VOCAB, MERGES, special_tokens=["<|endoftext|>"])
    path = tokenizer.save_tokenizer_json(str(tmp_path / "tokenizer.json"))
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    change(data)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file)
    with pytest.raises(ValueError, match=message):
        BytePairTokenizer.from_tokenizer_json(path)
