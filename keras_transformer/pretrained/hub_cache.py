"""Resolve a Hugging Face repo id to a snapshot already in the local `huggingface_hub` cache.

Nothing is downloaded: the cache layout of `huggingface_hub` is read directly (it need not be
installed). A repo `org/name` lives in `<cache>/models--org--name/`, with `refs/<revision>`
holding a commit hash and `snapshots/<hash>/` the files of that commit.
"""

import os
import re
from pathlib import Path

from keras_transformer.pretrained.paths import COMMIT_PATTERN, check_revision, inside_folder

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def default_hub_cache():
    """The `huggingface_hub` cache folder: `$HF_HUB_CACHE`, `$HUGGINGFACE_HUB_CACHE`,
    `$HF_HOME/hub`, else `~/.cache/huggingface/hub`."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def looks_like_repo_id(name):
    """True if `name` has the form of a hub repo id (`name` or `org/name`)."""
    return bool(REPO_ID_PATTERN.match(str(name))) and ".." not in str(name)


def cached_snapshot(repo_id, revision="main", cache_dir=None):
    """Return the cached snapshot folder of `repo_id` at `revision`.

    Args:
        repo_id: str. E.g. `"sentence-transformers/all-MiniLM-L6-v2"`.
        revision: str. A branch or tag name (looked up in `refs/`) or a commit hash.
            Defaults to `"main"`.
        cache_dir: str or Path. Defaults to `default_hub_cache()`.

    Returns:
        The `Path` of the snapshot folder.

    Raises:
        ValueError: `repo_id` is not a repo id, `revision` (or the commit its ref file names)
            is not a plain ref or commit name, or the snapshot resolves outside the repo's
            `snapshots/` folder.
        FileNotFoundError: the cache holds no snapshot of that repo and revision.
    """
    if not isinstance(repo_id, str) or not looks_like_repo_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a hub repo id (`name` or `org/name`).")
    check_revision(revision)
    cache = Path(cache_dir).expanduser() if cache_dir else default_hub_cache()
    repo_folder = cache / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_folder / "snapshots"
    ref = inside_folder(repo_folder / "refs", revision, f"ref file of {repo_id!r}")
    commit = revision
    if ref.is_file():
        commit = check_revision(ref.read_text().strip(), COMMIT_PATTERN, f"commit named by {ref}")
    elif "/" in revision:  # A ref such as `refs/pr/1` is only ever a ref file.
        commit = None
    snapshot = inside_folder(snapshots, commit, f"snapshot of {repo_id!r}") if commit else None
    if snapshot is not None and snapshot.is_dir():
        return snapshot
    available = sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []
    raise FileNotFoundError(
        f"{repo_id!r} is neither a local folder nor in the huggingface_hub cache at {cache} "
        f"(revision {revision!r}; cached snapshots: {available or 'none'}). Nothing is "
        f"downloaded here: fetch it once where the hub is reachable, e.g. "
        f"`hf download {repo_id}` (or `huggingface-cli download {repo_id}`), and pass the folder "
        "or set $HF_HUB_CACHE."
    )
