"""`tf_model.h5` checkpoints of the former TensorFlow classes of `transformers`.

No such file can be produced by `transformers` here (its TensorFlow classes are gone in 5.x),
so the test writes one independently of our name mapping:

- the weight names are spelled out per layer as `transformers` 4.x `modeling_tf_bert.py`
  creates them (`TFBertModel` -> `tf_bert_model/bert/...`, `TFBertForMaskedLM` ->
  `tf_bert_for_masked_lm/{bert,mlm___cls}/...`: `Dense` kernels `(in, out)`, `LayerNorm`
  `gamma` / `beta`, `word_embeddings/weight`, `position_embeddings/embeddings`,
  `layer_._{i}`), each filled from the PyTorch module it corresponds to;
- the file is written by Keras' own legacy HDF5 writer (`save_weights_to_hdf5_group`, what
  `save_weights("tf_model.h5")` ran in Keras 2), not by us;
- the values come from a random `transformers` PyTorch model, whose outputs are the reference.
"""

import types

import h5py  # Installed with TensorFlow.
import numpy as np
from hf_helpers import VOCABULARY_SIZE, all_positions, padded_batch, real_rows, require
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

from keras_transformer.pretrained import from_huggingface
from keras_transformer.pretrained.h5_io import pytorch_name

torch = require("torch")
transformers = require("transformers")


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


class Variable:
    """A TF variable as Keras' HDF5 writer sees it: its full name (`w.name` in Keras 2, with
    the model and layer scopes and `:0`) and its value."""

    def __init__(self, path, tensor, transpose=False):
        self.path = path
        value = tensor.detach().numpy()
        self.value = value.T if transpose else value

    def __array__(self, dtype=None, copy=None):
        return self.value


def dense(scope, linear):
    return [
        Variable(f"{scope}/kernel:0", linear.weight, transpose=True),  # Keras Dense: (in, out)
        Variable(f"{scope}/bias:0", linear.bias),
    ]


def layer_norm(scope, norm):
    return [Variable(f"{scope}/gamma:0", norm.weight), Variable(f"{scope}/beta:0", norm.bias)]


def tf_bert_main_layer(scope, bert):
    """`TFBertMainLayer`'s variables, named as its `build` and sub-layers name them."""
    e = bert.embeddings
    variables = [
        Variable(f"{scope}/embeddings/word_embeddings/weight:0", e.word_embeddings.weight),
        Variable(
            f"{scope}/embeddings/token_type_embeddings/embeddings:0", e.token_type_embeddings.weight
        ),
        Variable(
            f"{scope}/embeddings/position_embeddings/embeddings:0", e.position_embeddings.weight
        ),
        *layer_norm(f"{scope}/embeddings/LayerNorm", e.LayerNorm),
    ]
    for i, layer in enumerate(bert.encoder.layer):
        block = f"{scope}/encoder/layer_._{i}"
        attention = layer.attention
        for name in ("query", "key", "value"):
            variables += dense(f"{block}/attention/self/{name}", getattr(attention.self, name))
        variables += dense(f"{block}/attention/output/dense", attention.output.dense)
        variables += layer_norm(f"{block}/attention/output/LayerNorm", attention.output.LayerNorm)
        variables += dense(f"{block}/intermediate/dense", layer.intermediate.dense)
        variables += dense(f"{block}/output/dense", layer.output.dense)
        variables += layer_norm(f"{block}/output/LayerNorm", layer.output.LayerNorm)
    if bert.pooler is not None:
        variables += dense(f"{scope}/pooler/dense", bert.pooler.dense)
    return variables


def write_tf_model_h5(path, layers):
    """Keras' legacy `save_weights` HDF5 writer, given `{layer name: [Variable]}`."""
    model = types.SimpleNamespace(
        layers=[
            types.SimpleNamespace(name=name, trainable_weights=weights, non_trainable_weights=[])
            for name, weights in layers.items()
        ],
        _trainable_variables=[],
        _non_trainable_variables=[],
        weights=[],
    )
    with h5py.File(path, "w") as f:
        save_weights_to_hdf5_group(f, model)


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def bert_config(**kwargs):
    return transformers.BertConfig(
        vocab_size=VOCABULARY_SIZE,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=24,
        max_position_embeddings=16,
        type_vocab_size=2,
        **kwargs,
    )


def randomized(model):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.2
            parameter.copy_(noise + 1.0 if "LayerNorm.weight" in name else noise)
    model.tie_weights()
    return model.eval()


def config_only(model, folder):
    """The checkpoint folder with `config.json` and no weights but the h5 written next."""
    model.config.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    return folder


def reference(model, inputs):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
            attention_mask=torch.tensor(inputs["padding_mask"], dtype=torch.long),
        )


def test_tf_bert_model_h5_matches_transformers(tmp_path):
    reference_model = randomized(transformers.BertModel(bert_config()))
    folder = config_only(reference_model, tmp_path / "bert")
    write_tf_model_h5(
        folder / "tf_model.h5",
        {"bert": tf_bert_main_layer("tf_bert_model/bert", reference_model)},
    )
    with h5py.File(folder / "tf_model.h5", "r") as f:  # the layout of a Keras 2 weights file
        assert [text(n) for n in f.attrs["layer_names"]] == ["bert"]
        names = [text(n) for n in f["bert"].attrs["weight_names"]]
        assert "tf_bert_model/bert/encoder/layer_._1/attention/self/query/kernel:0" in names
        assert f["bert/tf_bert_model/bert/pooler/dense/kernel:0"].shape == (16, 16)
    loaded = from_huggingface(folder)
    assert loaded.unused_tensors == () and loaded.left_as_initialized == ()
    inputs = padded_batch(lengths=(9, 5, 2))
    expected = reference(reference_model, inputs)
    ours = loaded.model(inputs)
    np.testing.assert_allclose(
        np.asarray(ours["sequence_output"])[real_rows()],
        expected.last_hidden_state.numpy()[real_rows()],
        atol=1e-4,
    )
    np.testing.assert_allclose(
        np.asarray(ours["pooled_output"]), expected.pooler_output.numpy(), atol=1e-4
    )


def test_tf_bert_for_masked_lm_h5_matches_transformers(tmp_path):
    reference_model = randomized(transformers.BertForMaskedLM(bert_config()))
    folder = config_only(reference_model, tmp_path / "mlm")
    scope = "tf_bert_for_masked_lm"
    predictions = reference_model.cls.predictions
    write_tf_model_h5(
        folder / "tf_model.h5",
        {
            # `TFBertForMaskedLM` has no pooler; its head reuses the word embeddings.
            "bert": tf_bert_main_layer(f"{scope}/bert", reference_model.bert),
            "mlm___cls": [
                Variable(f"{scope}/mlm___cls/predictions/bias:0", predictions.bias),
                *dense(
                    f"{scope}/mlm___cls/predictions/transform/dense", predictions.transform.dense
                ),
                *layer_norm(
                    f"{scope}/mlm___cls/predictions/transform/LayerNorm",
                    predictions.transform.LayerNorm,
                ),
            ],
        },
    )
    loaded = from_huggingface(folder)
    assert type(loaded.model).__name__ == "BertMaskedLM"
    assert loaded.unused_tensors == () and loaded.left_as_initialized == ("pooler",)
    inputs = padded_batch(lengths=(9, 5, 2))
    logits = loaded.model({**inputs, "mask_positions": all_positions(inputs)})
    np.testing.assert_allclose(
        np.asarray(logits)[real_rows()],
        reference(reference_model, inputs).logits.numpy()[real_rows()],
        atol=1e-4,
    )
