"""Exports load and run in a process that imports only TensorFlow, with core TF ops only,
both as TF2 (`tf.saved_model.load`) and as TF Serving's C++ loader does (a TF1 `Session`,
signatures run by their tensor names, scalar inputs left to their defaults)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from serving_helpers import TEXTS

from keras_transformer.serving import SavedModelPredictor

# The op check of the tokenizer SavedModel test: ops that tensorflow-text or Python callbacks
# would bring into a graph.
sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "text"))
from test_tokenizer_saved_model import FORBIDDEN_OPS  # noqa: E402

RUNNER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    def decode(spec):
        if spec["dtype"] == "string":
            return np.array([bytes.fromhex(v) for v in spec["value"]], dtype=object)
        return np.array(spec["value"], dtype=spec["dtype"])

    def encode(value):
        value = np.asarray(value)
        if value.dtype == object:
            return {"dtype": "string", "value": [v.hex() for v in value.ravel().tolist()],
                    "shape": list(value.shape)}
        return {"dtype": value.dtype.name, "value": value.tolist()}

    jobs = json.load(open(sys.argv[1]))
    report = {"runs": {}, "ops": [], "unregistered": []}
    ops = set()
    for path, requests in jobs.items():
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
        for meta_graph in proto.meta_graphs:
            ops.update(node.op for node in meta_graph.graph_def.node)
            for function in meta_graph.graph_def.library.function:
                ops.update(node.op for node in function.node_def)
        runs = report["runs"][path] = []
        # TF2: signatures need every input: fill those left out from the SignatureDef defaults.
        loaded = tf.saved_model.load(path)
        definitions = proto.meta_graphs[0].signature_def
        for signature, inputs in requests:
            feeds = {k: tf.make_ndarray(v) for k, v in definitions[signature].defaults.items()}
            feeds.update({k: decode(v) for k, v in inputs.items()})
            outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in feeds.items()})
            runs.append({"tf2": {k: encode(v.numpy()) for k, v in outputs.items()}})
        # TF1 Session, as TF Serving's C++ loader: feeds and fetches by tensor name.
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
            for run, (signature, inputs) in zip(runs, requests):
                definition = meta_graph.signature_def[signature]
                feeds = {definition.inputs[k].name: decode(v) for k, v in inputs.items()}
                fetches = {k: v.name for k, v in definition.outputs.items()}
                run["session"] = {k: encode(v) for k, v in session.run(fetches, feeds).items()}
    report["ops"] = sorted(ops)
    report["unregistered"] = sorted(op for op in ops if op_def_registry.get(op) is None)
    report["modules"] = sorted(
        m for m in ("tensorflow_text", "keras_nlp", "keras_hub", "keras_transformer")
        if m in sys.modules
    )
    print(json.dumps(report))
    """
)


def encode(value):
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind in "SU":
        items = [v.encode("utf-8") if isinstance(v, str) else v for v in value.ravel().tolist()]
        return {"dtype": "string", "value": [v.hex() for v in items]}
    return {"dtype": value.dtype.name, "value": value.tolist()}


def decode(spec):
    if spec["dtype"] == "string":
        values = [bytes.fromhex(v) for v in spec["value"]]
        return np.array(values, dtype=object).reshape(spec["shape"])
    return np.array(spec["value"], dtype=spec["dtype"])


def requests_for(exports):
    word_ids = np.array([[2, 10, 11, 3], [2, 12, 3, 0]], "int32")
    word_mask = (np.arange(4)[None] < [[4], [3]]).astype("int32")
    char_ids = np.array([[3, 10, 11], [3, 0, 0]], "int32")
    char_mask = np.array([[1, 1, 1], [1, 0, 0]], "int32")
    masked = ["paris is the [MASK] of france.", "[MASK] movie", ""]
    return {
        "classifier": [
            ("serving_default", {"text": TEXTS}),
            ("from_token_ids", {"token_ids": word_ids, "padding_mask": word_mask}),
        ],
        "encoder": [
            ("embed", {"text": TEXTS[:3]}),
            ("serving_default", {"text": TEXTS[3:]}),
            ("from_token_ids", {"token_ids": word_ids, "padding_mask": word_mask}),
        ],
        "masked_lm": [
            ("fill_mask", {"text": masked}),
            (
                "from_token_ids",
                {
                    "token_ids": word_ids,
                    "padding_mask": word_mask,
                    "mask_positions": np.array([[1], [2]], "int32"),
                },
            ),
        ],
        # Scalar inputs left out: their defaults apply (greedy, 6 new tokens).
        "causal_lm": [
            ("generate", {"prompts": ["To be, or not", "", "ROMEO: 🙂"]}),
            ("from_token_ids", {"token_ids": char_ids, "padding_mask": char_mask}),
        ],
    }


@pytest.fixture(scope="module")
def report(exports, tmp_path_factory):
    jobs = {
        exports.results[kind].path: [
            (signature, {k: encode(v) for k, v in inputs.items()}) for signature, inputs in reqs
        ]
        for kind, reqs in requests_for(exports).items()
    }
    jobs_path = tmp_path_factory.mktemp("fresh") / "jobs.json"
    jobs_path.write_text(json.dumps(jobs))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(jobs_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(jobs_path.parent),
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_only_tensorflow_was_imported(report):
    assert report["modules"] == []


def test_graphs_use_only_core_tensorflow_ops(report):
    assert report["unregistered"] == []
    assert not FORBIDDEN_OPS & set(report["ops"])
    assert "PlaceholderWithDefault" in report["ops"]  # Scalar inputs with defaults.
    assert "While" in report["ops"] or "StatelessWhile" in report["ops"]  # The decoding loop.


@pytest.mark.parametrize("kind", ["classifier", "encoder", "masked_lm", "causal_lm"])
def test_fresh_process_and_session_outputs_equal_in_process_outputs(exports, report, kind):
    path = exports.results[kind].path
    predictor = SavedModelPredictor(path)
    runs = report["runs"][path]
    for run, (signature, inputs) in zip(runs, requests_for(exports)[kind], strict=True):
        if kind == "causal_lm":  # Defaults are filled in by the predictor too.
            inputs = dict(inputs, seed=0)
        expected = predictor(signature, **inputs)
        for mode in ("tf2", "session"):
            outputs = run[mode]
            assert sorted(outputs) == sorted(expected), (signature, mode)
            for name, want in expected.items():
                got = decode(outputs[name])
                if want.dtype == object:
                    np.testing.assert_array_equal(got.reshape(want.shape), want)
                else:
                    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=name)
