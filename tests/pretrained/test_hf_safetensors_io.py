"""Our numpy safetensors reader and writer: round trips, BF16, corrupt files, and agreement
with the reference `safetensors` package (part of the `dev` extra)."""

import json
import struct

import numpy as np
import pytest
from hf_helpers import require

from keras_transformer.pretrained import SafetensorsFile, read_safetensors, write_safetensors

ARRAYS = {
    "a.weight": np.arange(12, dtype="float32").reshape(3, 4),
    "a.bias": np.array([1.5, -2.0], dtype="float16"),
    "ids": np.array([[1, 2, 3]], dtype="int64"),
    "flags": np.array([True, False]),
    "scalar": np.array(7, dtype="int32"),
}


def test_round_trip_keeps_values_dtypes_and_metadata(tmp_path):
    path = tmp_path / "x.safetensors"
    write_safetensors(path, ARRAYS, metadata={"format": "pt"})
    tensors, metadata = read_safetensors(path)
    assert metadata == {"format": "pt"} and set(tensors) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert tensors[name].dtype == array.dtype
        np.testing.assert_array_equal(tensors[name], array)
    file = SafetensorsFile(path)
    assert file.shape("a.weight") == (3, 4) and file.dtype("a.bias") == "F16"
    assert "ids" in file and sorted(file) == sorted(ARRAYS)


def test_bf16_is_widened_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype="float32")
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")  # These values are exact in bfloat16.
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16.tobytes())
    np.testing.assert_array_equal(SafetensorsFile(path).get("w"), values)


def test_corrupt_files_are_reported(tmp_path):
    path = tmp_path / "x.safetensors"
    write_safetensors(path, ARRAYS)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        SafetensorsFile(path)
    path.write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a valid safetensors"):
        SafetensorsFile(path)
    with pytest.raises(FileNotFoundError):
        SafetensorsFile(tmp_path / "absent.safetensors")


def test_agrees_with_the_reference_package(tmp_path):
    reference = require("safetensors.numpy")
    ours = tmp_path / "ours.safetensors"
    write_safetensors(ours, ARRAYS, metadata={"format": "pt"})
    loaded = reference.load_file(str(ours))
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(loaded[name], array)
    theirs = tmp_path / "theirs.safetensors"
    reference.save_file(ARRAYS, str(theirs), metadata={"format": "np"})
    tensors, metadata = read_safetensors(theirs)
    assert metadata == {"format": "np"}
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(tensors[name], array)
