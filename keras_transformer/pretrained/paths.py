"""Keep the paths that a checkpoint's own files name inside the checkpoint's folder.

A checkpoint folder names other files: `modules.json` the folders of its modules, a
`model.safetensors.index.json` its shard files, a hub cache `refs/` file a commit. Those names
come from whoever made the folder, so each is checked before anything is opened: it must be a
relative path with no `..` component, and what it resolves to (symlinks followed) must lie in
the folder. A `huggingface_hub` cache snapshot (`models--org--name/snapshots/<commit>/`) links
its files into the repo's `blobs/` folder, so there `blobs/` counts as inside too.
"""

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

# A branch or tag name (`main`, `v1.0`, `refs/pr/1`) or a commit hash: `/`-separated parts of
# letters, digits, `_`, `.`, `+`, `-`, none starting with `.` or `-`.
REVISION_PATTERN = re.compile(r"^[A-Za-z0-9_][\w.+-]*(/[A-Za-z0-9_][\w.+-]*)*$")
COMMIT_PATTERN = re.compile(r"^[A-Za-z0-9_][\w.+-]*$")  # One part: a snapshot folder's name.


def check_revision(revision, pattern=REVISION_PATTERN, what="revision"):
    """Return `revision` if it is a plain ref or commit name; else `ValueError` naming it."""
    if not isinstance(revision, str) or not pattern.match(revision) or ".." in revision:
        raise ValueError(
            f"{what} {revision!r} is not a plain branch, tag or commit name (letters, digits, "
            "`_`, `.`, `+`, `-`, parts joined by `/`; no `..`, no leading `.` or `-`, no "
            "absolute path). Pass e.g. revision='main' or a 40-character commit hash."
        )
    return revision


def allowed_roots(folder):
    """The real folders that files of `folder` may resolve into: `folder` itself and, inside a
    `huggingface_hub` cache snapshot, the repo's `blobs/` folder."""
    real = Path(os.path.realpath(folder))
    roots = [real]
    for path in (real, *real.parents):
        if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
            roots.append(path.parent.parent / "blobs")
            break
    return roots


def is_within(path, root):
    """True if the real path `path` is `root` or lies under it."""
    return os.path.commonpath([str(path), str(root)]) == str(root)


def inside_folder(folder, name, what):
    """`folder / name`, where `name` was read from a checkpoint file, if it stays in `folder`.

    Args:
        folder: str or Path. The checkpoint folder `name` is relative to.
        name: str. The path as the checkpoint file gives it (`""` means `folder` itself).
        what: str. What `name` is and where it was read, for the message, e.g.
            "shard file in .../model.safetensors.index.json".

    Returns:
        The `Path` `folder / name` (not resolved).

    Raises:
        ValueError: `name` is not a string, is absolute, has a `..` component, or resolves
            (through symlinks) outside `folder`. Nothing has been opened.
    """
    folder = Path(folder)
    problem = None
    if not isinstance(name, str):
        problem = f"is a {type(name).__name__}, not a relative path"
    elif (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or name.startswith("~")
    ):
        problem = "is an absolute path"
    elif ".." in PureWindowsPath(name).parts:  # Splits on both `/` and `\`.
        problem = "has a `..` component"
    else:
        real = Path(os.path.realpath(folder / name))
        if not any(is_within(real, root) for root in allowed_roots(folder)):
            problem = f"resolves (through a symlink) to {real}"
    if problem:
        raise ValueError(
            f"Refusing the {what} {name!r}: it {problem}. Paths that a checkpoint names must "
            f"stay inside its folder {folder}: fix that entry (a relative name such as "
            "'model-00001-of-00002.safetensors' or '1_Pooling'), or copy the files it needs "
            "into the folder."
        )
    return folder / name
