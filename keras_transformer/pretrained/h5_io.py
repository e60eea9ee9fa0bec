"""Read the `tf_model.h5` weights of Hugging Face's former TensorFlow classes, under the names
and layouts of their PyTorch counterparts.

Those files are Keras 2 `save_weights` HDF5 files: the root attribute `layer_names` lists the
top-level layers, each group's attribute `weight_names` its variables, e.g.
`tf_bert_for_masked_lm/bert/encoder/layer_._0/attention/self/query/kernel:0`. Like
`transformers`' own converter, the names are mapped by dropping the model scope (first
component) and `:0`, `layer_._0` -> `layer.0`, `mlm___cls` -> `cls`, `kernel` / `embeddings`
/ `gamma` -> `weight`, `beta` -> `bias`; 2-D `kernel`s (Dense, `(in, out)`) are transposed to
`nn.Linear`'s `(out, in)`. HDF5 holds data only, so reading it runs no code.
"""

import re
from pathlib import Path

import numpy as np


def pytorch_name(tf_name):
    """`(name, transpose)`: the PyTorch state-dict name of a TF weight name, and whether its
    array must be transposed."""
    name = tf_name.replace(":0", "")
    name = re.sub(r"/[^/]*___([^/]*)/", r"/\1/", name)
    name = name.replace("_._", "/")
    name = re.sub(r"//+", "/", name)
    parts = name.split("/")
    if len(parts) > 1:
        parts = parts[1:]  # The model's own scope, e.g. `tf_bert_for_masked_lm`.
    transpose = parts[-1] == "kernel"
    if parts[-1] in ("kernel", "embeddings", "gamma"):
        parts[-1] = "weight"
    elif parts[-1] == "beta":
        parts[-1] = "bias"
    return ".".join(parts), transpose


class H5WeightsFile:
    """A Hugging Face `tf_model.h5`, read eagerly, with the interface of `SafetensorsFile`.

    Args:
        path: str or Path.

    Raises:
        ValueError: the file is not a Keras weights HDF5 file.
    """

    def __init__(self, path):
        import h5py  # Installed with TensorFlow.

        self.path = Path(path)
        self.metadata = {}
        self._arrays = {}
        try:
            with h5py.File(self.path, "r") as f:
                layer_names = f.attrs.get("layer_names")
                if layer_names is None:
                    raise ValueError("no `layer_names` attribute")
                for layer in layer_names:
                    group = f[_text(layer)]
                    for weight in group.attrs.get("weight_names", []):
                        weight = _text(weight)
                        name, transpose = pytorch_name(weight)
                        array = np.asarray(group[weight])
                        if transpose and array.ndim == 2:
                            array = array.T
                        self._arrays[name] = array
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(
                f"{self.path} is not a Hugging Face TensorFlow weights file (tf_model.h5): {e}"
            ) from e

    def keys(self):
        return list(self._arrays)

    def __iter__(self):
        return iter(self._arrays)

    def __contains__(self, name):
        return name in self._arrays

    def shape(self, name):
        return tuple(self._arrays[name].shape)

    def get(self, name):
        return self._arrays[name]


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
