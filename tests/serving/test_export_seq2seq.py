"""Seq2seq export: `python -m workflows export --run` of a seq2seq run folder serves `generate`
(source strings in, generated strings out) equal to `Seq2SeqTransformer.generate` and the
preprocessor's detokenize, greedy and beam search, at batch 1 and 3; in a TensorFlow-only
process and through a TF1 Session with the scalar inputs left to their defaults; core TF ops
only; an empty source gets an empty answer; the request builders and `predict` work with it;
the decoding loop never projects the source again."""

import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_export_fresh_process import FORBIDDEN_OPS, RUNNER, decode, encode

from keras_transformer.data.dates import date_pairs
from keras_transformer.layers.multi_head_attention import MultiHeadAttention
from keras_transformer.models import Seq2SeqBackbone, Seq2SeqTransformer
from keras_transformer.preprocessing import (
    CausalLMPreprocessor,
    Seq2SeqPreprocessor,
    save_preprocessor,
)
from keras_transformer.serving import (
    SavedModelPredictor,
    grpc_request,
    predict,
    read_warmup_requests,
    rest_request,
    rest_response,
    serving_module,
)
from keras_transformer.serving.seq2seq import text_token_mask
from keras_transformer.text import CharacterTokenizer, WordPieceTokenizer
from keras_transformer.text.io import save_tokenizer
from workflows import export as export_workflow
from workflows.__main__ import main

ENCODER_LENGTH, DECODER_LENGTH = 24, 12  # S, T: a date, its [EOS]; [BOS] and an ISO date.
# Three sources: a training date, an unseen one, one longer than S (truncated).
SOURCES = ["12 may 2020", "3 june 1999", "Tuesday, the 31st of December in the year 1901"]


def train_tiny_model():
    """A 1-layer, 32-wide Seq2SeqTransformer after 60 steps on date_to_iso pairs (characters)."""
    pairs = date_pairs("train", 320)
    sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    tokenizer = CharacterTokenizer.from_text(sources + targets + SOURCES)
    preprocessor = Seq2SeqPreprocessor(tokenizer, ENCODER_LENGTH, DECODER_LENGTH)
    keras.utils.set_random_seed(3)
    backbone = Seq2SeqBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=1,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=ENCODER_LENGTH,
        dropout=0.0,
    )
    model = Seq2SeqTransformer(backbone)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y, weights = preprocessor(tf.constant(sources), tf.constant(targets))
    x = {name: value.numpy() for name, value in x.items()}
    model.fit(x, y.numpy(), sample_weight=weights.numpy(), batch_size=32, epochs=6, verbose=0)
    return model, preprocessor


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder as `python -m workflows seq2seq` writes it: model.keras, preprocessor.json,
    tokenizer.json (the source tokenizer)."""
    model, preprocessor = train_tiny_model()
    folder = tmp_path_factory.mktemp("seq2seq_run")
    model.save(str(folder / "model.keras"))
    save_preprocessor(preprocessor, str(folder / "preprocessor.json"))
    save_tokenizer(preprocessor.source_tokenizer, str(folder / "tokenizer.json"))
    return types.SimpleNamespace(path=str(folder), model=model, preprocessor=preprocessor)


@pytest.fixture(scope="module")
def served(run_folder, tmp_path_factory):
    """`python -m workflows export --run FOLDER`, in this process; its predictor."""
    output_dir = tmp_path_factory.mktemp("saved_models")
    code = main(["export", "--run", run_folder.path, "--output-dir", str(output_dir)])
    assert code == 0
    path = output_dir / "seq2seq" / "1"  # The default name of a seq2seq model.
    return SavedModelPredictor(str(path))


def expected_generation(run_folder, sources, num_beams):
    """In memory: the preprocessor's framing, `model.generate` from [BOS] to [EOS] (T new
    tokens at most), then each row's tokens after [BOS] and before [EOS], detokenized."""
    preprocessor = run_folder.preprocessor
    encoder_inputs = preprocessor.generate_preprocess(tf.constant(sources))
    out = run_folder.model.generate(
        {name: value.numpy() for name, value in encoder_inputs.items()},
        start_token=preprocessor.start_token_id,
        max_new_tokens=DECODER_LENGTH,
        end_token=preprocessor.end_token_id,
        num_beams=num_beams,
    )
    rows = []
    for ids, mask in zip(out["token_ids"], out["padding_mask"], strict=True):
        new = [int(t) for t in ids[1:][mask[1:]] if t != preprocessor.end_token_id]
        text = preprocessor.detokenize(tf.ragged.constant([new], dtype=tf.int32)).numpy()[0]
        rows.append((new, text))
    return out, rows


def assert_rows_equal(outputs, rows):
    assert outputs["generated_text"].tolist() == [text for _, text in rows]
    for row, (ids, _) in enumerate(rows):
        length = int(outputs["padding_mask"][row].sum())
        assert outputs["token_ids"][row, :length].tolist() == ids
        assert not outputs["padding_mask"][row, length:].any()


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("batch", [[0], [0, 1, 2]])
def test_generate_equals_in_memory_generate(run_folder, served, num_beams, batch):
    sources = [SOURCES[i] for i in batch]
    outputs = served("generate", texts=sources, num_beams=num_beams)
    out, rows = expected_generation(run_folder, sources, num_beams)
    assert_rows_equal(outputs, rows)
    assert all(ids for ids, _ in rows)  # Every source got an answer.
    # The token-id signature returns `generate`'s buffer exactly ([BOS] ... [EOS]).
    encoder_inputs = run_folder.preprocessor.generate_preprocess(tf.constant(sources))
    from_ids = served(
        "from_token_ids",
        encoder_token_ids=encoder_inputs["encoder_token_ids"].numpy(),
        encoder_padding_mask=encoder_inputs["encoder_padding_mask"].numpy().astype("int32"),
        num_beams=num_beams,
    )
    np.testing.assert_array_equal(from_ids["token_ids"], out["token_ids"])
    np.testing.assert_array_equal(from_ids["padding_mask"], out["padding_mask"])


def test_the_model_learned_the_format_and_beams_differ_from_greedy(run_folder):
    """The model is a fair subject: its answers end with [EOS] before T tokens, and beam
    search and greedy decoding disagree somewhere, so the beam comparison means something."""
    sources = [p[0] for p in date_pairs("validation", 24)]
    greedy, greedy_rows = expected_generation(run_folder, sources, 1)
    _, beam_rows = expected_generation(run_folder, sources, 3)
    assert all(len(ids) < DECODER_LENGTH for ids, _ in greedy_rows)
    assert [ids for ids, _ in greedy_rows] != [ids for ids, _ in beam_rows]


def test_empty_sources_get_empty_outputs(run_folder, served):
    for num_beams in (1, 3):
        outputs = served("generate", texts=["", SOURCES[1], ""], num_beams=num_beams)
        _, rows = expected_generation(run_folder, [SOURCES[1]], num_beams)
        assert outputs["generated_text"].tolist() == [b"", rows[0][1], b""]
        assert outputs["padding_mask"][[0, 2]].sum() == 0
        assert_rows_equal({k: v[1:2] for k, v in outputs.items()}, rows)
    only_empty = served("generate", texts=[""])
    assert only_empty["generated_text"].tolist() == [b""]
    assert only_empty["token_ids"].shape == (1, 0)
    nothing = served("generate", texts=[])
    assert nothing["generated_text"].shape == (0,) and nothing["token_ids"].shape[0] == 0


def test_defaults_are_recorded_and_serving_default_is_generate(run_folder, served):
    defaults = {k: v.item() for k, v in served.defaults_of("generate").items()}
    assert defaults == {
        "max_new_tokens": DECODER_LENGTH,  # The run's T.
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": -1,
        "num_beams": 1,
        "length_penalty": 1.0,
    }
    assert served.inputs_of("serving_default") == served.inputs_of("generate")
    assert served.inputs_of("generate")["sources"] == (tf.string, [-1])
    short = served("serving_default", texts=SOURCES[:2], max_new_tokens=3)
    assert (short["padding_mask"].sum(axis=1) <= 3).all()


def test_fresh_process_and_session_with_defaults_unfed(served, tmp_path):
    """TF Serving's view: only TensorFlow imported, TF1 Session feeds by tensor name with
    the scalar inputs left out (their defaults: greedy, T new tokens); core ops only."""
    requests = [
        ("generate", {"sources": ["", *SOURCES]}),
        ("generate", {"sources": SOURCES, "num_beams": np.int32(3)}),
    ]
    jobs = {served.path: [(s, {k: encode(v) for k, v in i.items()}) for s, i in requests]}
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "jobs.json")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] == []
    assert report["unregistered"] == []
    assert not FORBIDDEN_OPS & set(report["ops"])
    assert "PlaceholderWithDefault" in report["ops"]
    assert "While" in report["ops"] or "StatelessWhile" in report["ops"]
    for run, (signature, inputs) in zip(report["runs"][served.path], requests, strict=True):
        expected = served(signature, **inputs)
        for mode in ("tf2", "session"):
            assert sorted(run[mode]) == sorted(expected), (signature, mode)
            for name, want in expected.items():
                got = decode(run[mode][name])
                np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=name)


def test_request_builders_and_predict(served):
    direct = served("generate", texts=SOURCES, num_beams=3)
    # REST, columnar: the JSON body TF Serving would parse, then its JSON answer.
    body = json.loads(json.dumps(rest_request({"sources": SOURCES, "num_beams": 3}, "generate")))
    assert body["signature_name"] == "generate"
    inputs = dict(body["inputs"])
    via_rest = served("generate", texts=inputs.pop("sources"), **inputs)
    assert rest_response(via_rest) == rest_response(direct)
    answer = rest_response(direct)["outputs"]["generated_text"]
    assert answer == [text.decode() for text in direct["generated_text"]]
    # gRPC: a PredictRequest's tensors, as TF Serving decodes them.
    request = grpc_request("seq2seq", {"sources": SOURCES, "num_beams": 3}, "generate")
    assert request.inputs["num_beams"].dtype == tf.int32.as_datatype_enum
    tensors = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    via_grpc = served("generate", texts=list(tensors.pop("sources")), **tensors)
    for name, value in direct.items():
        np.testing.assert_array_equal(via_grpc[name], value)
    # The predict helper, in batches of 2.
    rows = predict(served, SOURCES, signature="generate", batch_size=2, num_beams=3)
    assert [row["generated_text"] for row in rows] == answer


def test_warmup_requests_replay(served):
    records = read_warmup_requests(served.path)
    assert [(name, signature) for name, signature, _ in records] == [
        ("seq2seq", "generate"),
        ("seq2seq", "generate"),
        ("seq2seq", "from_token_ids"),
    ]
    assert records[1][2]["num_beams"] == 2  # The beam-search branch is warmed up too.
    for _, signature, inputs in records:
        assert set(inputs) == set(served.inputs_of(signature))  # Every input is sent.
        served(signature, **inputs)


def test_decoding_loop_never_projects_the_source_again(run_folder, monkeypatch):
    """The encoder runs and the cross-attention keys and values are projected before the
    `tf.while_loop`; each step projects only its own token (greedy and beam bodies)."""
    traced = []
    project = MultiHeadAttention._project

    def recording_project(inputs, kernel, bias):
        graph = tf.compat.v1.get_default_graph().name
        traced.append((id(kernel), "while_body" in graph))
        return project(inputs, kernel, bias)

    monkeypatch.setattr(MultiHeadAttention, "_project", staticmethod(recording_project))
    model, preprocessor = run_folder.model, run_folder.preprocessor
    encoder_inputs = preprocessor.generate_preprocess(tf.constant(SOURCES))
    inputs = model.generate_inputs(
        ({k: v.numpy() for k, v in encoder_inputs.items()}, preprocessor.start_token_id), 4
    )
    tf.function(model.generate_ids).get_concrete_function(
        {k: tf.constant(v) for k, v in inputs.items()},
        num_beams=tf.constant(3),  # A tensor: both the greedy and the beam loop are traced.
        end_token=preprocessor.end_token_id,
    )
    backbone = model.backbone
    in_loop = {kernel for kernel, in_body in traced if in_body}
    outside = {kernel for kernel, in_body in traced if not in_body}
    for block in backbone.decoder_blocks:
        cross = block.cross_attention_layer
        for kernel in (cross.key_kernel, cross.value_kernel):
            assert id(kernel) in outside and id(kernel) not in in_loop, kernel.path
        assert id(cross.query_kernel) in in_loop
        assert id(block.self_attention.key_kernel) in in_loop
    for block in backbone.encoder_blocks:
        assert id(block.self_attention.query_kernel) not in in_loop  # The encoder: once.


def test_text_leaves_out_special_tokens_and_placeholders():
    vocabulary = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[unused0]", "ah", "##a", "[CLS]"]
    keep = text_token_mask(WordPieceTokenizer(vocabulary), 10)
    assert keep.tolist() == [False, True, False, False, False, True, True, False, False, False]


def test_bad_exports_and_run_folders_are_clear_errors(run_folder, tmp_path):
    model, preprocessor = run_folder.model, run_folder.preprocessor
    with pytest.raises(ValueError, match="needs its Seq2SeqPreprocessor"):
        serving_module(model)
    other = CausalLMPreprocessor(preprocessor.source_tokenizer, 16)
    with pytest.raises(ValueError, match="needs its Seq2SeqPreprocessor"):
        serving_module(model, preprocessor=other)
    with pytest.raises(ValueError, match=r"max_new_tokens.*\[1, 23\]"):
        serving_module(model, preprocessor=preprocessor, max_new_tokens=24)
    with pytest.raises(ValueError, match="go together"):
        export_workflow.preprocessor_for(model, other)
    with pytest.raises(FileNotFoundError, match="no preprocessor.json"):
        export_workflow.run_preprocessor(str(tmp_path), model)


def test_bad_requests_get_clear_errors(served):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_beams must be in \[1, 64\]"):
        served("generate", texts=SOURCES[:1], num_beams=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs temperature 0"):
        served("generate", texts=SOURCES[:1], num_beams=2, temperature=0.5)
    ids = np.array([[5, 6, 0], [5, 0, 0]], "int32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="right-padded"):
        served(
            "from_token_ids",
            encoder_token_ids=ids,
            encoder_padding_mask=np.array([[1, 0, 1], [1, 0, 0]], "int32"),
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one token"):
        served("from_token_ids", encoder_token_ids=ids, encoder_padding_mask=np.zeros_like(ids))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_sequence_length=24"):
        wide = np.ones((1, 30), "int32")
        served("from_token_ids", encoder_token_ids=wide, encoder_padding_mask=wide)
