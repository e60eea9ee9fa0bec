"""TF Serving's folder layout: `BASE/VERSION/`, safe model names, atomic version writes.

TF Serving watches a base folder (`saved_models/NAME/`) and loads its numbered subfolders as
versions, the highest by default. A version must never be seen half-written, so an export is
built in a temporary folder beside the versions, `BASE/.tmp-VERSION-PID-xxxx/`, and renamed to
`BASE/VERSION` in one `os.rename` once complete. TF Serving ignores folder names that are not
numbers, so a temporary folder left behind by a killed export (SIGKILL gives no chance to clean
up) is never taken for a version; the next export into the same base folder removes
temporaries whose process is gone.
"""

import contextlib
import os
import re
import shutil
import tempfile

# A model name becomes a folder name and a TF Serving `--model_name`: letters, digits, `.`,
# `_` and `-`, starting with a letter or digit; no path separators, no `..`.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TEMPORARY_PREFIX = ".tmp-"


def check_model_name(name):
    """Returns `name` if it is a safe folder name; raises `ValueError` naming it otherwise.

    Example:
    >>> check_model_name("movie-sentiment_v2")
    'movie-sentiment_v2'
    """
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"Model name {name!r} is not a safe folder name. Use 1-128 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (no '/', no '..'), e.g. "
            "'movie-sentiment'."
        )
    return name


def list_versions(base):
    """The version numbers under `base` (numeric subfolders only), ascending."""
    if not os.path.isdir(base):
        return []
    return sorted(
        int(entry)
        for entry in os.listdir(base)
        if entry.isdigit() and os.path.isdir(os.path.join(base, entry))
    )


def next_version(base):
    """One more than the highest version under `base`, or `1`."""
    versions = list_versions(base)
    return versions[-1] + 1 if versions else 1


def latest_version_path(path):
    """`path` itself if it holds a `saved_model.pb`, else its highest version subfolder.

    Raises:
        FileNotFoundError: neither is there.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = list_versions(path)
    if not versions:
        raise FileNotFoundError(
            f"{path!r} is neither a SavedModel folder (no saved_model.pb) nor a base folder "
            "with numbered versions. Pass e.g. saved_models/NAME or saved_models/NAME/1."
        )
    return os.path.join(path, str(versions[-1]))


def resolve_version_path(path, name=None, version=None):
    """Splits an export destination into `(base, version)`.

    Args:
        path: str. The base folder TF Serving watches (`saved_models/NAME`), or with `name`,
            the folder holding base folders (`saved_models`). A path whose last part is a
            number is taken as a complete version folder (`saved_models/NAME/3`).
        name: str or None. The model name; its base folder is `path/name`.
        version: int or None. The version; `None` picks the next free one.

    Returns:
        `(base, version)`; `version` is None when it is to be picked at write time.
    """
    path = os.path.normpath(os.fspath(path))
    if name is not None:
        base = os.path.join(path, check_model_name(name))
    elif os.path.basename(path).isdigit():
        base, last = os.path.split(path)
        if version is not None and int(last) != version:
            raise ValueError(
                f"The path {path!r} names version {last} but version={version} was given."
            )
        version = int(last)
    else:
        base = path
    check_model_name(os.path.basename(base))
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError(f"`version` must be a positive int. Received: version={version!r}")
    if version is not None and version < 1:
        raise ValueError(f"`version` must be a positive int. Received: version={version}")
    return base, version


def remove_stale_temporaries(base):
    """Removes `.tmp-*` folders under `base` whose exporting process no longer runs.

    Returns:
        The list of removed folder paths.
    """
    removed = []
    if not os.path.isdir(base):
        return removed
    for entry in os.listdir(base):
        if not entry.startswith(TEMPORARY_PREFIX):
            continue
        parts = entry[len(TEMPORARY_PREFIX) :].split("-")
        pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
        if pid is not None and _process_alive(pid):
            continue
        shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
        removed.append(os.path.join(base, entry))
    return removed


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_version_dir(base, version=None, overwrite=False):
    """Yields a temporary folder to write a version into; renames it into place on success.

    The folder is `base/.tmp-VERSION-PID-xxxx`; on a clean exit it becomes `base/VERSION` by
    one `os.rename` (atomic on one file system), on an exception it is deleted. An existing
    version is never replaced unless `overwrite` (then the old folder is moved aside first,
    so `base/VERSION` is briefly absent but never half-written).

    Args:
        base: str. The base folder (created if missing).
        version: int or None. `None`: the next free version, picked again at rename time if
            a concurrent export took it.
        overwrite: bool. Replace an existing version. Defaults to `False`.

    Yields:
        A dict `{"path": temporary folder, "version": int}`; after the block, `"path"` is the
        final version folder.

    Raises:
        FileExistsError: the version exists and `overwrite` is false.
    """
    os.makedirs(base, exist_ok=True)
    remove_stale_temporaries(base)
    chosen = next_version(base) if version is None else version
    target = os.path.join(base, str(chosen))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"Version {chosen} already exists at {target!r}. Pick another version, leave "
            "version unset for the next free one, or pass overwrite=True."
        )
    temporary = tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{chosen}-{os.getpid()}-", dir=base)
    state = {"path": temporary, "version": chosen}
    try:
        yield state
        state["version"], state["path"] = _move_into_place(
            temporary, base, chosen, auto=version is None, overwrite=overwrite
        )
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _move_into_place(temporary, base, version, auto, overwrite):
    while True:
        target = os.path.join(base, str(version))
        if not os.path.exists(target):
            try:
                os.rename(temporary, target)
                return version, target
            except OSError:
                if not os.path.exists(target):
                    raise
        if auto:  # A concurrent export took this number: take the next one.
            version = next_version(base)
            continue
        if not overwrite:
            raise FileExistsError(f"Version {version} appeared at {target!r} during the export.")
        aside = tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}old-{os.getpid()}-", dir=base)
        os.rename(target, os.path.join(aside, "old"))
        os.rename(temporary, target)
        shutil.rmtree(aside, ignore_errors=True)
        return version, target
