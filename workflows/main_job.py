"""main: the main job: raw text to served models, with a report of tables and pictures.

One command runs the whole promise on the CPU, each step a resumable stage:

    prepare shakespeare + movie_sentiment -> WordPiece vocabulary -> pretrain a small BERT
    (masked LM) and a small GPT (causal LM) -> from scratch / transfer / fine-tune on
    movie_sentiment -> transfer (and fine-tune) from the pretrained MiniLM -> distil the best
    classifier into a student half its depth -> train an encoder-decoder on cmudict (spelling
    -> phonemes) -> export classifier, student, encoder (`embed`), GPT and encoder-decoder
    (`generate`) to saved_models/ -> query every export in a fresh process -> report

    python -m workflows main --profile quick     # about 2 minutes on 2 cores (CI smoke test)
    python -m workflows main                     # about 12 minutes
    python -m workflows main --profile full      # the best numbers (much longer)

The report is OUTPUT/report.md (and report.html, PNGs beside it). Run the same command again
(same --output-dir, default runs/main) to resume: finished stages whose settings match are
skipped; --force redoes them all.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
import typing

import numpy as np

from keras_transformer.training import resolve_cluster
from workflows import classify, distill, finetune, pretrain, report, scratch, seq2seq, transfer
from workflows.config import save_config, setting, write_json_atomic
from workflows.stages import Stage, StageError, StageRunner

SEQ = {"sequence_length": 32, "batch_size": 32}
PROFILES = {
    "quick": {
        "data": {"sentiment_examples": 1250, "minilm_examples": 625, "shakespeare_chars": 300_000,
                 "subset": "balanced"},
        "vocabulary_size": 2000,
        "bert": {"num_layers": 2, "hidden_dim": 64, "num_heads": 2, "intermediate_dim": 128,
                 "sequence_length": 32, "steps": 300, "eval_interval": 100},
        "gpt": {"num_layers": 2, "hidden_dim": 64, "num_heads": 2, "intermediate_dim": 128,
                "sequence_length": 96, "steps": 300, "eval_interval": 100, "sample_length": 150},
        "classifier": SEQ,
        "epochs": {"scratch": 3, "transfer": 3, "finetune": 2, "distill": 2,
                   "minilm_transfer": 3, "minilm_finetune": 0},
        "seq2seq": {"num_layers": 1, "hidden_dim": 64, "num_heads": 2, "intermediate_dim": 128,
                    "steps": 200, "eval_interval": 100, "eval_batches": 5,
                    "train_examples": 10000, "test_examples": 100, "num_beams": 2},
        "estimates": {"data": 3, "vocabulary": 12, "pretrain_bert": 12, "pretrain_gpt": 25,
                      "scratch": 30, "transfer": 20, "finetune": 22, "minilm_transfer": 35,
                      "distill": 22, "seq2seq": 25, "export": 15, "serve": 12, "report": 8},
    },
    "default": {
        "data": {"sentiment_examples": 5000, "minilm_examples": 2500,
                 "shakespeare_chars": 2_000_000, "subset": "balanced"},
        "vocabulary_size": 4000,
        "bert": {"num_layers": 4, "hidden_dim": 128, "num_heads": 4, "intermediate_dim": 256,
                 "sequence_length": 64, "steps": 400, "eval_interval": 100},
        "gpt": {"num_layers": 4, "hidden_dim": 128, "num_heads": 4, "intermediate_dim": 512,
                "sequence_length": 128, "steps": 400, "eval_interval": 100,
                "sample_length": 300},
        "classifier": {"sequence_length": 64, "batch_size": 32},
        "epochs": {"scratch": 3, "transfer": 3, "finetune": 2, "distill": 2,
                   "minilm_transfer": 2, "minilm_finetune": 1},
        "seq2seq": {"size": "tiny", "steps": 3500, "eval_interval": 500,
                    "test_examples": 1000, "num_beams": 4},
        "estimates": {"data": 15, "vocabulary": 20, "pretrain_bert": 90, "pretrain_gpt": 90,
                      "scratch": 30, "transfer": 25, "finetune": 30, "minilm_transfer": 60,
                      "minilm_finetune": 120, "distill": 40, "seq2seq": 230, "export": 50,
                      "serve": 30, "report": 25},
    },
    "full": {
        "data": {"sentiment_examples": None, "minilm_examples": None, "shakespeare_chars": None},
        "vocabulary_size": 8000,
        "bert": {"num_layers": 4, "hidden_dim": 256, "num_heads": 4, "intermediate_dim": 1024,
                 "sequence_length": 64, "steps": 1200, "eval_interval": 200},
        "gpt": {"num_layers": 4, "hidden_dim": 256, "num_heads": 4, "intermediate_dim": 1024,
                "sequence_length": 256, "steps": 2000, "eval_interval": 200,
                "sample_length": 400},
        "classifier": {"sequence_length": 64, "batch_size": 32},
        "epochs": {"scratch": 5, "transfer": 5, "finetune": 3, "distill": 4,
                   "minilm_transfer": 5, "minilm_finetune": 2},
        # Deeper than the default's tiny model, not wider: at equal minutes 4 x 128 beat
        # 3 x 256 (greedy WER 0.435 after 6,000 steps against 0.479 after 3,000, 18 min each
        # on one core); 3 x 256 at 3e-3 without dropout ended at 0.52 after 12,000 steps.
        "seq2seq": {"num_layers": 4, "hidden_dim": 128, "num_heads": 4, "intermediate_dim": 512,
                    "learning_rate": 2e-3, "dropout": 0.1, "warmup_steps": 1000,
                    "steps": 30000, "eval_interval": 2000, "test_examples": 0, "num_beams": 4},
        "estimates": {"data": 15, "vocabulary": 40, "pretrain_bert": 900, "pretrain_gpt": 1500,
                      "scratch": 150, "transfer": 120, "finetune": 150, "minilm_transfer": 400,
                      "minilm_finetune": 900, "distill": 200, "seq2seq": 3000, "export": 70,
                      "serve": 35, "report": 30},
    },
}  # fmt: skip

SAMPLE_REVIEWS = [
    "A warm, funny and beautifully acted film.",
    "Dull, overlong and badly written.",
    "The plot goes nowhere, but the music is lovely.",
]
GPT_PROMPT = "ROMEO:\n"
LANGUAGE_MODEL_TRAINING = {"batch_size": 32, "eval_batches": 4, "warmup_steps": 10}
# The GPT's training settings besides its profile's model and steps; `benchmarks.token_choice`
# trains the same GPT with each kind of tokens.
GPT_TRAINING = {**LANGUAGE_MODEL_TRAINING, "learning_rate": 3e-3, "dropout": 0.0}
# The GPT's tokens: the winner of `python -m benchmarks.token_choice` (validation bits per
# character at equal time against characters and other BPE sizes; table in docs/BENCHMARKS.md).
GPT_TOKENS = {"tokens": "bpe", "vocabulary_size": 2000}
# The encoder-decoder's training settings besides its profile's size, steps and test words:
# grapheme-to-phoneme on the built-in cmudict (characters in, phonemes out). For budgets of a
# few minutes, a higher rate without dropout learns fastest (2,000 steps of the tiny model,
# greedy WER on 1,000 test words: 0.557 at 1e-3 with dropout 0.1, 0.509 at 3e-3 without;
# `python -m workflows seq2seq --steps 2000 --test-examples 1000 --learning-rate 3e-3
# --dropout 0`, 2026-12-02).
G2P_TRAINING = {"dataset": "cmudict", "batch_size": 64, "learning_rate": 3e-3, "dropout": 0.0}
# Words the exported encoder-decoder is asked to pronounce in a fresh process.
G2P_WORDS = ["keras", "tensorflow", "transformer", "pronunciation"]


@dataclasses.dataclass(frozen=True)
class Config:
    workflow: typing.ClassVar[str] = "main"

    profile: str = setting("default", "quick (~2 min), default (~12 min) or full", tuple(PROFILES))
    output_dir: str | None = setting(
        None, "run folder (default runs/main; reuse it to resume, or runs/main-<time>)"
    )
    saved_models_dir: str = setting("saved_models", "where the exports land: NAME/VERSION/")
    force: bool = setting(False, "redo every stage, even the ones done before")
    minilm: bool = setting(True, "also transfer (and fine-tune) from the pretrained MiniLM")
    attention_model: str = setting("minilm", "model for the attention map", ("minilm", "ours"))
    attention_layer: int = setting(5, "encoder block for the attention map (from 0)")
    attention_head: int = setting(9, "attention head for the map (from 0)")
    attention_sentence: str = setting(
        "The movie was not good, but the actors were wonderful.", "sentence for the map"
    )
    cross_attention_layer: int = setting(
        -1, "encoder-decoder: decoder block for the cross-attention map (from 0; -1: the last)"
    )
    cross_attention_head: int = setting(0, "encoder-decoder: head for the cross-attention map")
    cross_attention_word: str = setting(
        "pronunciation", "encoder-decoder: word whose phonemes the cross-attention map shows"
    )
    verbose: int = setting(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line")
    seed: int = setting(0, "random seed")


@dataclasses.dataclass(frozen=True)
class Result:
    run_dir: str
    report_path: str
    html_path: str
    exports: dict
    answers: dict
    metrics: dict
    seconds: float


def check_writable(folder, flag):
    """Creates `folder` and proves a file can be written there, or raises a clear OSError."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-probe-{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as file:
            file.write("ok")
        os.remove(probe)
    except OSError as error:
        raise StageError(
            error.errno,
            f"{flag} {folder!r} is not a writable folder ({error.strerror}). Choose another "
            f"with {flag}, or make room; nothing was run.",
        ) from error
    return folder


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


# === Stages ===


def prepare_data(folder, settings, seed):
    """sentiment.csv (and a smaller minilm.csv), the GPT text and the masked-LM corpus."""
    from keras_transformer import data as kt_data

    print("[main] reading movie_sentiment and shakespeare (prepared once, then cached) ...")
    sentiment = kt_data.load_movie_sentiment("train")
    scenes = [scene.text for scene in kt_data.load_shakespeare("train")]
    outputs = []
    rng = np.random.default_rng(seed)
    by_label = [
        [i for i, y in enumerate(sentiment.labels) if y == k]
        for k in range(len(sentiment.label_names))
    ]
    for group in by_label:
        rng.shuffle(group)
    for name, limit in (("sentiment", "sentiment_examples"), ("minilm", "minilm_examples")):
        # A balanced, shuffled subset (the split is sorted by sentence id, not mixed).
        share = settings[limit] // len(by_label) if settings[limit] else None
        chosen = sorted(i for group in by_label for i in group[:share])
        path = os.path.join(folder, f"{name}.csv")
        with open(path + ".tmp", "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["text", "label"])
            for i in chosen:
                label = sentiment.labels[i]
                writer.writerow([sentiment.texts[i], sentiment.label_names[label]])
        os.replace(path + ".tmp", path)
        outputs.append(path)
    shakespeare = "\n\n".join(scenes)[: settings["shakespeare_chars"] or None]
    # Masked-LM text: the plays plus the sentiment *training* texts (no test text leaks in).
    splits = classify.load_splits(classify.ClassifierConfig(dataset=outputs[0]))
    for name, text in (
        ("shakespeare.txt", shakespeare),
        ("corpus.txt", shakespeare + "\n\n" + "\n".join(splits.train.texts)),
    ):
        path = os.path.join(folder, name)
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(path + ".tmp", path)
        outputs.append(path)
    return {
        "outputs": outputs,
        "sentiment_csv": outputs[0],
        "minilm_csv": outputs[1],
        "shakespeare": outputs[2],
        "corpus": outputs[3],
        "train_examples": len(splits.train),
        "test_examples": len(splits.test),
    }


def train_vocabulary(folder, corpus, size):
    import tensorflow as tf

    from keras_transformer.text.vocabulary import save_vocabulary, train_word_piece_vocabulary

    with open(corpus, encoding="utf-8") as file:
        lines = [line for line in file.read().splitlines() if line.strip()]
    print(f"[main] training a {size}-token WordPiece vocabulary on {len(lines):,} lines ...")
    vocabulary = train_word_piece_vocabulary(tf.data.Dataset.from_tensor_slices(lines), size)
    path = save_vocabulary(vocabulary, os.path.join(folder, "vocab.txt"))
    return {"outputs": [path], "vocabulary": path, "vocabulary_size": len(vocabulary)}


VERBOSE = {"verbose": 1}  # Keras progress output; not a setting of the results (not hashed)


def run_workflow(module, folder, **settings):
    result = module.run(module.Config(output_dir=folder, **VERBOSE, **settings))
    return {
        "outputs": [result.model_path, os.path.join(folder, "metrics.json")],
        "run_dir": folder,
        "model_path": result.model_path,
        "metrics": result.metrics,
    }


def export_models(folder, saved_models_dir, sources):
    """Exports each `{name: (run folder, kind)}` to saved_models_dir/NAME/VERSION/."""
    import keras

    from keras_transformer.serving import export
    from workflows.export import run_preprocessor

    exports = {}
    for name, (run_dir, kind) in sources.items():
        print(f"[main] exporting {name} ({kind}) from {run_dir} ...", flush=True)
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
        options = {}
        if kind == "classifier":
            options["class_names"] = read_json(os.path.join(run_dir, "labels.json"))
        elif kind == "encoder":
            model, options["pooling"] = model.backbone, "mean"
        elif kind == "seq2seq":
            pass  # `generate` writes at most the run's T tokens, its default
        else:
            options["max_new_tokens"] = min(200, model.backbone.max_sequence_length - 16)
        # The run's preprocessor: served text is truncated as the run trained and evaluated.
        preprocessor = run_preprocessor(run_dir, model)
        result = export(model, preprocessor, saved_models_dir, name=name, **options)
        exports[name] = {
            "path": os.path.abspath(result.path),
            "base": os.path.abspath(result.base),
            "version": result.version,
            "signatures": list(result.signatures),
            "kind": kind,
            "variables_bytes": result.variables_bytes,
        }
    write_json_atomic(os.path.join(folder, "exports.json"), exports)
    return {"outputs": [e["path"] for e in exports.values()], "exports": exports}


# Runs in a fresh interpreter that imports TensorFlow only: what a server has.
SERVE_SCRIPT = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

def jsonable(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    value = np.asarray(value)
    if value.dtype == object:
        if value.ndim:
            return [jsonable(v) for v in value]
        return value.item().decode("utf-8", "replace")
    return value.tolist()

jobs = json.load(open(sys.argv[1]))
answers = {}
for job in jobs:
    start = time.perf_counter()
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(job["path"], "saved_model.pb"), "rb").read())
    definition = proto.meta_graphs[0].signature_def[job["signature"]]
    loaded = tf.saved_model.load(job["path"])
    feeds = {k: tf.make_ndarray(v) for k, v in definition.defaults.items()}
    for k, v in job["inputs"].items():
        if isinstance(v[0], str):
            feeds[k] = np.array(v, dtype=object)
        else:  # a scalar setting, in the dtype its default has
            feeds[k] = np.array(v[0], dtype=feeds[k].dtype)
    outputs = loaded.signatures[job["signature"]](**{k: tf.constant(v) for k, v in feeds.items()})
    answers[job["name"]] = {
        "signature": job["signature"], "inputs": job["inputs"],
        "outputs": {k: jsonable(v.numpy()) for k, v in outputs.items() if k in job["keep"]},
        "seconds": time.perf_counter() - start,
    }
    seconds = answers[job["name"]]["seconds"]
    print(f"[serve] {job['name']}: loaded and answered in {seconds:.1f} s", flush=True)
print("ANSWERS " + json.dumps(answers, sort_keys=True))
ours = ("keras_transformer", "keras_hub", "tensorflow_text")
loaded_modules = [m for m in ours if m in sys.modules]
print("MODULES " + json.dumps(sorted(loaded_modules)))
"""


def query_exports(folder, exports):
    """Loads each export in a fresh process (TensorFlow only) and asks it sample requests."""
    jobs = []
    for name, info in exports.items():
        if info["kind"] == "classifier":
            job = ("serving_default", {"text": SAMPLE_REVIEWS}, ["label", "probabilities"])
        elif info["kind"] == "encoder":
            job = ("embed", {"text": SAMPLE_REVIEWS[:2]}, ["sentence_embedding"])
        elif info["kind"] == "seq2seq":
            job = ("generate", {"sources": G2P_WORDS, "num_beams": [4]}, ["generated_text"])
        else:
            job = (
                "generate",
                {"prompts": [GPT_PROMPT], "temperature": [0.8], "top_k": [20], "seed": [0]},
                ["generated_text"],
            )
        jobs.append(
            {"name": name, "path": info["path"], "signature": job[0], "inputs": job[1],
             "keep": job[2]}
        )  # fmt: skip
    jobs_path = os.path.join(folder, "requests.json")
    write_json_atomic(jobs_path, jobs)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, jobs_path],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    lines = process.stdout.splitlines()
    for line in lines:
        if line.startswith("[serve]"):
            print(line, flush=True)
    if process.returncode != 0:
        raise RuntimeError(f"The fresh serving process failed:\n{process.stderr[-3000:]}")
    answers = json.loads(next(x for x in lines if x.startswith("ANSWERS "))[8:])
    modules = json.loads(next(x for x in lines if x.startswith("MODULES "))[8:])
    for answer in answers.values():  # the encoder: shapes and a similarity, not numbers
        if "sentence_embedding" in answer["outputs"]:
            vectors = np.array(answer["outputs"].pop("sentence_embedding"), "float32")
            answer["outputs"]["sentence_embedding_shape"] = list(vectors.shape)
            norms = np.linalg.norm(vectors, axis=1)
            answer["outputs"]["cosine_0_1"] = float(vectors[0] @ vectors[1] / norms.prod())
    path = os.path.join(folder, "answers.json")
    write_json_atomic(path, {"answers": answers, "imported_modules": modules})
    return {"outputs": [path], "answers": answers, "imported_modules": modules}


# === The pipeline ===


def stage_names(config):
    """The names of the stages this config runs, in order."""
    profile = PROFILES[config.profile]
    names = list(profile["estimates"])
    if not config.minilm:
        names = [n for n in names if not n.startswith("minilm")]
    if not profile["epochs"].get("minilm_finetune"):
        names = [n for n in names if n != "minilm_finetune"]
    return names


def run(config):
    """Runs the main job; returns a `Result`."""
    if config.profile not in PROFILES:
        raise ValueError(f"`profile` must be one of {list(PROFILES)}. Received: {config.profile!r}")
    cluster = resolve_cluster()
    if cluster.is_multi_worker:
        raise ValueError(
            f"The main job runs in one process, but {cluster.source} describes "
            f"{cluster.num_workers} workers. Unset it, or run the training workflows "
            "(pretrain, transfer, finetune, distill) on the cluster one by one."
        )
    start = time.monotonic()
    run_dir = check_writable(config.output_dir or os.path.join("runs", "main"), "--output-dir")
    saved_models_dir = check_writable(config.saved_models_dir, "--saved-models-dir")
    save_config(config, run_dir)
    profile, names = PROFILES[config.profile], stage_names(config)
    runner = StageRunner(
        run_dir, force=config.force, estimates={n: profile["estimates"][n] for n in names}
    )
    print(
        f"[main] profile {config.profile!r}: {len(names)} stages, about "
        f"{sum(runner.estimates.values()) / 60:.0f} min; outputs in {run_dir}",
        flush=True,
    )
    VERBOSE["verbose"], seed = config.verbose, config.seed
    estimates = profile["estimates"]

    def stage(name, fn, settings, depends=(), always=False):
        return runner.run(
            Stage(name, fn, settings, estimates.get(name, 10.0), tuple(depends), always)
        )

    data = stage("data", lambda f: prepare_data(f, profile["data"], seed), profile["data"])
    vocab = stage(
        "vocabulary",
        lambda f: train_vocabulary(f, data["corpus"], profile["vocabulary_size"]),
        {"vocabulary_size": profile["vocabulary_size"]},
        ["data"],
    )
    common_lm = {**LANGUAGE_MODEL_TRAINING, "seed": seed}
    bert_settings = {**profile["bert"], **common_lm, "objective": "masked",
                     "tokens": "wordpiece", "learning_rate": 1e-3}  # fmt: skip
    bert = stage(
        "pretrain_bert",
        lambda f: run_workflow(
            pretrain, f, corpus=data["corpus"], vocabulary=vocab["vocabulary"], **bert_settings
        ),
        bert_settings,
        ["data", "vocabulary"],
    )
    gpt_settings = {**profile["gpt"], **GPT_TRAINING, **GPT_TOKENS, "seed": seed,
                    "objective": "causal", "prompt": GPT_PROMPT, "num_samples": 2}  # fmt: skip
    gpt = stage(
        "pretrain_gpt",
        lambda f: run_workflow(pretrain, f, corpus=data["shakespeare"], **gpt_settings),
        gpt_settings,
        ["data"],
    )
    epochs = profile["epochs"]
    classifier = {**profile["classifier"], "seed": seed}
    ours = {**classifier, "dataset": data["sentiment_csv"], "init_from": bert["run_dir"]}
    rows = {}
    for name, module, rate, base, deps in (
        ("scratch", scratch, 1e-3, bert["run_dir"], ["pretrain_bert"]),
        ("transfer", transfer, 3e-3, bert["run_dir"], ["pretrain_bert"]),
        ("finetune", finetune, 1e-4, os.path.join(run_dir, "transfer"), ["transfer"]),
    ):
        settings = {**ours, "init_from": base, "epochs": epochs[name], "learning_rate": rate}
        rows[name] = stage(
            name, lambda f, m=module, s=settings: run_workflow(m, f, **s), settings, deps
        )
    if config.minilm:
        mini = {**classifier, "dataset": data["minilm_csv"], "init_from": "minilm"}
        settings = {**mini, "epochs": epochs["minilm_transfer"], "learning_rate": 3e-3}
        rows["minilm_transfer"] = stage(
            "minilm_transfer", lambda f: run_workflow(transfer, f, **settings), settings, ["data"]
        )
        if epochs.get("minilm_finetune"):
            ft = {**mini, "init_from": rows["minilm_transfer"]["run_dir"],
                  "epochs": epochs["minilm_finetune"], "learning_rate": 3e-5}  # fmt: skip
            rows["minilm_finetune"] = stage(
                "minilm_finetune", lambda f: run_workflow(finetune, f, **ft), ft,
                ["minilm_transfer"],
            )  # fmt: skip
    candidates = [n for n in ("finetune", "minilm_finetune") if n in rows]
    best = max(candidates, key=lambda n: rows[n]["metrics"].get("validation_accuracy", 0.0))
    teacher_csv = data["minilm_csv"] if best.startswith("minilm") else data["sentiment_csv"]
    distill_settings = {**classifier, "dataset": teacher_csv, "init_from": rows[best]["run_dir"],
                        "epochs": epochs["distill"], "learning_rate": 1e-4}  # fmt: skip
    rows["distill"] = stage(
        "distill",
        lambda f: run_workflow(distill, f, **distill_settings),
        {**distill_settings, "teacher": best},
        [best],
    )
    g2p_settings = {**G2P_TRAINING, **profile["seq2seq"], "seed": seed}
    g2p = stage("seq2seq", lambda f: run_workflow(seq2seq, f, **g2p_settings), g2p_settings)
    sources = {
        "sentiment": (rows[best]["run_dir"], "classifier"),
        "sentiment_student": (rows["distill"]["run_dir"], "classifier"),
        "encoder": (bert["run_dir"], "encoder"),
        "shakespeare_gpt": (gpt["run_dir"], "generate"),
        "g2p": (g2p["run_dir"], "seq2seq"),
    }
    exported = stage(
        "export",
        lambda f: export_models(f, saved_models_dir, sources),
        {"saved_models_dir": os.path.abspath(saved_models_dir), "teacher": best},
        ["pretrain_gpt", "pretrain_bert", "distill", best, "seq2seq"],
    )
    served = stage("serve", lambda f: query_exports(f, exported["exports"]), {}, ["export"])
    context = report.Context(
        run_dir=run_dir,
        profile=config.profile,
        data=data,
        bert=bert,
        gpt=gpt,
        seq2seq=g2p,
        rows=rows,
        teacher=best,
        exports=exported["exports"],
        answers=served["answers"],
        imported_modules=served["imported_modules"],
        stage_seconds={n: runner.summaries[n].get("seconds", 0.0) for n in runner.summaries},
        attention=(
            config.attention_model,
            config.attention_layer,
            config.attention_head,
            config.attention_sentence,
        ),
        cross_attention=(
            config.cross_attention_layer,
            config.cross_attention_head,
            config.cross_attention_word,
        ),
    )
    written = stage(
        "report", lambda f: report.write_report(f, context), {"profile": config.profile},
        always=True,
    )  # fmt: skip
    seconds = time.monotonic() - start
    print(f"[main] done in {seconds / 60:.1f} min. Report: {written['report']}", flush=True)
    metrics = {name: row["metrics"] for name, row in rows.items()}
    metrics["seq2seq"] = g2p["metrics"]
    return Result(
        run_dir=run_dir,
        report_path=written["report"],
        html_path=written["html"],
        exports=exported["exports"],
        answers=served["answers"],
        metrics=metrics,
        seconds=seconds,
    )
