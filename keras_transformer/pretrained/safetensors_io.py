"""Read and write safetensors files with numpy only.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header
length, a JSON header mapping each tensor name to `{"dtype", "shape", "data_offsets"}` (plus an
optional `"__metadata__"` dict of strings), then the raw little-endian tensor bytes. It holds no
code, so reading it cannot run anything: this is why weights are taken only from it.

Reading memory-maps the file, so a checkpoint is not copied until a tensor is used. `BF16`
tensors (which numpy has no dtype for) are widened to float32 exactly.
"""

import json
import struct
from pathlib import Path

import numpy as np

# safetensors dtype name -> numpy dtype (little-endian). BF16 is read as uint16 and widened.
DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
NUMPY_TO_SAFETENSORS = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint64"): "U64",
    np.dtype("uint32"): "U32",
    np.dtype("uint16"): "U16",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsFile:
    """A lazily read safetensors file: names, shapes and dtypes from the header, data on demand.

    Args:
        path: str or Path. The `.safetensors` file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a valid safetensors file.

    Example:
    >>> weights = SafetensorsFile("model.safetensors")
    >>> weights.shape("embeddings.word_embeddings.weight")
    (30522, 384)
    >>> table = weights.get("embeddings.word_embeddings.weight")  # float32 numpy array
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Safetensors file not found: {self.path}")
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ValueError(f"{self.path} is not a safetensors file: it has {size} bytes.")
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(
                    f"{self.path} is not a valid safetensors file: its header claims "
                    f"{header_size} bytes but the file has {size}. The file is truncated or of "
                    "another format."
                )
            try:
                header = json.loads(f.read(header_size))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"{self.path} has an unreadable safetensors header: {e}") from e
        self.metadata = header.pop("__metadata__", None) or {}
        self._data_start = 8 + header_size
        self._entries = header
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            if entry["dtype"] not in DTYPES:
                raise ValueError(
                    f"Tensor {name!r} in {self.path} has dtype {entry['dtype']}, which is not "
                    f"supported (supported: {sorted(DTYPES)})."
                )
            count = int(np.prod(entry["shape"], dtype=np.int64))
            if end - begin != count * np.dtype(DTYPES[entry["dtype"]]).itemsize or (
                self._data_start + end > size
            ):
                raise ValueError(
                    f"Tensor {name!r} in {self.path} does not fit its declared shape "
                    f"{entry['shape']} and dtype {entry['dtype']}; the file is truncated or "
                    "corrupt."
                )
        self._mmap = None

    def keys(self):
        """The tensor names, in file order."""
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def shape(self, name):
        """The shape of tensor `name` as a tuple."""
        return tuple(self._entries[name]["shape"])

    def dtype(self, name):
        """The safetensors dtype name of tensor `name`, e.g. `"F32"`."""
        return self._entries[name]["dtype"]

    def get(self, name):
        """Tensor `name` as a numpy array (a read-only view of the file; BF16 as float32)."""
        if name not in self._entries:
            raise KeyError(f"Tensor {name!r} is not in {self.path}.")
        entry = self._entries[name]
        if self._mmap is None:
            self._mmap = np.memmap(self.path, dtype=np.uint8, mode="r")
        begin, end = entry["data_offsets"]
        raw = self._mmap[self._data_start + begin : self._data_start + end]
        array = raw.view(DTYPES[entry["dtype"]]).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def read_safetensors(path):
    """Read every tensor of a safetensors file into a dict of numpy arrays.

    Args:
        path: str or Path.

    Returns:
        `(tensors, metadata)`: a dict name -> array, and the header's metadata dict.
    """
    file = SafetensorsFile(path)
    return {name: np.array(file.get(name)) for name in file}, dict(file.metadata)


def write_safetensors(path, tensors, metadata=None):
    """Write a dict of numpy arrays as a safetensors file (written to a temporary file, then
    moved into place).

    Args:
        path: str or Path. The file to write.
        tensors: dict of str -> array-like. Each is stored C-contiguous, little-endian.
        metadata: dict of str -> str, or None. Stored as `"__metadata__"`. Hugging Face
            `transformers` wants `{"format": "pt"}`.
    """
    path = Path(path)
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in NUMPY_TO_SAFETENSORS:
            raise ValueError(
                f"Tensor {name!r} has dtype {array.dtype}, which safetensors cannot store here. "
                f"Cast it to one of {sorted(str(d) for d in NUMPY_TO_SAFETENSORS)}."
            )
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": NUMPY_TO_SAFETENSORS[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        arrays.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # Align the data to 8 bytes, as the reference does.
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for data in arrays:
            f.write(data)
    temporary.replace(path)
