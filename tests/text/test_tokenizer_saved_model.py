"""A SavedModel holding only our tokenizers loads and runs with stock TensorFlow alone."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from text_samples import sample_vocabulary, varied_strings

from keras_transformer.text import CharacterTokenizer, MultiSegmentPacker, WordPieceTokenizer

# Op types that tensorflow-text (or Python callbacks) would bring into a graph.
FORBIDDEN_OPS = {
    "RegexSplitWithOffsets",
    "WordpieceTokenizeWithOffsets",
    "FastWordpieceTokenizeWithOffsets",
    "NormalizeUTF8",
    "CaseFoldUTF8",
    "PyFunc",
    "EagerPyFunc",
    "PyFuncStateless",
}

LOADER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    path, inputs_path = sys.argv[1], sys.argv[2]
    strings = json.load(open(inputs_path, encoding="utf-8"))
    loaded = tf.saved_model.load(path)
    outputs = {}
    for size in (len(strings), 3):
        batch = tf.constant([s.encode("utf-8") for s in strings[:size]])
        result = loaded.signatures["serving_default"](text=batch)
        outputs[size] = {
            k: [x.hex() for x in v.numpy().tolist()] if v.dtype == tf.string
            else v.numpy().tolist()
            for k, v in result.items()
        }
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    unregistered = sorted(op for op in ops if op_def_registry.get(op) is None)
    third_party = sorted(
        m for m in ("tensorflow_text", "keras_hub", "keras_nlp") if m in sys.modules
    )
    print(json.dumps({"outputs": outputs, "ops": sorted(ops), "unregistered": unregistered,
                      "third_party": third_party}))
    """
)


class _TokenizerModule(tf.Module):
    def __init__(self, vocabulary, characters):
        super().__init__()
        self.tokenizer = WordPieceTokenizer(vocabulary)
        self.char_tokenizer = CharacterTokenizer.from_text(characters)
        self.packer = MultiSegmentPacker(24, start_value=2, end_value=3)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        ids = self.tokenizer(text)
        token_ids, segment_ids, padding_mask = self.packer([ids, ids])
        chars = self.char_tokenizer(text)
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
            "piece_values": ids.flat_values,
            "piece_splits": ids.row_splits,
            "char_values": chars.flat_values,
            "detokenized": self.tokenizer.detokenize(ids),
        }


def test_saved_tokenizer_runs_in_a_process_without_tensorflow_text(tmp_path):
    strings = varied_strings(300, seed=3)
    module = _TokenizerModule(sample_vocabulary(strings), strings)
    path = str(tmp_path / "tokenizer")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    inputs_path = tmp_path / "inputs.json"
    inputs_path.write_text(json.dumps(strings), encoding="utf-8")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", LOADER, path, str(inputs_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["third_party"] == []
    assert report["unregistered"] == []
    assert not FORBIDDEN_OPS & set(report["ops"])
    assert {"StaticRegexReplace", "LookupTableFindV2", "UnicodeDecode"} <= set(report["ops"])
    for size, outputs in report["outputs"].items():
        expected = module.serve(tf.constant(strings[: int(size)]))
        assert sorted(outputs) == sorted(expected)
        for name, value in outputs.items():
            want = expected[name].numpy()
            if want.dtype == object:
                assert value == [x.hex() for x in want.tolist()], name
            else:
                np.testing.assert_array_equal(np.array(value), want, err_msg=name)
