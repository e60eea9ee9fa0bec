"""The `date_to_iso` dataset: dates written many ways -> ISO 8601, for encoder-decoder models.

Each example is a `source` such as `"Friday, March 5, 2021"`, `"5th of march 2021"`,
`"03/05/2021"` or `"05.03.2021"` and its `target` `"2021-03-05"`. The model must find the day,
month and year wherever the format puts them, turn month names into numbers and pad with zeros:
a copy-and-reorder task that needs attention, not just memorised tokens. Every format is
unambiguous: slashes are always month/day/year (US), dots always day.month.year (European),
and `year/month/day` is written with the year first, so the target is a function of the source.

Dates run from 1900-01-01 to 2099-12-31. Each date belongs to one split only (by a hash of the
date: 90% train, 5% validation, 5% test), so a test date is never seen in training, in any
format. Sources are unique within a split. Generation uses sha256 of `(seed, split, index)`
only, so it is identical on every machine and Python version.

Also here: `load_pairs_tsv`, which reads the user's own `source<TAB>target` pairs.
"""

import datetime
import hashlib
from pathlib import Path

import tensorflow_datasets as tfds

from keras_transformer.data.corpora import read_text

FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)
SPLIT_SIZES = {"train": 50_000, "validation": 2_000, "test": 2_000}
SPLITS = tuple(SPLIT_SIZES)
SEED = 0
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day):
    if day in (11, 12, 13):
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def _styles():
    month = lambda d: MONTHS[d.month - 1]  # noqa: E731
    mon = lambda d: MONTHS[d.month - 1][:3]  # noqa: E731
    weekday = lambda d: WEEKDAYS[d.weekday()]  # noqa: E731
    return (
        lambda d: f"{month(d)} {d.day}, {d.year}",  # March 5, 2021
        lambda d: f"{mon(d)} {d.day}, {d.year}",  # Mar 5, 2021
        lambda d: f"{d.day} {month(d)} {d.year}",  # 5 March 2021
        lambda d: f"{d.day:02d} {mon(d)} {d.year}",  # 05 Mar 2021
        lambda d: f"{weekday(d)}, {month(d)} {d.day}, {d.year}",  # Friday, March 5, 2021
        lambda d: f"{weekday(d)[:3]}, {d.day} {mon(d)} {d.year}",  # Fri, 5 Mar 2021
        lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",  # 03/05/2021
        lambda d: f"{d.month}/{d.day}/{d.year}",  # 3/5/2021
        lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 05.03.2021
        lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",  # 2021/03/05
        lambda d: f"{d.year}{d.month:02d}{d.day:02d}",  # 20210305
        lambda d: f"{d.day}-{mon(d)}-{d.year}",  # 5-Mar-2021
        lambda d: f"the {_ordinal(d.day)} of {month(d)}, {d.year}",  # the 5th of March, 2021
        lambda d: f"{month(d)} {_ordinal(d.day)}, {d.year}",  # March 5th, 2021
        lambda d: f"{month(d).upper()} {d.day}, {d.year}",  # MARCH 5, 2021
        lambda d: f"{d.day} {month(d).lower()} {d.year}",  # 5 march 2021
        lambda d: f"{d.year}, {month(d)} {d.day}",  # 2021, March 5
        lambda d: f"{mon(d).lower()} {d.day:02d} {d.year}",  # mar 05 2021
    )


STYLES = _styles()
NUM_DAYS = (LAST_DATE - FIRST_DATE).days + 1


def format_date(date, style):
    """Write `date` in one of the `len(STYLES)` source formats.

    Args:
        date: datetime.date. The date.
        style: int. The index of the format in `STYLES`.

    Returns:
        The formatted string.
    """
    if not 0 <= style < len(STYLES):
        raise ValueError(f"style must be in [0, {len(STYLES)}); received style={style}.")
    return STYLES[style](date)


def split_of_date(date):
    """Return the split that owns `date`: 90% train, 5% validation, 5% test, by hash."""
    bucket = int(hashlib.sha256(f"date_to_iso:{date.isoformat()}".encode()).hexdigest(), 16) % 100
    if bucket < 90:
        return "train"
    return "validation" if bucket < 95 else "test"


def date_pairs(split="train", num_examples=None, seed=SEED):
    """Generate `(source, target)` pairs of the `date_to_iso` task, deterministically.

    Args:
        split: str. `"train"`, `"validation"` or `"test"`; each owns its own dates. Defaults to
            `"train"`.
        num_examples: int. How many pairs. Defaults to `SPLIT_SIZES[split]`.
        seed: int. Another seed gives other pairs from the same dates. Defaults to `SEED`.

    Returns:
        A list of `(source, target)` string pairs; sources are unique.

    Example:
    >>> date_pairs("test", 2)
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split: split={split!r}. Expected one of {SPLITS}.")
    if num_examples is None:
        num_examples = SPLIT_SIZES[split]
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0; received num_examples={num_examples}.")
    pairs, seen, counter = [], set(), 0
    while len(pairs) < num_examples:
        digest = hashlib.sha256(f"{seed}:{split}:{counter}".encode()).digest()
        counter += 1
        date = FIRST_DATE + datetime.timedelta(days=int.from_bytes(digest[:8], "big") % NUM_DAYS)
        if split_of_date(date) != split:
            continue
        source = format_date(date, digest[8] % len(STYLES))
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source, date.isoformat()))
    return pairs


class DateToIso(tfds.core.GeneratorBasedBuilder):
    """Dates written many ways (source) and their ISO 8601 form (target)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 18 formats, 1900-2099, seed 0, 50k/2k/2k."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {"source": tfds.features.Text(), "target": tfds.features.Text()}
            ),
            supervised_keys=("source", "target"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated: nothing to download.
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        for i, (source, target) in enumerate(date_pairs(split)):
            yield i, {"source": source, "target": target}


def load_date_pairs(split="train", data_dir=None):
    """Load one split of `date_to_iso` through its tfds builder (prepared once, then cached).

    Args:
        split: str. `"train"`, `"validation"` or `"test"`. Defaults to `"train"`.
        data_dir: str or Path. The tfds data folder. Defaults to tfds's.

    Returns:
        A list of `(source, target)` pairs, in the order of `date_pairs(split)`.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split: split={split!r}. Expected one of {SPLITS}.")
    builder = DateToIso(data_dir=None if data_dir is None else str(data_dir))
    builder.download_and_prepare()
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    pairs = [(ex["source"].decode(), ex["target"].decode()) for ex in tfds.as_numpy(dataset)]
    order = {source: i for i, (source, _) in enumerate(date_pairs(split))}
    return sorted(pairs, key=lambda pair: order.get(pair[0], len(order)))


def load_pairs_tsv(path):
    """Read the user's own sequence-to-sequence pairs: one `source<TAB>target` per line.

    Blank lines are skipped; columns after the second (such as the attribution column of
    Tatoeba files) are ignored. Invalid UTF-8 bytes become U+FFFD with a warning.

    Args:
        path: str or Path. The tab-separated file.

    Returns:
        A list of `(source, target)` string pairs, in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, or a line lacks a tab, a source or a target (the
            message names the file and line).

    Example:
    >>> pairs = load_pairs_tsv("fra.txt")
    """
    path = Path(path).expanduser()
    text = read_text(path)
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(
                f"{path}, line {number}: expected 'source<TAB>target', found no tab in "
                f"{line[:80]!r}."
            )
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise ValueError(f"{path}, line {number}: the {side} is empty.")
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"{path} is empty: it holds no 'source<TAB>target' line.")
    return pairs
