"""`export(..., jit_compile=True)`: the XLA-compiled decoding of a GPTCausalLM's SavedModel.

Its greedy and beam-search tokens (`from_token_ids`) equal the plain export's and
`GPTCausalLM.generate`'s at batch 1 and 3 (padded prompts); it loads and answers in a process
that imports only TensorFlow, as TF2 (`tf.saved_model.load`) and as TF Serving's C++ loader
does (a TF1 `Session`: `from_token_ids` beam search, and the text signature `generate` with
its scalar inputs left to their defaults, equal to the plain export's). Each new request
shape compiles once (about 10-30 s each on this shared 2-core machine), hence few shapes.
"""

import json

import numpy as np
import pytest
from fresh_process import run_code
from serving_helpers import CHARACTER_CORPUS, causal_lm

from keras_transformer.serving import SavedModelPredictor, export
from keras_transformer.text import CharacterTokenizer

MAX_NEW_TOKENS = 6
BEAMS = {"num_beams": 3, "length_penalty": 0.5}
PROMPTS = {
    1: (["To be, or not"], np.array([[3, 10, 11, 12, 13]], "int32")),
    3: (
        ["To be, or not", "", "ROMEO: 🙂"],
        np.array([[3, 10, 11, 12], [3, 20, 0, 0], [3, 0, 0, 0]], "int32"),
    ),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny causal LM exported twice, plain and with `jit_compile=True`."""
    root = tmp_path_factory.mktemp("xla_generate")
    characters = CharacterTokenizer.from_text(CHARACTER_CORPUS)
    lm = causal_lm(characters.vocabulary_size(), seed=4)
    paths = {
        jit: export(
            lm,
            characters,
            root,
            name=f"causal_lm_jit_{jit}",
            max_new_tokens=MAX_NEW_TOKENS,
            warmup=False,
            jit_compile=jit,
        ).path
        for jit in (False, True)
    }
    predictors = {jit: SavedModelPredictor(path) for jit, path in paths.items()}
    return lm, characters.token_to_id("[EOS]"), paths, predictors


def compiled_function_count(path):
    """How many functions of a SavedModel carry `_XlaMustCompile=True`."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(f"{path}/saved_model.pb", "rb") as file:
        proto.ParseFromString(file.read())
    library = proto.meta_graphs[0].graph_def.library.function
    return sum(1 for f in library if f.attr["_XlaMustCompile"].b)


def test_only_the_jit_compile_export_holds_xla_functions(exported):
    _, _, paths, _ = exported
    assert compiled_function_count(paths[False]) == 0
    # The decoding of `generate` and of `from_token_ids`.
    assert compiled_function_count(paths[True]) >= 2


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_xla_tokens_equal_plain_export_and_in_memory_generate(exported, batch_size, search):
    lm, eos, _, predictors = exported
    settings = BEAMS if search == "beam" else {}
    token_ids = PROMPTS[batch_size][1]
    padding_mask = (token_ids > 0).astype("int32")
    inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
    expected = lm.generate(inputs, max_new_tokens=MAX_NEW_TOKENS, end_token=eos, **settings)
    for jit, predictor in predictors.items():
        outputs = predictor("from_token_ids", **inputs, max_new_tokens=MAX_NEW_TOKENS, **settings)
        np.testing.assert_array_equal(outputs["token_ids"], expected["token_ids"], f"jit={jit}")
        np.testing.assert_array_equal(outputs["padding_mask"], expected["padding_mask"])
    assert (expected["padding_mask"].sum(axis=1) > padding_mask.sum(axis=1)).all()


def test_beam_search_differs_from_greedy_here(exported):
    """So the beam cases above test beam search, not greedy decoding twice."""
    _, _, _, predictors = exported
    token_ids = PROMPTS[3][1]
    inputs = {"token_ids": token_ids, "padding_mask": (token_ids > 0).astype("int32")}
    greedy = predictors[True]("from_token_ids", **inputs)
    beam = predictors[True]("from_token_ids", **inputs, **BEAMS)
    assert not np.array_equal(greedy["token_ids"], beam["token_ids"])


RUNNER = """
import json, os
import numpy as np
import tensorflow as tf

path = {path!r}
token_ids = np.array({token_ids}, "int32")
padding_mask = (token_ids > 0).astype("int32")
prompts = np.array([t.encode() for t in {texts!r}], dtype=object)
report = {{}}
loaded = tf.saved_model.load(path)
signature = loaded.signatures["from_token_ids"]
scalars = dict(max_new_tokens=6, temperature=0.0, top_k=0, top_p=1.0, seed=0, num_beams=1,
               length_penalty=0.5)
out = signature(token_ids=tf.constant(token_ids), padding_mask=tf.constant(padding_mask),
                **{{k: tf.constant(v) for k, v in scalars.items()}})
report["tf2"] = out["token_ids"].numpy().tolist()
with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    for name in ("from_token_ids", "generate"):
        definition = meta_graph.signature_def[name]
        if name == "generate":  # Only the prompts: the scalar inputs keep their defaults.
            feeds = {{definition.inputs["prompts"].name: prompts}}
        else:
            feeds = {{definition.inputs["token_ids"].name: token_ids,
                      definition.inputs["padding_mask"].name: padding_mask,
                      definition.inputs["num_beams"].name: np.int32(3),
                      definition.inputs["length_penalty"].name: np.float32(0.5)}}
        fetched = session.run(definition.outputs["token_ids"].name, feeds)
        report[f"session_{{name}}"] = fetched.tolist()
report["modules"] = [m for m in ("keras", "keras_transformer") if m in __import__("sys").modules]
print(json.dumps(report))
"""


def test_xla_export_answers_in_a_fresh_process_and_a_tf1_session(exported):
    _, _, paths, predictors = exported
    texts, token_ids = PROMPTS[3]
    code = RUNNER.format(path=paths[True], token_ids=token_ids.tolist(), texts=texts)
    report = json.loads(run_code(code, timeout=300))
    # `import tensorflow` imports keras, never keras_transformer.
    assert "keras_transformer" not in report["modules"]
    inputs = {"token_ids": token_ids, "padding_mask": (token_ids > 0).astype("int32")}
    plain = predictors[False]
    for beams, key in ((1, "tf2"), (3, "session_from_token_ids")):
        settings = {"num_beams": beams, "length_penalty": 0.5}
        expected = plain("from_token_ids", **inputs, max_new_tokens=MAX_NEW_TOKENS, **settings)
        np.testing.assert_array_equal(report[key], expected["token_ids"], key)
    expected = plain("generate", texts=texts)  # The defaults: greedy, 6 new tokens.
    np.testing.assert_array_equal(report["session_generate"], expected["token_ids"])


def test_workflow_export_jit_compile_flag(exported, tmp_path):
    """`python -m workflows export --jit-compile on` writes the XLA export; `off` is the
    default (the plain export, as the fixture's, is not written again here)."""
    from keras_transformer.text.io import save_tokenizer
    from workflows import export as export_workflow
    from workflows.__main__ import build_parser
    from workflows.config import config_from_args

    lm, _, _, _ = exported
    model_path, tokenizer_path = tmp_path / "lm.keras", tmp_path / "tokenizer.json"
    lm.save(model_path)
    save_tokenizer(CharacterTokenizer.from_text(CHARACTER_CORPUS), str(tokenizer_path))
    common = ["export", "--model-path", str(model_path), "--tokenizer-path", str(tokenizer_path)]
    common += ["--output-dir", str(tmp_path / "out"), "--max-new-tokens", "6", "--no-warmup"]
    args = build_parser().parse_args([*common, "--name", "lm", "--jit-compile", "on"])
    config = config_from_args(export_workflow.Config, args)
    assert config.jit_compile == "on"
    assert compiled_function_count(export_workflow.run(config).path) >= 2
    default = config_from_args(export_workflow.Config, build_parser().parse_args(common))
    assert default.jit_compile == "off"
    with pytest.raises(SystemExit):  # argparse refuses other values
        build_parser().parse_args([*common, "--jit-compile", "auto"])


def test_jit_compile_for_another_model_kind_is_refused(tmp_path):
    from serving_helpers import bert_backbone

    from keras_transformer.models import BertClassifier

    classifier = BertClassifier(bert_backbone(40), num_classes=2)
    with pytest.raises(ValueError, match="does not apply to a BertClassifier"):
        export(classifier, None, tmp_path, name="classifier", jit_compile=True)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="must be True or False"):
        export(causal_lm(40), None, tmp_path, name="lm", jit_compile="on")
