"""TF Serving's layout: versions, safe names, atomic writes; a killed export leaves no version."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from serving_helpers import bert_backbone, word_piece_vocabulary

from keras_transformer.models import BertClassifier
from keras_transformer.serving import export, latest_version_path, list_versions, next_version
from keras_transformer.serving.layout import (
    atomic_version_dir,
    check_model_name,
    remove_stale_temporaries,
    resolve_version_path,
)
from keras_transformer.text import WordPieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def classifier():
    tokenizer = WordPieceTokenizer(word_piece_vocabulary())
    return BertClassifier(bert_backbone(tokenizer.vocabulary_size()), num_classes=2), tokenizer


@pytest.mark.parametrize("name", ["sentiment", "gpt-2_v1.0", "A1"])
def test_safe_names_pass(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "a..b", "é", "a b", 3, None])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ValueError, match="not a safe folder name"):
        check_model_name(name)


def test_export_refuses_an_unsafe_name(classifier, tmp_path):
    with pytest.raises(ValueError, match="not a safe folder name"):
        export(*classifier, tmp_path, name="../escape")
    assert os.listdir(tmp_path) == []


def test_versions_ignore_non_numeric_folders(tmp_path):
    for entry in ("1", "3", ".tmp-4-123-abc", "notes", "10"):
        (tmp_path / entry).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert list_versions(tmp_path) == [1, 3, 10]
    assert next_version(tmp_path) == 11
    assert next_version(tmp_path / "missing") == 1


def test_resolve_version_path(tmp_path):
    assert resolve_version_path(tmp_path / "m") == (str(tmp_path / "m"), None)
    assert resolve_version_path(tmp_path, name="m", version=2) == (str(tmp_path / "m"), 2)
    assert resolve_version_path(tmp_path / "m" / "5") == (str(tmp_path / "m"), 5)
    with pytest.raises(ValueError, match="positive"):
        resolve_version_path(tmp_path / "m", version=0)


def test_exports_take_the_next_version_and_never_overwrite(classifier, tmp_path):
    first = export(*classifier, tmp_path, name="m", warmup=False)
    second = export(*classifier, tmp_path, name="m", warmup=False)
    assert (first.version, second.version) == (1, 2)
    assert list_versions(tmp_path / "m") == [1, 2]
    assert latest_version_path(str(tmp_path / "m")) == second.path
    with pytest.raises(FileExistsError, match="already exists"):
        export(*classifier, tmp_path, name="m", version=1)
    marker = tmp_path / "m" / "1" / "marker"
    marker.write_text("old")
    replaced = export(*classifier, tmp_path / "m" / "1", overwrite=True, warmup=False)
    assert replaced.version == 1 and not marker.exists()
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]  # No temporaries left.


def test_a_failure_inside_save_leaves_nothing_behind(classifier, tmp_path, monkeypatch):
    def failing_save(module, path, signatures=None, options=None):
        with open(os.path.join(path, "saved_model.pb"), "wb") as file:
            file.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export(*classifier, tmp_path, name="m")
    assert os.listdir(tmp_path / "m") == []


def test_atomic_version_dir_picks_another_number_if_taken_meanwhile(tmp_path):
    with atomic_version_dir(str(tmp_path)) as target:
        (tmp_path / "1").mkdir()  # A concurrent export took version 1.
        (tmp_path / "1" / "saved_model.pb").write_text("theirs")
        open(os.path.join(target["path"], "saved_model.pb"), "w").close()
    assert target["version"] == 2
    assert (tmp_path / "1" / "saved_model.pb").read_text() == "theirs"


KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [sys.argv[2], os.path.join(sys.argv[2], "tests", "serving")]
    from serving_helpers import bert_backbone, word_piece_vocabulary
    from keras_transformer.models import BertClassifier
    from keras_transformer.serving import export
    from keras_transformer.text import WordPieceTokenizer

    def killed(path, *args):  # SIGKILL once the SavedModel is written, before the rename.
        assert os.path.exists(os.path.join(path, "saved_model.pb"))
        os.kill(os.getpid(), signal.SIGKILL)

    sys.modules["keras_transformer.serving.export"].write_warmup_requests = killed
    tokenizer = WordPieceTokenizer(word_piece_vocabulary())
    model = BertClassifier(bert_backbone(tokenizer.vocabulary_size()), num_classes=2)
    export(model, tokenizer, sys.argv[1], name="m")
    """
)


def test_an_export_killed_midway_leaves_no_version(classifier, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", KILLED_EXPORT, str(tmp_path), ROOT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    base = tmp_path / "m"
    left = os.listdir(base)
    assert list_versions(base) == []  # TF Serving sees no version.
    assert len(left) == 1 and left[0].startswith(".tmp-1-"), left
    with pytest.raises(FileNotFoundError):
        latest_version_path(str(base))
    # The next export removes the dead process's temporary folder and takes version 1.
    assert remove_stale_temporaries(str(base)) == [str(base / left[0])]
    assert export(*classifier, base, warmup=False).version == 1
    assert os.listdir(base) == ["1"]
