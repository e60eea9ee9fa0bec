"""`tf_model.h5` checkpoints of the former TensorFlow classes of `transformers`.

No such file can be produced here (those classes are gone from `transformers` 5), so this test
writes one in their layout: Keras 2 `save_weights` HDF5, `layer_names` / `weight_names`
attributes, TF variable names (`layer_._0`, `kernel` (in, out), `gamma`, `beta`,
`embeddings`, `mlm___cls`).
"""

import h5py  # Installed with TensorFlow.
import numpy as np
from hf_helpers import all_positions, padded_batch, tiny_bert

from keras_transformer.pretrained import from_huggingface, read_safetensors, to_huggingface
from keras_transformer.pretrained.h5_io import pytorch_name


def tf_name(name):
    """The TF weight name of a PyTorch BERT tensor name, and whether to transpose it."""
    parts = name.split(".")
    top = "mlm___cls" if parts[0] == "cls" else parts[0]
    parts = [top] + parts[1:]
    joined = "/".join(parts)
    joined = joined.replace("layer/", "layer_._")
    leaf = parts[-1]
    is_table = "embeddings" in parts[-2] and parts[-2] != "LayerNorm"
    transpose = False
    if "LayerNorm" in parts:
        joined = joined[: -len(leaf)] + ("gamma" if leaf == "weight" else "beta")
    elif is_table and parts[-2] != "word_embeddings":
        joined = joined[: -len(leaf)] + "embeddings"
    elif leaf == "weight" and not is_table:
        joined, transpose = joined[: -len(leaf)] + "kernel", True
    return f"tf_bert_for_masked_lm/{joined}:0", top, transpose


def test_the_name_mapping_of_transformers():
    assert pytorch_name("tf_bert_for_masked_lm/bert/encoder/layer_._3/output/dense/kernel:0") == (
        "bert.encoder.layer.3.output.dense.weight",
        True,
    )
    assert pytorch_name("tf_bert_for_masked_lm/mlm___cls/predictions/bias:0") == (
        "cls.predictions.bias",
        False,
    )
    assert pytorch_name("tf_gpt2lm_head_model/transformer/h_._0/ln_1/gamma:0") == (
        "transformer.h.0.ln_1.weight",
        False,
    )


def test_a_tf_model_h5_loads_like_the_safetensors(tmp_path):
    model = tiny_bert(masked_lm=True)
    source = to_huggingface(model, path=tmp_path / "safetensors")
    tensors, _ = read_safetensors(source / "model.safetensors")
    folder = tmp_path / "h5"
    folder.mkdir()
    (folder / "config.json").write_text((source / "config.json").read_text())
    weight_names = {}  # Top-level layer -> its weight names, in order.
    with h5py.File(folder / "tf_model.h5", "w") as f:
        for name, array in tensors.items():
            weight, top, transpose = tf_name(name)
            f.require_group(top).create_dataset(weight, data=array.T if transpose else array)
            weight_names.setdefault(top, []).append(weight.encode())
        for top, names in weight_names.items():
            f[top].attrs["weight_names"] = names
        f.attrs["layer_names"] = [top.encode() for top in weight_names]
    loaded = from_huggingface(folder)
    assert loaded.unused_tensors == () and loaded.left_as_initialized == ()
    inputs = padded_batch()
    inputs["mask_positions"] = all_positions(inputs)
    np.testing.assert_array_equal(np.asarray(loaded.model(inputs)), np.asarray(model(inputs)))
