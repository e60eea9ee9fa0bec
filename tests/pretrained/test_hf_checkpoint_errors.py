"""Refusals and failures: pickle files, missing or mismatched tensors, unknown architectures;
and where checkpoints are found (hub cache, shards, sentence-transformers subfolders)."""

import json

import numpy as np
import pytest
from hf_helpers import padded_batch, tiny_bert

from keras_transformer.pretrained import (
    UnsafeCheckpointError,
    from_huggingface,
    read_safetensors,
    to_huggingface,
    write_safetensors,
)
from keras_transformer.pretrained.hub_cache import cached_snapshot


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny BERT masked LM written by `to_huggingface`, and its outputs."""
    model = tiny_bert(masked_lm=True)
    folder = to_huggingface(model, path=tmp_path_factory.mktemp("bert"))
    outputs = np.asarray(model.backbone(padded_batch())["sequence_output"])
    return folder, outputs


def copy_checkpoint(source, target, drop=(), replace=None, config_changes=None):
    """Copy a checkpoint folder, dropping or replacing tensors or changing config.json."""
    target.mkdir(parents=True, exist_ok=True)
    tensors, metadata = read_safetensors(source / "model.safetensors")
    for name in drop:
        del tensors[name]
    tensors.update(replace or {})
    write_safetensors(target / "model.safetensors", tensors, metadata)
    config = json.loads((source / "config.json").read_text())
    config.update(config_changes or {})
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_a_pickle_file_is_refused(tmp_path, exported):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((exported[0] / "config.json").read_text())
    # Not even a valid pickle: it must be refused before anything tries to read it.
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 would run code")
    with pytest.raises(UnsafeCheckpointError, match="arbitrary code") as error:
        from_huggingface(folder)
    message = str(error.value)
    assert "pytorch_model.bin" in message and "safetensors" in message
    assert "save_pretrained" in message  # How to convert.
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        from_huggingface(folder / "pytorch_model.bin")
    (folder / "weights.pt").write_bytes(b"")
    with pytest.raises(UnsafeCheckpointError):
        from_huggingface(folder / "weights.pt")


def test_a_missing_tensor_is_named(tmp_path, exported):
    name = "bert.encoder.layer.1.attention.self.key.weight"
    folder = copy_checkpoint(exported[0], tmp_path / "missing", drop=[name])
    with pytest.raises(ValueError, match=f"Tensor '{name}' is missing"):
        from_huggingface(folder)


def test_a_mismatched_tensor_is_named(tmp_path, exported):
    name = "bert.encoder.layer.0.intermediate.dense.weight"
    wrong = {name: np.zeros((25, 16), "float32")}
    folder = copy_checkpoint(exported[0], tmp_path / "wrong_shape", replace=wrong)
    with pytest.raises(ValueError, match=rf"'{name}'.*\[25, 16\].*\[24, 16\]"):
        from_huggingface(folder)
    folder = copy_checkpoint(
        exported[0], tmp_path / "wrong_config", config_changes={"intermediate_size": 30}
    )
    with pytest.raises(ValueError, match="intermediate.dense.weight.*config.json does not match"):
        from_huggingface(folder)


def test_an_untied_decoder_is_refused_for_the_masked_lm(tmp_path, exported):
    untied = {"cls.predictions.decoder.weight": np.ones((61, 16), "float32")}
    folder = copy_checkpoint(exported[0], tmp_path / "untied", replace=untied)
    with pytest.raises(ValueError, match="cls.predictions.decoder.weight.*not tied"):
        from_huggingface(folder)
    backbone = from_huggingface(folder, task="backbone").model  # The encoder alone loads.
    np.testing.assert_array_equal(
        np.asarray(backbone(padded_batch())["sequence_output"]), exported[1]
    )


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"model_type": "roberta"}, "model_type='roberta'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"hidden_act": "mish"}, "hidden_act='mish'"),
    ],
)
def test_unsupported_configs_are_refused(tmp_path, exported, changes, pattern):
    folder = copy_checkpoint(exported[0], tmp_path / "unsupported", config_changes=changes)
    with pytest.raises(ValueError, match=pattern):
        from_huggingface(folder)


def test_missing_files_and_folders(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="not found"):
        from_huggingface(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_huggingface(empty)
    (empty / "config.json").write_text((exported[0] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="No model.safetensors"):
        from_huggingface(empty)
    with pytest.raises(ValueError, match="task="):
        from_huggingface(exported[0], task="causal_lm")


def test_a_repo_id_resolves_to_the_hub_cache_only(tmp_path, exported, monkeypatch):
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-bert"
    snapshot = repo / "snapshots" / "0123abc"
    copy_checkpoint(exported[0], snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    loaded = from_huggingface("acme/tiny-bert", task="backbone", cache_dir=cache)
    np.testing.assert_array_equal(
        np.asarray(loaded.model(padded_batch())["sequence_output"]), exported[1]
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert cached_snapshot("acme/tiny-bert") == snapshot
    assert cached_snapshot("acme/tiny-bert", revision="0123abc") == snapshot
    with pytest.raises(FileNotFoundError, match="hf download acme/other"):
        from_huggingface("acme/other")


def test_sharded_checkpoints_load(tmp_path, exported):
    tensors, metadata = read_safetensors(exported[0] / "model.safetensors")
    folder = tmp_path / "sharded"
    folder.mkdir()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for shard, shard_names in shards.items():
        write_safetensors(folder / shard, {n: tensors[n] for n in shard_names}, metadata)
        weight_map.update(dict.fromkeys(shard_names, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text((exported[0] / "config.json").read_text())
    loaded = from_huggingface(folder, task="backbone")
    np.testing.assert_array_equal(
        np.asarray(loaded.model(padded_batch())["sequence_output"]), exported[1]
    )


def test_sentence_transformers_subfolder_layout(tmp_path, exported):
    root = tmp_path / "st"
    copy_checkpoint(exported[0], root / "0_Transformer")
    modules = [
        {
            "idx": 0,
            "name": "0",
            "path": "0_Transformer",
            "type": "sentence_transformers.models.Transformer",
        },
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir()
    pooling = {"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    loaded = from_huggingface(root, task="backbone")
    assert loaded.pooling.modes == ("cls", "max") and not loaded.pooling.normalize
    modules.append(
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (root / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="sentence_transformers.models.Dense"):
        from_huggingface(root)
