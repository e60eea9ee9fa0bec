"""A SavedModel holding only a BytePairTokenizer runs in a process that imports only TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from text_samples import varied_strings

from keras_transformer.text import BytePairTokenizer, train_byte_pair_vocabulary

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

# Inputs travel as hex so that bytes that are not UTF-8 reach the model unchanged.
LOADER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    path, inputs_path = sys.argv[1], sys.argv[2]
    strings = [bytes.fromhex(s) for s in json.load(open(inputs_path))]
    loaded = tf.saved_model.load(path)
    outputs = {}
    for size in (len(strings), 3):
        result = loaded.signatures["serving_default"](text=tf.constant(strings[:size]))
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
        m for m in ("tensorflow_text", "keras_hub", "keras_nlp", "keras_transformer", "tokenizers")
        if m in sys.modules
    )
    print(json.dumps({"outputs": outputs, "ops": sorted(ops), "unregistered": unregistered,
                      "third_party": third_party}))
    """
)


class _TokenizerModule(tf.Module):
    def __init__(self, vocabulary, merges):
        super().__init__()
        self.tokenizer = BytePairTokenizer(vocabulary, merges, special_tokens=["<|endoftext|>"])
        self.dense = BytePairTokenizer(vocabulary, merges, sequence_length=16)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        ids = self.tokenizer(text)
        return {
            "values": ids.flat_values,
            "row_splits": ids.row_splits,
            "dense": self.dense(text),
            "detokenized": self.tokenizer.detokenize(ids),
        }


def test_saved_tokenizer_runs_in_a_process_with_only_tensorflow(tmp_path):
    texts = varied_strings(400, seed=9)
    vocabulary, merges = train_byte_pair_vocabulary(
        texts, 600, special_tokens=["<|endoftext|>"], verbose=False
    )
    strings = [t.encode() for t in texts]
    strings += [b"a<|endoftext|>b", b"caf\xe9 \xff\xfe", b"\xed\xa0\x80", b"x" * 5000, b""]
    module = _TokenizerModule(vocabulary, merges)
    module.tokenizer(strings[:3])  # An eager call first (it keeps a tf.function) saves too.
    path = str(tmp_path / "tokenizer")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    inputs_path = tmp_path / "inputs.json"
    inputs_path.write_text(json.dumps([s.hex() for s in strings]), encoding="utf-8")

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
    # The pre-tokenizer's regexes, the tables, the bounded merge loop, the UTF-8 repair.
    expected_ops = {"StaticRegexReplace", "LookupTableFindV2", "While", "UnicodeTranscode"}
    assert expected_ops <= set(report["ops"])
    for size, outputs in report["outputs"].items():
        expected = module.serve(tf.constant(strings[: int(size)]))
        assert sorted(outputs) == sorted(expected)
        for name, value in outputs.items():
            want = expected[name].numpy()
            if want.dtype == object:
                assert value == [x.hex() for x in want.tolist()], name
            else:
                np.testing.assert_array_equal(np.array(value), want, err_msg=name)
    # The served text is the input, byte for byte.
    assert report["outputs"][str(len(strings))]["detokenized"] == [s.hex() for s in strings]
