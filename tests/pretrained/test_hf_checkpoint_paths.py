"""Paths that a checkpoint's own files name stay inside its folder.

Each crafted folder points (by an absolute path, a `..` component or a symlink) at a real
checkpoint outside it, named `SECRET_OUTSIDE`, that would load if followed. Loading must fail
with a `ValueError` naming the value and the folder, and no file under `SECRET_OUTSIDE` may be
opened (every `open` is watched with an audit hook). Legitimate layouts (a symlink within the
folder, a hub cache snapshot whose files link into `blobs/`) still load.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hf_helpers import padded_batch, tiny_bert

from keras_transformer.pretrained import (
    cached_snapshot,
    from_huggingface,
    read_safetensors,
    to_huggingface,
    write_safetensors,
)

OPENED = []  # Paths opened while `watching_opens` is active.
_WATCHING = [False]


def _audit(event, args):
    if _WATCHING[0] and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)


@contextlib.contextmanager
def watching_opens():
    OPENED.clear()
    _WATCHING[0] = True
    try:
        yield OPENED
    finally:
        _WATCHING[0] = False


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny BERT written by `to_huggingface`, and its sequence output."""
    model = tiny_bert(masked_lm=False)
    folder = to_huggingface(model, path=tmp_path_factory.mktemp("bert"))
    return folder, np.asarray(model(padded_batch())["sequence_output"])


@pytest.fixture
def secret(tmp_path, exported):
    """A complete checkpoint outside the crafted folder: `from_huggingface` loads it."""
    folder = tmp_path / "SECRET_OUTSIDE"
    shutil.copytree(exported[0], folder)
    (folder / "pooling").mkdir()
    (folder / "pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    from_huggingface(folder, task="backbone")  # It would load, if it were reached.
    return folder


def refused(target, value, folder, secret, **kwargs):
    """Load `target`, expecting a `ValueError` naming `value` and `folder`; assert nothing
    under `secret` was opened."""
    with watching_opens() as opened, pytest.raises(ValueError) as error:
        from_huggingface(target, task="backbone", **kwargs)
    message = str(error.value)
    assert repr(value) in message and str(folder) in message, message
    assert "must stay inside its folder" in message or "plain branch" in message, message
    leaked = [path for path in opened if "SECRET_OUTSIDE" in path]
    assert not leaked, f"read outside the checkpoint folder: {leaked}"
    return message


def escapes(folder, secret, target_name):
    """The three ways to name `secret / target_name` from `folder`: absolute, `..`, symlink."""
    os.symlink(secret / target_name, folder / "link")
    return {
        "absolute": str(secret / target_name),
        "dotdot": os.path.join("..", secret.name, target_name),
        "symlink": "link",
    }


def transformer_modules(path):
    return [
        {"idx": 0, "name": "0", "path": path, "type": "sentence_transformers.models.Transformer"}
    ]


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_a_transformer_module_path_outside_is_refused(tmp_path, secret, way):
    folder = tmp_path / "crafted"
    folder.mkdir()
    value = escapes(folder, secret, "")[way].rstrip(os.sep)
    (folder / "modules.json").write_text(json.dumps(transformer_modules(value)))
    message = refused(folder, value, folder, secret)
    assert "Transformer module path" in message and "modules.json" in message


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_a_pooling_module_path_outside_is_refused(tmp_path, exported, secret, way):
    folder = tmp_path / "crafted"
    shutil.copytree(exported[0], folder)
    value = escapes(folder, secret, "pooling")[way]
    modules = transformer_modules("") + [
        {"idx": 1, "name": "1", "path": value, "type": "sentence_transformers.models.Pooling"}
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    message = refused(folder, value, folder, secret)
    assert "Pooling module path" in message


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_a_shard_outside_is_refused(tmp_path, exported, secret, way):
    folder = tmp_path / "crafted"
    folder.mkdir()
    shutil.copy(exported[0] / "config.json", folder / "config.json")
    value = escapes(folder, secret, "model.safetensors")[way]
    names = read_safetensors(exported[0] / "model.safetensors")[0]
    index = {"weight_map": dict.fromkeys(names, value)}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    message = refused(folder, value, folder, secret)
    assert "shard file" in message and "model.safetensors.index.json" in message


@pytest.mark.parametrize("value", [["a.safetensors"], "sub\\..\\..\\x.safetensors", "C:/x"])
def test_shard_names_that_are_not_plain_relative_paths_are_refused(tmp_path, exported, value):
    folder = tmp_path / "crafted"
    folder.mkdir()
    shutil.copy(exported[0] / "config.json", folder / "config.json")
    index = {"weight_map": {"bert.embeddings.word_embeddings.weight": value}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="must stay inside its folder") as error:
        from_huggingface(folder, task="backbone")
    assert repr(value) in str(error.value)


def test_symlinks_within_the_folder_still_load(tmp_path, exported):
    folder = tmp_path / "linked"
    (folder / "shards").mkdir(parents=True)
    shutil.copy(exported[0] / "config.json", folder / "config.json")
    shutil.copy(exported[0] / "model.safetensors", folder / "shards" / "real.safetensors")
    os.symlink(folder / "shards" / "real.safetensors", folder / "model-00001.safetensors")
    names = read_safetensors(exported[0] / "model.safetensors")[0]
    index = {"weight_map": dict.fromkeys(names, "model-00001.safetensors")}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = from_huggingface(folder, task="backbone")
    np.testing.assert_array_equal(
        np.asarray(loaded.model(padded_batch())["sequence_output"]), exported[1]
    )


def hub_repo(cache, exported, commit="c0ffee"):
    """A `huggingface_hub` cache repo `acme/tiny`: a sharded snapshot whose files are
    symlinks into `blobs/`, as `huggingface_hub` lays it out."""
    repo = cache / "models--acme--tiny"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    tensors, metadata = read_safetensors(exported[0] / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2]}
    halves["model-00002-of-00002.safetensors"] = names[1::2]
    weight_map = {}
    for shard, shard_names in halves.items():
        write_safetensors(repo / "blobs" / shard, {n: tensors[n] for n in shard_names}, metadata)
        weight_map.update(dict.fromkeys(shard_names, shard))
    (repo / "blobs" / "index").write_text(json.dumps({"weight_map": weight_map}))
    shutil.copy(exported[0] / "config.json", repo / "blobs" / "config")
    links = {"config.json": "config", "model.safetensors.index.json": "index"}
    links.update({shard: shard for shard in halves})
    for name, blob in links.items():
        os.symlink(os.path.join("..", "..", "blobs", blob), snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo, snapshot


def test_a_hub_cache_snapshot_linking_into_blobs_loads(tmp_path, exported):
    repo, snapshot = hub_repo(tmp_path / "hub", exported)
    loaded = from_huggingface("acme/tiny", task="backbone", cache_dir=tmp_path / "hub")
    assert loaded.folder == snapshot
    np.testing.assert_array_equal(
        np.asarray(loaded.model(padded_batch())["sequence_output"]), exported[1]
    )


@pytest.mark.parametrize(
    "revision",
    ["../../SECRET_OUTSIDE", "/etc", "main/../../x", ".hidden", "-x", "a b", "", None],
)
def test_a_revision_that_is_not_a_plain_name_is_refused(tmp_path, exported, revision):
    hub_repo(tmp_path / "hub", exported)
    with pytest.raises(ValueError, match="not a plain branch, tag or commit name") as error:
        cached_snapshot("acme/tiny", revision=revision, cache_dir=tmp_path / "hub")
    assert repr(revision) in str(error.value)


def test_plain_revisions_still_resolve(tmp_path, exported):
    repo, snapshot = hub_repo(tmp_path / "hub", exported, commit="a" * 40)
    (repo / "refs" / "refs" / "pr").mkdir(parents=True)
    (repo / "refs" / "refs" / "pr" / "1").write_text("a" * 40)
    (repo / "refs" / "v1.0").write_text("a" * 40)
    for revision in ("main", "v1.0", "refs/pr/1", "a" * 40):
        assert cached_snapshot("acme/tiny", revision=revision, cache_dir=tmp_path / "hub") == (
            snapshot
        )


def test_a_ref_file_or_snapshot_pointing_outside_is_refused(tmp_path, exported, secret):
    cache = tmp_path / "hub"
    repo, _ = hub_repo(cache, exported)
    crafted = os.path.join("..", "..", "..", secret.name)
    (repo / "refs" / "evil").write_text(crafted)
    with watching_opens() as opened, pytest.raises(ValueError) as error:
        from_huggingface("acme/tiny", revision="evil", cache_dir=cache)
    assert repr(crafted) in str(error.value) and str(repo / "refs" / "evil") in str(error.value)
    assert not [path for path in opened if "SECRET_OUTSIDE" in path]
    os.symlink(secret, repo / "snapshots" / "linked")
    refused("acme/tiny", "linked", repo / "snapshots", secret, revision="linked", cache_dir=cache)
    (secret / "commit").write_text("c0ffee")  # A ref file linked outside is not read either.
    os.symlink(secret / "commit", repo / "refs" / "outside")
    refused("acme/tiny", "outside", repo / "refs", secret, revision="outside", cache_dir=cache)


def test_the_command_line_prints_one_error_line_and_exits_2(tmp_path, exported, secret):
    folder = tmp_path / "crafted"
    folder.mkdir()
    shutil.copy(exported[0] / "config.json", folder / "config.json")
    value = os.path.join("..", secret.name, "model.safetensors")
    names = read_safetensors(exported[0] / "model.safetensors")[0]
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": dict.fromkeys(names, value)})
    )
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "a good film,positive\na bad film,negative\n" * 20)
    output = tmp_path / "run"
    process = subprocess.run(
        [sys.executable, "-m", "workflows", "transfer", "--init-from", str(folder)]
        + ["--dataset", str(data), "--epochs", "1", "--output-dir", str(output)],
        cwd=Path(__file__).parents[2],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 2, process.stdout + process.stderr
    lines = [  # Without TensorFlow's start-up log lines (absl's `I0000 ...` and its WARNING).
        line
        for line in process.stderr.splitlines()
        if line.strip()
        and not line.startswith(("I0000", "W0000", "E0000"))
        and not line.startswith("WARNING: All log messages before absl::InitializeLog()")
    ]
    assert len(lines) == 1 and lines[0].startswith("error: "), process.stderr
    assert repr(value) in lines[0] and str(folder) in lines[0]
    assert "Traceback" not in process.stderr + process.stdout
