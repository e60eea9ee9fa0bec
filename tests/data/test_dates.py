import calendar
import datetime
import re

import pytest

from keras_transformer.data import dates

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
WEEKDAYS.update({name.lower(): i for i, name in enumerate(calendar.day_abbr)})


def parse_date(source):
    """An independent reader of every format, written from the formats' documentation."""
    s = source.lower().strip()
    if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", s):  # US: month first.
        month, day, year = map(int, m.groups())
        return datetime.date(year, month, day)
    if m := re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})", s):  # European: day first.
        day, month, year = map(int, m.groups())
        return datetime.date(year, month, day)
    if m := re.fullmatch(r"(\d{4})/?(\d{2})/?(\d{2})", s):  # Year first.
        return datetime.date(*map(int, m.groups()))
    words = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", s)
    words = re.sub(r"\b(the|of)\b", " ", words)
    tokens = re.split(r"[\s,\-]+", words.strip())
    weekday = [WEEKDAYS[t] for t in tokens if t in WEEKDAYS]
    (month,) = [MONTHS[t] for t in tokens if t in MONTHS]
    (year,) = [int(t) for t in tokens if t.isdigit() and len(t) == 4]
    (day,) = [int(t) for t in tokens if t.isdigit() and len(t) <= 2]
    date = datetime.date(year, month, day)
    assert weekday in ([], [date.weekday()]), f"wrong weekday in {source!r}"
    return date


@pytest.mark.parametrize("split", dates.SPLITS)
def test_target_is_the_iso_form_of_the_source(split):
    pairs = dates.date_pairs(split, num_examples=1_000)
    for source, target in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        assert parse_date(source).isoformat() == target, source
    assert len({source for source, _ in pairs}) == len(pairs)


def test_every_style_is_used_and_unambiguous():
    date = datetime.date(2021, 3, 5)
    written = [dates.format_date(date, style) for style in range(len(dates.STYLES))]
    assert "03/05/2021" in written and "05.03.2021" in written
    assert "Friday, March 5, 2021" in written and "the 5th of March, 2021" in written
    assert all(parse_date(text) == date for text in written)
    used = {
        style
        for source, target in dates.date_pairs("train", num_examples=2_000)
        for style in range(len(dates.STYLES))
        if dates.format_date(datetime.date.fromisoformat(target), style) == source
    }
    assert used == set(range(len(dates.STYLES)))


def test_ordinals():
    ordinals = {
        d: dates.format_date(datetime.date(2000, 1, d), 13)
        for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)
    }
    assert [text.split()[1] for text in ordinals.values()] == [
        "1st,",
        "2nd,",
        "3rd,",
        "4th,",
        "11th,",
        "12th,",
        "13th,",
        "21st,",
        "22nd,",
        "23rd,",
        "31st,",
    ]


def test_deterministic_by_seed():
    assert dates.date_pairs("train", 500, seed=7) == dates.date_pairs("train", 500, seed=7)
    assert dates.date_pairs("train", 500, seed=7) != dates.date_pairs("train", 500, seed=8)
    # A longer list starts with the shorter one.
    assert dates.date_pairs("test", 800)[:300] == dates.date_pairs("test", 300)


def test_splits_never_share_a_date():
    targets = {split: {t for _, t in dates.date_pairs(split, 2_000)} for split in dates.SPLITS}
    assert not targets["train"] & targets["validation"]
    assert not targets["train"] & targets["test"]
    assert not targets["validation"] & targets["test"]


def test_tfds_round_trip_offline(tfds_dir):
    pairs = dates.load_date_pairs("validation", data_dir=tfds_dir)
    assert pairs == dates.date_pairs("validation")
    assert len(pairs) == dates.SPLIT_SIZES["validation"]


def test_load_pairs_tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(
        b"\xef\xbb\xbfGo.\tVa !\tCC-BY 2.0 (France) Attribution\r\n\r\nHi.\tSalut !\r\n"
    )
    assert dates.load_pairs_tsv(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_load_pairs_tsv_errors(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("a\tb\nno tab on this line\n")
    with pytest.raises(ValueError, match=r"pairs.tsv, line 2: expected 'source<TAB>target'"):
        dates.load_pairs_tsv(path)
    path.write_text("a\tb\nc\t  \n")
    with pytest.raises(ValueError, match="line 2: the target is empty"):
        dates.load_pairs_tsv(path)
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="pairs.tsv is empty"):
        dates.load_pairs_tsv(path)
    with pytest.raises(FileNotFoundError, match="absent.tsv"):
        dates.load_pairs_tsv(tmp_path / "absent.tsv")


def test_load_pairs_tsv_replaces_invalid_utf8(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("café\tcoffee\n".encode("latin-1"))
    with pytest.warns(UnicodeWarning, match="latin1.tsv"):
        pairs = dates.load_pairs_tsv(path)
    assert pairs == [("caf\ufffd", "coffee")]
