"""Find a Hugging Face checkpoint folder, its config and its weights, and read tensors by name.

Weights are read only from safetensors files (`model.safetensors`, or the shards listed in
`model.safetensors.index.json`) or, failing those, from a `tf_model.h5` of the former
TensorFlow classes of `transformers`: both hold data only. Pickle-based files
(`pytorch_model.bin`, `.pt`, `.pth`, `.ckpt`) are refused: unpickling runs whatever code the
file names.
"""

import json
import logging
from pathlib import Path

import numpy as np

from keras_transformer.pretrained.h5_io import H5WeightsFile
from keras_transformer.pretrained.hub_cache import cached_snapshot, looks_like_repo_id
from keras_transformer.pretrained.paths import inside_folder
from keras_transformer.pretrained.safetensors_io import SafetensorsFile

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
H5_FILE = "tf_model.h5"  # Written by the former TensorFlow classes of `transformers`.


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds its weights only in a pickle file, which is refused."""


def pickle_refusal(path):
    """The `UnsafeCheckpointError` for a pickle file at `path`, saying how to convert it."""
    path = Path(path)
    return UnsafeCheckpointError(
        f"Refusing to load {path}: it is a pickle file, and unpickling runs arbitrary code "
        "named by the file (a tampered checkpoint can take over the machine). Weights are read "
        "only from safetensors (or tf_model.h5) files, which hold data alone. Convert it once, "
        "in an environment you trust: with `transformers`, "
        f"`AutoModel.from_pretrained('{path.parent}').save_pretrained('{path.parent}')` writes "
        "model.safetensors; with torch and safetensors, `safetensors.torch.save_file({k: "
        f"v.contiguous().clone() for k, v in torch.load('{path}', weights_only=True).items()}}, "
        "'model.safetensors', metadata={'format': 'pt'})`. Most models on the Hugging Face hub "
        "already publish a model.safetensors: download that file instead."
    )


def resolve_checkpoint(path, revision="main", cache_dir=None):
    """Return the folder of a checkpoint given as a folder, a file in it, or a hub repo id.

    A repo id (`"org/name"`) resolves only to a snapshot already in the `huggingface_hub`
    cache; nothing is downloaded. A sentence-transformers folder whose transformer lives in a
    subfolder (`modules.json` naming e.g. `0_Transformer`) resolves to the folder that holds
    `modules.json`; `model_folder` finds the transformer inside.

    Raises:
        FileNotFoundError: no such folder, and no cached snapshot of such a repo.
        UnsafeCheckpointError: `path` is a pickle file.
    """
    candidate = Path(path).expanduser()
    if candidate.is_file():
        if candidate.suffix in PICKLE_SUFFIXES:
            raise pickle_refusal(candidate)
        return candidate.parent
    if candidate.is_dir():
        return candidate
    if looks_like_repo_id(path) and not str(path).startswith((".", "/", "~")):
        return cached_snapshot(str(path), revision=revision, cache_dir=cache_dir)
    raise FileNotFoundError(
        f"Checkpoint folder not found: {candidate}. Pass a folder that holds config.json and "
        "model.safetensors (as written by `save_pretrained`), or a repo id already in the "
        "huggingface_hub cache."
    )


def read_json(path, what=None):
    """Read a JSON file; `FileNotFoundError` naming `what` the file is for if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found{f' ({what})' if what else ''}. A Hugging Face checkpoint folder "
            "holds config.json, model.safetensors and the tokenizer files."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def write_json(path, value):
    """Write `value` as indented UTF-8 JSON."""
    Path(path).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", "utf-8")


def read_modules(folder):
    """The module entries (dicts) of a sentence-transformers `modules.json` in `folder`, or
    `[]` if it has none; `ValueError` if the file is not a list of objects."""
    path = Path(folder) / "modules.json"
    if not path.is_file():
        return []
    modules = read_json(path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ValueError(
            f"{path} is not a sentence-transformers modules list (a JSON list of objects with "
            "`type` and `path`). Fix or remove it."
        )
    return modules


def module_folder(folder, module):
    """The folder of a `modules.json` entry, refused (`ValueError`) if it leaves `folder`."""
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    return inside_folder(
        folder, module.get("path", ""), f"{kind} module path in {Path(folder) / 'modules.json'}"
    )


def model_folder(folder):
    """The folder holding `config.json`: `folder` itself, or the Transformer module's subfolder
    named in a sentence-transformers `modules.json`.

    Raises:
        ValueError: that module's path leaves `folder` (absolute, `..`, or a symlink out).
    """
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    for module in read_modules(folder):
        if str(module.get("type", "")).endswith(".Transformer"):
            return module_folder(folder, module)
    return folder


def weight_files(folder):
    """The weight files of a checkpoint folder: safetensors (or shards), else `tf_model.h5`.

    Raises:
        UnsafeCheckpointError: the folder has only pickle weight files.
        FileNotFoundError: it has no weight file at all, or a listed shard is missing.
        ValueError: the shard index is malformed, or names a shard outside the folder
            (absolute, `..`, or a symlink out); nothing has been opened then.
    """
    folder = Path(folder)
    if (folder / SAFETENSORS_FILE).is_file():
        return [folder / SAFETENSORS_FILE]
    if (folder / SAFETENSORS_INDEX).is_file():
        index_path = folder / SAFETENSORS_INDEX
        index = read_json(index_path)
        weight_map = index.get("weight_map", {}) if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(
                f"{index_path} has no `weight_map` object (tensor name -> shard file name)."
            )
        shards = {}
        for name in weight_map.values():
            if isinstance(name, str) and name in shards:
                continue
            shards[name] = inside_folder(folder, name, f"shard file in {index_path}")
        names = sorted(shards)
        missing = [name for name in names if not shards[name].is_file()]
        if missing or not names:
            raise FileNotFoundError(
                f"{index_path} lists shards that are not in the folder: "
                f"{missing or 'none listed'}. Copy every shard next to the index."
            )
        return [shards[name] for name in names]
    if (folder / H5_FILE).is_file():
        return [folder / H5_FILE]
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise pickle_refusal(pickles[0])
    others = sorted(p.name for p in folder.iterdir())
    raise FileNotFoundError(
        f"No {SAFETENSORS_FILE} (nor {SAFETENSORS_INDEX}, nor {H5_FILE}) in {folder}; it "
        f"holds {others}. "
        "Save the model with `save_pretrained` (which writes safetensors) and pass that folder."
    )


class CheckpointTensors:
    """The tensors of a checkpoint's weight files, taken by name with shape checks.

    Each `take` marks a tensor as used, so that what was left over can be reported.

    Args:
        files: list of paths: the safetensors shards of one checkpoint, or one `tf_model.h5`.
    """

    # Buffers that PyTorch modules save but that hold no learned weights.
    BUFFER_SUFFIXES = ("position_ids", "token_type_ids", ".attn.bias", ".attn.masked_bias")

    def __init__(self, files):
        self.files = [
            H5WeightsFile(path) if Path(path).suffix == ".h5" else SafetensorsFile(path)
            for path in files
        ]
        self._where = {}
        for file in self.files:
            for name in file:
                self._where[name] = file
        self._used = set()

    def names(self):
        """Every tensor name, in file order."""
        return list(self._where)

    def __contains__(self, name):
        return name in self._where

    def describe(self):
        """The file name(s), for messages."""
        return ", ".join(str(file.path) for file in self.files)

    def find_prefix(self, suffix, choices=("",)):
        """The prefix `p` among `choices` such that `p + suffix` is a tensor, or `None`."""
        for prefix in choices:
            if prefix + suffix in self._where:
                return prefix
        return None

    def take(self, name, shape=None, aliases=()):
        """Tensor `name` (or the first of `aliases` present) as float32, checked against `shape`.

        Raises:
            ValueError: the tensor is missing, or its shape differs from `shape`.
        """
        for candidate in (name, *aliases):
            if candidate in self._where:
                break
        else:
            raise ValueError(
                f"Tensor {name!r} is missing from {self.describe()}: the config describes a "
                "model that needs it. The checkpoint is incomplete or of another architecture; "
                "check that config.json belongs to these weights."
            )
        file = self._where[candidate]
        if shape is not None and file.shape(candidate) != tuple(shape):
            raise ValueError(
                f"Tensor {candidate!r} in {file.path} has shape {list(file.shape(candidate))}, "
                f"but the config implies {list(shape)}. config.json does not match the weights."
            )
        self._used.add(candidate)
        return np.asarray(file.get(candidate), dtype=np.float32)

    def take_optional(self, name, shape=None, aliases=()):
        """As `take`, but `None` if neither `name` nor any alias is present."""
        if any(candidate in self._where for candidate in (name, *aliases)):
            return self.take(name, shape, aliases)
        return None

    def unused(self):
        """Names of the tensors never taken, without the known non-weight buffers."""
        return [
            name
            for name in self._where
            if name not in self._used and not name.endswith(self.BUFFER_SUFFIXES)
        ]


def open_checkpoint(folder):
    """`(config, tensors)` of a checkpoint folder: `config.json` and its `CheckpointTensors`."""
    folder = Path(folder)
    config = read_json(folder / "config.json", "the model's configuration")
    return config, CheckpointTensors(weight_files(folder))
