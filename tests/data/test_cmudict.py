import dataclasses
import hashlib
import zipfile

import pytest
import tensorflow_datasets as tfds

from keras_transformer.data import cmudict, sources

SAMPLE = """\
'bout B AW1 T
a AH0
a(2) EY1
aalborg AO1 L B AO0 R G # place, danish
aalborg(2) AA1 L B AO0 R G

hello HH AH0 L OW1
hello(2) HH EH0 L OW1
mormonism M AO1 R M AH0 N IH0 Z AH0 M
mormonism(2) M AO1 R M AH0 N IH0 Z AH0 M
d'artagnan D AH0 R T AE1 NG Y AH0 N # foreign french
"""


@pytest.fixture(scope="module")
def cmudict_wheel():
    """The pinned cmudict wheel, from the default cache (downloaded once with pip if absent)."""
    return sources.fetch("cmudict")


@pytest.fixture(scope="module")
def entries(cmudict_wheel):
    return cmudict.read_cmudict(cmudict_wheel)


@pytest.fixture(scope="module")
def splits(entries):
    return cmudict.split_words(entries)


def test_parse_sample():
    assert cmudict.parse_cmudict(SAMPLE) == {
        "'bout": ("B AW1 T",),
        "a": ("AH0", "EY1"),
        "aalborg": ("AO1 L B AO0 R G", "AA1 L B AO0 R G"),  # The comment is gone.
        "hello": ("HH AH0 L OW1", "HH EH0 L OW1"),
        "mormonism": ("M AO1 R M AH0 N IH0 Z AH0 M",),  # Listed twice, kept once.
        "d'artagnan": ("D AH0 R T AE1 NG Y AH0 N",),
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("hello", "'hello' has no phoneme"),
        ("hello # only a comment", "'hello' has no phoneme"),
        ("hello HH AH L OW1", r"\['AH'\] are not ARPAbet phonemes"),
        ("hello HH0 AH0 L OW1", r"\['HH0'\] are not ARPAbet phonemes"),
        ("hello hh ah0", r"\['hh', 'ah0'\] are not"),
        ("hello(x) HH AH0 L OW1", "got the word 'hello\\(x\\)'"),
        ("(2) EY1", "got the word '\\(2\\)'"),
        ("hel(lo HH AH0", "got the word 'hel\\(lo'"),
    ],
)
def test_bad_line_names_file_and_line(line, message):
    with pytest.raises(ValueError, match=rf"sample.dict, line 2: .*{message}"):
        cmudict.parse_cmudict(f"a AH0\n{line}\n", filename="sample.dict")


def test_empty_dictionary_is_an_error():
    with pytest.raises(ValueError, match="holds no 'word PHONEMES' line"):
        cmudict.parse_cmudict("\n# nothing\n", filename="sample.dict")


def test_registry_entry_matches_the_wheel(cmudict_wheel):
    artifact = sources.ARTIFACTS["cmudict"]
    assert cmudict_wheel.name == artifact.filename == "cmudict-1.1.3-py3-none-any.whl"
    assert sources.sha256_of(cmudict_wheel) == artifact.sha256
    assert cmudict_wheel.stat().st_size == artifact.size


def test_counts(cmudict_wheel, entries):
    with zipfile.ZipFile(cmudict_wheel) as archive:
        lines = archive.read(cmudict.MEMBER).decode("ascii").splitlines()
    assert len(lines) == 135_166
    assert len(entries) == 126_052
    # Two words list one pronunciation twice: mormonism and tribalism.
    assert sum(len(listed) for listed in entries.values()) == len(lines) - 2
    assert max(len(listed) for listed in entries.values()) == 4


def test_known_entries(entries):
    assert entries["hello"] == ("HH AH0 L OW1", "HH EH0 L OW1")
    assert entries["a"] == ("AH0", "EY1")
    assert entries["aalborg"] == ("AO1 L B AO0 R G", "AA1 L B AO0 R G")
    assert entries["spieth"] == ("S P IY1 TH", "S P AY1 AH0 TH")  # Both lines had comments.
    assert entries["tribalism"] == ("T R AY1 B AH0 L IH0 Z AH0 M",)
    assert entries["d'artagnan"] == ("D AH0 R T AE1 NG Y AH0 N",)
    assert entries["a.m."] == ("EY2 EH1 M",)


def test_markers_and_comments_are_gone(entries):
    used = set()
    for word, listed in entries.items():
        assert word and set(word) <= set("abcdefghijklmnopqrstuvwxyz'-."), word
        assert listed and len(set(listed)) == len(listed), word
        for pronunciation in listed:
            phonemes = pronunciation.split(" ")
            assert set(phonemes) <= cmudict.PHONEMES, (word, pronunciation)
            used.update(phonemes)
    assert used == cmudict.PHONEMES  # All 69 symbols, stress digits kept.


def test_split_sizes(splits, entries):
    assert {name: len(part) for name, part in splits.items()} == {
        "train": 100_842,
        "validation": 12_605,
        "test": 12_605,
    }
    for name, fraction in cmudict.SPLIT_FRACTIONS.items():
        assert len(splits[name]) == pytest.approx(fraction * len(entries), abs=1)


def test_each_word_lives_in_one_split_with_all_its_pronunciations(splits, entries):
    seen = {}
    for name, part in splits.items():
        assert part.words == sorted(part.words)
        for word, listed in zip(part.words, part.pronunciations, strict=True):
            assert word not in seen, (word, seen.get(word), name)
            seen[word] = name
            assert listed == entries[word]
    assert seen.keys() == entries.keys()
    assert seen["hello"] == "train"


def test_seeded_split_is_stable(entries, splits):
    assert cmudict.split_words(entries) == splits
    # The test words are pinned: changing the order key or the cut changes this digest.
    digest = hashlib.sha256("\n".join(splits["test"].words).encode()).hexdigest()
    assert digest == TEST_WORDS_SHA256
    assert splits["test"].words[:3] == ["'bout", "'course", "'frisco"]
    other = cmudict.split_words(entries, seed=1)
    assert other["test"].words != splits["test"].words
    assert len(other["test"]) == len(splits["test"])


def test_pairs_expand_every_pronunciation(splits):
    part = splits["validation"]
    pairs = part.pairs()
    assert len(pairs) == sum(len(listed) for listed in part.pronunciations)
    grouped = {}
    for word, pronunciation in pairs:  # Regrouping the pairs gives the words back.
        grouped.setdefault(word, []).append(pronunciation)
    assert list(grouped) == part.words
    assert [tuple(listed) for listed in grouped.values()] == part.pronunciations
    small = cmudict.Pronunciations(["a", "hello"], [("AH0", "EY1"), ("HH AH0 L OW1",)])
    assert small.pairs() == [("a", "AH0"), ("a", "EY1"), ("hello", "HH AH0 L OW1")]
    decoded = [(s.decode(), t.decode()) for s, t in tfds.as_numpy(small.as_dataset())]
    assert decoded == small.pairs()


def test_strip_stress():
    assert cmudict.strip_stress("HH AH0 L OW1") == "HH AH L OW"
    assert cmudict.strip_stress("T R AY1 B AH0 L IH2 Z AH0 M") == "T R AY B AH L IH Z AH M"
    assert cmudict.strip_stress("B AW1 T") == "B AW T"


def _fake_wheel(folder, text):
    path = folder / sources.ARTIFACTS["cmudict"].filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(cmudict.MEMBER, text)
        archive.writestr("cmudict/data/LICENSE", "BSD-style\n")
    return path


@pytest.fixture
def small_source(tmp_path, monkeypatch, cmudict_wheel):
    """A wheel holding the first 400 lines of the real dictionary and `hello`, pinned in place
    of the real one, so that the tfds builder runs in a second instead of 15."""
    with zipfile.ZipFile(cmudict_wheel) as archive:
        lines = archive.read(cmudict.MEMBER).decode("ascii").splitlines()
    text = "\n".join(lines[:400] + [line for line in lines if line.startswith("hello")]) + "\n"
    folder = tmp_path / "sources"
    folder.mkdir()
    path = _fake_wheel(folder, text)
    pinned = dataclasses.replace(
        sources.ARTIFACTS["cmudict"], sha256=sources.sha256_of(path), size=path.stat().st_size
    )
    monkeypatch.setitem(sources.ARTIFACTS, "cmudict", pinned)
    return folder, cmudict.split_words(cmudict.parse_cmudict(text))


def test_tfds_round_trip_offline(tmp_path, small_source):
    import keras_transformer.data  # noqa: F401  (registers the builders)

    folder, expected = small_source
    data_dir = tmp_path / "tensorflow_datasets"
    for split in cmudict.SPLITS:
        loaded = cmudict.load_cmudict(split, data_dir=data_dir, source_dir=folder)
        assert loaded == expected[split]
    assert "hello" in expected["train"].words
    dataset = tfds.load("cmudict", split="train", data_dir=data_dir)
    examples = {
        ex["word"].decode(): tuple(p.decode() for p in ex["pronunciations"])
        for ex in tfds.as_numpy(dataset)
    }
    part = expected["train"]
    assert examples == dict(zip(part.words, part.pronunciations, strict=True))
    assert examples["hello"] == ("HH AH0 L OW1", "HH EH0 L OW1")


def test_load_without_stress(tmp_path, small_source):
    folder, expected = small_source
    loaded = cmudict.load_cmudict(
        "train", stress=False, data_dir=tmp_path / "tfds", source_dir=folder
    )
    assert loaded.words == expected["train"].words
    for listed, with_stress in zip(
        loaded.pronunciations, expected["train"].pronunciations, strict=True
    ):
        assert listed == tuple(dict.fromkeys(cmudict.strip_stress(p) for p in with_stress))
    hello = loaded.pronunciations[loaded.words.index("hello")]
    assert hello == ("HH AH L OW", "HH EH L OW")


@pytest.mark.slow
def test_full_tfds_round_trip(tfds_dir, splits):
    for split in cmudict.SPLITS:
        assert cmudict.load_cmudict(split, data_dir=tfds_dir) == splits[split]


def test_corrupt_wheel_names_the_file(tmp_path):
    path = tmp_path / "cmudict-1.1.3-py3-none-any.whl"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(sources.CorruptArchiveError, match=str(path)):
        cmudict.read_cmudict(path)


def test_wheel_without_dictionary(tmp_path):
    path = tmp_path / "cmudict-1.1.3-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cmudict/__init__.py", "")
    with pytest.raises(sources.CorruptArchiveError, match="holds no cmudict/data/cmudict.dict"):
        cmudict.read_cmudict(path)


def test_broken_dictionary_in_wheel_names_member_and_line(tmp_path):
    path = _fake_wheel(tmp_path, "a AH0\nhello HH AH0 L OW9\n")
    with pytest.raises(ValueError, match=r"cmudict.dict, line 2: \['OW9'\]"):
        cmudict.read_cmudict(path)


def test_missing_wheel_and_unknown_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.whl"):
        cmudict.read_cmudict(tmp_path / "nothing.whl")
    with pytest.raises(ValueError, match="'dev'"):
        cmudict.load_cmudict("dev")
    with pytest.raises(FileNotFoundError, match="cmudict-1.1.3-py3-none-any.whl"):
        cmudict.prepare(source_dir=tmp_path)


TEST_WORDS_SHA256 = "d6b67a778a52df657948613b0c8d4141c26c6ca36e5fddf1bd0ab542ca2615f4"
