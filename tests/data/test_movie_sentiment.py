import io
import tarfile

import pytest
import tensorflow_datasets as tfds

from keras_transformer.data import movie_sentiment as ms
from keras_transformer.data import sources

SAMPLE = (
    "1\t2.26666666667\tA splash even greater than Arnold.\r\n"
    "2\t-0.6\tEffective but too tepid biopic\r\n"
    "3\t0.4\tNeutral enough.\r\n"
    "4\t-0.5\tJust negative.\r\n"
    "5\t0.5\tJust positive.\r\n"
    "6\t3.0\tA splash even greater than Arnold.\r\n"
)


def test_parse_and_binarize_sample():
    rows = ms.parse_ground_truth(SAMPLE, filename="sample.txt")
    assert [r.id for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[0].rating == pytest.approx(2.26666666667)
    assert rows[1].text == "Effective but too tepid biopic"
    examples, stats = ms.binarize(rows, threshold=0.5)
    # 3 is near-neutral; 6 repeats the text of 1. The threshold itself is kept.
    assert [(row.id, label) for row, label in examples] == [("1", 1), ("2", 0), ("4", 0), ("5", 1)]
    assert stats == {"rows": 6, "neutral_dropped": 1, "duplicates_dropped": 1, "kept": 4}


def test_bad_line_names_file_and_line():
    with pytest.raises(ValueError, match=r"sample.txt, line 2: expected"):
        ms.parse_ground_truth("1\t1.0\tok\nno tabs here\n", filename="sample.txt")
    with pytest.raises(ValueError, match=r"line 1: the rating 'high'"):
        ms.parse_ground_truth("1\thigh\ttext\n", filename="sample.txt")
    with pytest.raises(ValueError, match="no rated sentence"):
        ms.parse_ground_truth("\r\n", filename="sample.txt")


@pytest.fixture(scope="module")
def movies(vader_sdist):
    return ms.prepare("movies", path=vader_sdist)


def test_movie_counts(movies):
    splits, stats = movies
    assert stats["rows"] == 10_605
    assert stats["kept"] == stats["rows"] - stats["neutral_dropped"] - stats["duplicates_dropped"]
    assert sum(len(part) for part in splits.values()) == stats["kept"]
    for part in splits.values():
        for row, label in part:
            assert abs(row.rating) >= ms.THRESHOLD
            assert label == int(row.rating > 0)


def test_splits_do_not_overlap(movies):
    splits, _ = movies
    ids = {name: {row.id for row, _ in part} for name, part in splits.items()}
    texts = {name: {row.text for row, _ in part} for name, part in splits.items()}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not ids[a] & ids[b]
        assert not texts[a] & texts[b]


def test_splits_are_stratified(movies):
    splits, stats = movies
    total = stats["kept"]
    positive = sum(label for part in splits.values() for _, label in part)
    for name, fraction in ms.SPLIT_FRACTIONS.items():
        part = splits[name]
        assert len(part) == pytest.approx(fraction * total, abs=2)
        part_positive = sum(label for _, label in part)
        # Each label is cut at the same fractions, so counts are within rounding of exact.
        assert part_positive == pytest.approx(fraction * positive, abs=1)


def test_splits_are_deterministic(vader_sdist, movies):
    again, _ = ms.prepare("movies", path=vader_sdist)
    assert again == movies[0]
    examples, _ = ms.binarize(ms.read_rated_sentences(vader_sdist))
    assert ms.stratified_split(examples) == movies[0]
    assert ms.stratified_split(examples, seed=1)["test"] != movies[0]["test"]


def test_other_domains_are_configs(vader_sdist):
    counts = {d: len(ms.read_rated_sentences(vader_sdist, d)) for d in ms.DOMAIN_FILES}
    assert counts == {
        "movies": 10_605,
        "tweets": 4_200,
        "amazon_reviews": 3_708,
        "nyt_editorials": 5_190,
    }
    assert [c.name for c in ms.MovieSentiment.BUILDER_CONFIGS] == list(ms.DOMAIN_FILES)


def test_tfds_round_trip_offline(tfds_dir, vader_sdist):
    import keras_transformer.data  # noqa: F401  (registers the builders)

    splits, _ = ms.prepare("tweets", path=vader_sdist)
    dataset = tfds.load("movie_sentiment/tweets", split="validation", data_dir=tfds_dir)
    loaded = {ex["id"].decode(): ex for ex in tfds.as_numpy(dataset)}
    assert loaded.keys() == {row.id for row, _ in splits["validation"]}
    for row, label in splits["validation"]:
        assert loaded[row.id]["text"].decode() == row.text
        assert loaded[row.id]["label"] == label
        assert loaded[row.id]["rating"] == pytest.approx(row.rating)
    test = ms.load_movie_sentiment("test", "tweets", data_dir=tfds_dir)
    assert test.texts == [row.text for row, _ in splits["test"]]
    assert test.labels == [label for _, label in splits["test"]]
    assert test.label_names == ("negative", "positive")


def test_reads_inner_archive_directly(tmp_path):
    data = SAMPLE.encode()
    path = tmp_path / "hutto_ICWSM_2014.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    assert len(ms.read_rated_sentences(path, "movies")) == 6
    with pytest.raises(sources.CorruptArchiveError, match="tweets_GroundTruth.txt"):
        ms.read_rated_sentences(path, "tweets")


def test_corrupt_archive_names_the_file(tmp_path):
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(sources.CorruptArchiveError, match=str(path)):
        ms.read_rated_sentences(path)


def test_missing_archive_and_unknown_domain(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.tar.gz"):
        ms.read_rated_sentences(tmp_path / "nothing.tar.gz")
    with pytest.raises(ValueError, match="'books'"):
        ms.read_rated_sentences(tmp_path / "nothing.tar.gz", "books")
