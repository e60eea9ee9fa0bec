"""`python -m workflows seq2seq` on tiny models and slices of each dataset.

What the workflow promises: the loss goes down; metrics.json is what its predictions.tsv
scores (recomputed here with independent code: a brute-force edit distance, sacrebleu
called directly); the predictions are what the saved model.keras and preprocessor.json
generate; a run killed mid-training and started again ends as an uninterrupted one (slow);
2 worker processes end as one process (slow); a bad TSV stops the command with exit code 2
and a message naming the file and line.
"""

import dataclasses
import io
import json
import pathlib
import sys

import keras
import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from keras_transformer import data as kt_data
from keras_transformer.preprocessing import load_preprocessor
from workflows import seq2seq, seq2seq_data, seq2seq_eval
from workflows import training as workflow_training
from workflows.__main__ import main


def tiny(dataset, output_dir, **kwargs):
    settings = {
        "dataset": dataset,
        "num_layers": 1,
        "hidden_dim": 32,
        "num_heads": 2,
        "intermediate_dim": 64,
        "batch_size": 16,
        "steps": 16,
        "eval_interval": 8,
        "eval_batches": 2,
        "warmup_steps": 4,
        "learning_rate": 3e-3,
        "train_examples": 400,
        "test_examples": 12,
        "num_beams": 3,
        "output_dir": str(output_dir),
        "verbose": 0,
        **kwargs,
    }
    return seq2seq.Config(**settings)


def levenshtein(a, b):
    """Brute-force token edit distance (full table, no shortcuts)."""
    table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(
                table[i - 1][j] + 1,
                table[i][j - 1] + 1,
                table[i - 1][j - 1] + (a[i - 1] != b[j - 1]),
            )
    return table[-1][-1]


def by_hand(predictions, references):
    """Exact match, WER and PER of space-separated predictions, computed independently."""
    right, errors, length = 0, 0, 0
    for prediction, listed in zip(predictions, references, strict=True):
        tokens = prediction.split()
        right += any(tokens == r.split() for r in listed)
        distances = [levenshtein(tokens, r.split()) for r in listed]
        best = int(np.argmin(distances))  # the first of the closest
        errors += distances[best]
        length += len(listed[best].split())
    return right / len(predictions), 1 - right / len(predictions), errors / length


def greedy_from_saved_run(run_dir, sources):
    """Greedy text from the run's saved model.keras and preprocessor.json, decoded here."""
    model = keras.saving.load_model(run_dir / "model.keras")
    preprocessor = load_preprocessor(run_dir / "preprocessor.json")
    inputs = preprocessor.generate_preprocess(tf.constant(sources))
    out = model.generate(
        {k: v.numpy() for k, v in inputs.items()},
        start_token=preprocessor.start_token_id,
        max_new_tokens=preprocessor.decoder_sequence_length,
        end_token=preprocessor.end_token_id,
    )
    vocabulary = preprocessor.target_vocabulary.vocabulary
    texts = []
    for ids, mask in zip(out["token_ids"][:, 1:], out["padding_mask"][:, 1:], strict=True):
        kept = [
            int(i)
            for i, m in zip(ids, mask, strict=True)
            if m and not (len(vocabulary[i]) > 1 and vocabulary[i].startswith("["))
        ]
        texts.append(preprocessor.detokenize(tf.constant(kept, tf.int32)).numpy().decode())
    return texts


def test_date_to_iso_run_lowers_the_loss_and_scores_its_predictions(tmp_path):
    result = seq2seq.run(tiny("date_to_iso", tmp_path / "dates"))
    history = json.loads((tmp_path / "dates" / "history.json").read_text())
    assert result.steps == 16 and len(history["loss"]) == 2
    assert history["loss"][-1] < history["loss"][0] - 0.5
    sources, greedy, beam, references = seq2seq_eval.read_predictions(
        tmp_path / "dates" / "predictions.tsv"
    )
    iso = dict(kt_data.date_pairs("test"))
    assert len(sources) == 12 and references == [(iso[s],) for s in sources]
    metrics = json.loads((tmp_path / "dates" / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["greedy_exact_match"] == by_hand(greedy, references)[0]
    assert metrics["beam3_exact_match"] == by_hand(beam, references)[0]
    for name in ("config.json", "tokenizer.json", "train_loss.json", "tensorboard"):
        assert (tmp_path / "dates" / name).exists(), name


def test_cmudict_run_scores_wer_and_per_against_every_listed_pronunciation(tmp_path):
    config = tiny("cmudict", tmp_path / "g2p", train_examples=300)
    result = seq2seq.run(config)
    assert (config.tokens, config.target_tokens, config.vocabulary) == ("auto",) * 3
    saved = json.loads((tmp_path / "g2p" / "config.json").read_text())
    assert (saved["tokens"], saved["target_tokens"], saved["vocabulary"]) == (
        "char",
        "wordpiece",
        "separate",
    )
    history = json.loads((tmp_path / "g2p" / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    words, greedy, beam, references = seq2seq_eval.read_predictions(
        tmp_path / "g2p" / "predictions.tsv"
    )
    test = kt_data.load_cmudict("test")
    listed = dict(zip(test.words, test.pronunciations, strict=True))
    assert [listed[w] for w in words] == references  # every pronunciation is a reference
    for name, predictions in (("greedy", greedy), ("beam3", beam)):
        exact, wer, per = by_hand(predictions, references)
        assert result.metrics[f"{name}_exact_match"] == pytest.approx(exact)
        assert result.metrics[f"{name}_wer"] == pytest.approx(wer)
        assert result.metrics[f"{name}_per"] == pytest.approx(per)
    assert result.metrics["greedy_per"] > 0
    # Predictions are phoneme strings: only target tokens, never a source letter or special.
    phonemes = {p for prons in test.pronunciations for pron in prons for p in pron.split()}
    assert set(" ".join(greedy + beam).split()) <= phonemes | {"[UNK]"}


def test_g2p_metrics_count_a_word_right_if_it_equals_any_pronunciation():
    references = [("HH AH0 L OW1", "HH EH0 L OW1"), ("B AW1 T",), ("K AE1 T",)]
    predictions = ["HH EH0 L OW1", "B AW1", "K AE1 T S"]
    metrics = seq2seq_eval.score(predictions, references, "cmudict")
    assert metrics == {
        "exact_match": pytest.approx(1 / 3),
        "wer": pytest.approx(2 / 3),
        "per": pytest.approx((0 + 1 + 1) / (4 + 3 + 3)),
        "wer_stressless": pytest.approx(2 / 3),
        "per_stressless": pytest.approx((0 + 1 + 1) / (4 + 3 + 3)),
    }


def test_g2p_stressless_metrics_forgive_stress_and_nothing_else():
    # Word 1: right but for its stress. Word 2: wrong in a phoneme, and in a stress that no
    # longer counts. Word 3: two references that become one without stress.
    references = [("HH AH0 L OW1",), ("B AW1 T",), ("R EH1 K ER0 D", "R IH0 K AO1 R D")]
    predictions = ["HH AH1 L OW0", "B AY2 T", "R EH0 K ER1 D"]
    metrics = seq2seq_eval.score(predictions, references, "cmudict")
    assert metrics["wer"] == pytest.approx(1.0)
    assert metrics["per"] == pytest.approx((2 + 1 + 2) / (4 + 3 + 5))
    assert metrics["wer_stressless"] == pytest.approx(1 / 3)
    assert metrics["per_stressless"] == pytest.approx((0 + 1 + 0) / (4 + 3 + 5))


PAIRS = [
    ("one two", "un deux"),
    ("two three", "deux trois"),
    ("three four", "trois quatre"),
    ("four five", "quatre cinq"),
    ("five six", "cinq six"),
    ("six seven", "six sept"),
    ("seven eight", "sept huit"),
    ("eight nine", "huit neuf"),
    ("nine ten", "neuf dix"),
    ("ten one", "dix un"),
]


@pytest.fixture(scope="module")
def pairs_tsv(tmp_path_factory):
    rng = np.random.default_rng(0)
    numbers = [s.split()[0] for s, _ in PAIRS]
    french = dict(zip(numbers, [t.split()[0] for _, t in PAIRS], strict=True))
    lines = set()
    while len(lines) < 300:
        words = list(rng.choice(numbers, size=rng.integers(1, 5)))
        lines.add((" ".join(words), " ".join(french[w] for w in words)))
    lines = sorted(lines)
    lines.append((lines[0][0], lines[0][1].upper()))  # a second target for one source
    lines.append(("one " * 30 + "one", "un"))  # longer than the encoder's 24 tokens
    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in lines), encoding="utf-8")
    return path, lines


def tsv_config(path, output_dir, **kwargs):
    # No dropout unless asked: two workers draw other dropout masks than one process.
    settings = {"tokens": "bpe", "vocabulary": "separate", "vocabulary_size": 300}
    settings.update(encoder_sequence_length=24, test_examples=0, dropout=0.0)
    settings.update(kwargs)
    return tiny(str(path), output_dir, **settings)


@pytest.fixture(scope="module")
def tsv_run(pairs_tsv, tmp_path_factory):
    config = tsv_config(pairs_tsv[0], tmp_path_factory.mktemp("runs") / "tsv")
    return config, seq2seq.run(config)


def test_tsv_run_with_bpe_scores_bleu_and_chrf_and_counts_truncation(pairs_tsv, tsv_run):
    path, lines = pairs_tsv
    config, result = tsv_run
    run_dir = pathlib.Path(config.output_dir)
    history = json.loads((run_dir / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    sources, greedy, beam, references = seq2seq_eval.read_predictions(run_dir / "predictions.tsv")
    splits = seq2seq_data.load_splits(str(path))
    assert sources == list(splits["test"].sources)
    targets = {}
    for source, target in lines:
        targets.setdefault(source, []).append(target)
    assert references == [tuple(targets[s]) for s in sources]
    for name, predictions in (("greedy", greedy), ("beam3", beam)):
        streams = [[r[k] if k < len(r) else None for r in references] for k in range(2)]
        bleu = sacrebleu.corpus_bleu(predictions, streams).score
        chrf = sacrebleu.corpus_chrf(predictions, streams).score
        assert result.metrics[f"{name}_bleu"] == pytest.approx(bleu)
        assert result.metrics[f"{name}_chrf"] == pytest.approx(chrf)
        assert result.metrics[f"{name}_exact_match"] == pytest.approx(
            by_hand(predictions, references)[0]
        )
    assert result.metrics["greedy_chrf"] > 0
    tokenizer = load_preprocessor(run_dir / "preprocessor.json").source_tokenizer
    for split, examples in splits.items():
        too_long = sum(len(tokenizer(s).numpy()) > 23 for s in examples.sources)
        assert result.metrics["truncated"][split]["sources"] == too_long
    assert sum(result.metrics["truncated"][s]["sources"] for s in splits) == 1


class CrashAfter(keras.callbacks.Callback):
    """Fails the run once the optimizer has taken `steps` steps (a killed process)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            raise RuntimeError("simulated crash")


@pytest.mark.slow  # 3 runs, about 50 s
def test_a_killed_run_resumed_ends_as_the_uninterrupted_run(pairs_tsv, tmp_path, monkeypatch):
    """With dropout: compared bit for bit, the resumed run must draw the dropout masks the
    uninterrupted one drew, so the checkpoint holds the layers' random-number states."""
    uninterrupted_config = tsv_config(pairs_tsv[0], tmp_path / "uninterrupted", dropout=0.1)
    uninterrupted = seq2seq.run(uninterrupted_config)
    config = tsv_config(pairs_tsv[0], tmp_path / "resumed", dropout=0.1)

    def crashing_fit(*args, callbacks=(), **kwargs):
        return workflow_training.fit(*args, callbacks=[*callbacks, CrashAfter(11)], **kwargs)

    monkeypatch.setattr(seq2seq, "fit", crashing_fit)
    with pytest.raises(RuntimeError, match="simulated crash"):
        seq2seq.run(config)
    assert not (tmp_path / "resumed" / "model.keras").exists()
    monkeypatch.undo()

    resumed = seq2seq.run(config)  # from the checkpoint after step 8
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert resumed.steps == 16 and len(history["loss"]) == 1  # the evaluation left
    ours, theirs = saved_weights(resumed.model_path), saved_weights(uninterrupted.model_path)
    assert sorted(ours) == sorted(theirs) and len(ours) > 10
    for name, value in ours.items():
        np.testing.assert_array_equal(value, theirs[name], err_msg=name)
    runs = [pathlib.Path(c.output_dir) for c in (config, uninterrupted_config)]
    predictions = [(run / "predictions.tsv").read_text() for run in runs]
    assert predictions[0] == predictions[1]
    assert resumed.metrics["greedy_chrf"] == uninterrupted.metrics["greedy_chrf"]
    # The predictions are what the saved model.keras and preprocessor.json generate.
    sources, greedy, _, _ = seq2seq_eval.read_predictions(runs[1] / "predictions.tsv")
    assert greedy == greedy_from_saved_run(runs[1], sources)


def saved_weights(path):
    """Every weight array in a .keras file (its model.weights.h5), by its HDF5 path."""
    import zipfile

    import h5py

    weights = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            weights[name] = item[()]

    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as file:
        file.visititems(keep)
    return weights


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("four\tquatre\nfive cinq\n", "line 2: expected 'source<TAB>target'"),
        ("four\tquatre\n\nfive\t \n", "line 3: the target is empty"),
    ],
)
def test_a_bad_tsv_exits_2_naming_the_file_and_line(line, problem, tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text(line, encoding="utf-8")
    code = main(["seq2seq", "--dataset", str(path), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {path}, {problem}" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # a refused dataset leaves no run folder


@pytest.mark.slow  # 2 worker processes, about 80 s
def test_two_workers_end_as_one_process(tsv_run, tmp_path):
    from keras_transformer.training.launcher import launch_workers

    config, one = tsv_run
    settings = dataclasses.asdict(config)
    settings.pop("output_dir")
    command = [sys.executable, "-m", "workflows", "seq2seq", "--output-dir", str(tmp_path / "two")]
    for key, value in settings.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            command.append(flag if value else f"--no-{flag[2:]}")
        elif value is not None:
            command += [flag, str(value)]
    result = launch_workers(
        command,
        num_workers=2,
        timeout=300,
        cwd=str(pathlib.Path(__file__).parents[2]),
        log_dir=str(tmp_path / "logs"),
    )
    assert result.ok, result.summary + "\n" + result.log(0)[-3000:] + result.log(1)[-3000:]
    assert "worker 1 of 2 (cluster from TF_CONFIG)" in result.log(1)
    ours, theirs = saved_weights(tmp_path / "two" / "model.keras"), saved_weights(one.model_path)
    scale = max(float(np.abs(w).max()) for w in theirs.values())
    difference = max(float(np.abs(ours[k] - theirs[k]).max()) for k in theirs) / scale
    assert difference < 1e-4, difference
    assert (tmp_path / "two" / "predictions.tsv").read_text() == (
        pathlib.Path(config.output_dir) / "predictions.tsv"
    ).read_text()
    left = sorted(
        p.name for p in (tmp_path / "two").iterdir() if p.name[0] == "." or p.name == "backup"
    )
    assert left == []
