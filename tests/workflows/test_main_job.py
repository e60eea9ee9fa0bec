"""The main job: the stage runner's promises (fast), bad input (fast), and the `--quick`
profile end to end (slow: every stage's outputs, exports answering in a fresh process, a
rerun that skips everything)."""

import errno
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from workflows import main_job
from workflows.stages import MARKER, Stage, StageError, StageRunner


def writer(calls, name="out.txt"):
    def run(folder):
        calls.append(folder)
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as file:
            file.write("x")
        return {"outputs": [path]}

    return run


def read(path):
    with open(path, encoding="utf-8") as file:
        return file.read()


# === The stage runner ===


def test_stage_skips_when_done_and_reruns_when_settings_change(tmp_path, capsys):
    calls = []
    for _ in range(2):
        StageRunner(str(tmp_path)).run(Stage("a", writer(calls), {"n": 1}))
    assert len(calls) == 1
    assert "done before, skipped" in capsys.readouterr().out
    StageRunner(str(tmp_path)).run(Stage("a", writer(calls), {"n": 2}))
    assert len(calls) == 2
    StageRunner(str(tmp_path), force=True).run(Stage("a", writer(calls), {"n": 2}))
    assert len(calls) == 3


def test_upstream_change_reruns_dependents(tmp_path):
    calls = {"a": [], "b": []}

    def pipeline(setting):
        runner = StageRunner(str(tmp_path))
        runner.run(Stage("a", writer(calls["a"]), {"n": setting}))
        runner.run(Stage("b", writer(calls["b"]), {}, depends=("a",)))

    pipeline(1)
    pipeline(1)
    assert (len(calls["a"]), len(calls["b"])) == (1, 1)
    pipeline(2)
    assert (len(calls["a"]), len(calls["b"])) == (2, 2)


def test_missing_output_reruns_the_stage(tmp_path):
    calls = []
    StageRunner(str(tmp_path)).run(Stage("a", writer(calls), {}))
    os.remove(tmp_path / "a" / "out.txt")
    StageRunner(str(tmp_path)).run(Stage("a", writer(calls), {}))
    assert len(calls) == 2


def test_interrupted_stage_leaves_no_marker_and_keeps_its_partial_work(tmp_path):
    def interrupted(folder):
        with open(os.path.join(folder, "partial.txt"), "w", encoding="utf-8") as file:
            file.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StageRunner(str(tmp_path)).run(Stage("a", interrupted, {"n": 1}))
    assert not (tmp_path / "a" / MARKER).exists()
    seen = []

    def resumed(folder):
        seen.append(os.path.exists(os.path.join(folder, "partial.txt")))
        return {}

    StageRunner(str(tmp_path)).run(Stage("a", resumed, {"n": 1}))  # same settings: kept
    StageRunner(str(tmp_path), force=True).run(Stage("a", resumed, {"n": 1}))  # cleared
    assert seen == [True, False]
    assert (tmp_path / "a" / MARKER).exists()


def test_full_disk_gives_a_clear_resumable_error(tmp_path):
    def full(folder):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(folder, "x"))

    runner = StageRunner(str(tmp_path))
    with pytest.raises(StageError, match="No space left on device.*run the same command again"):
        runner.run(Stage("a", full, {}))
    assert not (tmp_path / "a" / MARKER).exists()
    calls = []
    StageRunner(str(tmp_path)).run(Stage("a", writer(calls), {}))  # room again: it resumes
    assert len(calls) == 1


def test_progress_lines_show_elapsed_and_remaining(tmp_path, capsys):
    runner = StageRunner(str(tmp_path), estimates={"a": 5.0, "b": 7.0})
    runner.run(Stage("a", lambda folder: {}, {}, estimate=5.0))
    out = capsys.readouterr().out
    assert "[main] 1/2 a ... (elapsed 0:00, ~0:12 left)" in out
    assert "[main] 1/2 a done in" in out


def test_a_silent_stage_prints_still_running_lines(tmp_path, capsys):
    def silent_then_talking(folder):
        time.sleep(0.7)  # silent: heartbeats
        print("step 1/3", end="", flush=True)  # an unfinished progress-bar line
        time.sleep(0.1)  # not silent for long enough: no heartbeat
        print("\rstep 3/3", flush=True)
        return {}

    runner = StageRunner(str(tmp_path), estimates={"a": 1.0}, quiet_seconds=0.3)
    runner.run(Stage("a", silent_then_talking, {}))
    out = capsys.readouterr().out
    lines = out.split("\n")
    beats = [line for line in lines if "still running" in line]
    assert 1 <= len(beats) <= 3, out
    assert all(line.startswith("[main] 1/1 a still running (0:0") for line in beats), out
    assert lines.index(beats[-1]) < lines.index("step 1/3\rstep 3/3"), out
    assert "still running" not in out.split("step 3/3")[1]


# === Bad input ===


@pytest.mark.parametrize("flag", ["output_dir", "saved_models_dir"])
def test_unwritable_folder_is_a_clear_error_before_anything_runs(tmp_path, flag):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = main_job.Config(
        profile="quick", **{"output_dir": str(tmp_path / "run"), flag: str(blocker / "sub")}
    )
    with pytest.raises(StageError, match=f"--{flag.replace('_', '-')}.*not a writable folder"):
        main_job.run(config)
    assert not (tmp_path / "run" / "data").exists()


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="profile"):
        main_job.run(main_job.Config(profile="huge"))


# === --quick end to end ===

FRESH_CLIENT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    out = {}
    for name, (path, signature, key, texts) in json.loads(sys.argv[1]).items():
        function = tf.saved_model.load(path).signatures[signature]
        inputs = {key: tf.constant(texts)}
        if signature == "generate":
            inputs.update(max_new_tokens=tf.constant(20), temperature=tf.constant(1.0),
                          top_k=tf.constant(5), top_p=tf.constant(1.0), seed=tf.constant(0),
                          num_beams=tf.constant(1), length_penalty=tf.constant(1.0))
        result = function(**inputs)
        out[name] = {k: v.numpy().tolist() if v.dtype != tf.string else
                     [x.decode() for x in v.numpy().ravel()] for k, v in result.items()}
    print(json.dumps({"answers": out, "keras_transformer": "keras_transformer" in sys.modules}))
    """
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("main")
    config = main_job.Config(
        profile="quick",
        output_dir=str(folder / "run"),
        saved_models_dir=str(folder / "saved_models"),
        verbose=0,
    )
    start = time.monotonic()
    result = main_job.run(config)
    return config, result, time.monotonic() - start


@pytest.mark.slow
def test_quick_every_stage_produced_its_outputs(quick_run):
    config, result, _ = quick_run
    for name in main_job.stage_names(config):
        marker = json.loads(read(os.path.join(result.run_dir, name, MARKER)))
        outputs = marker["summary"].get("outputs", [])
        assert outputs or name == "report", name
        for path in outputs:
            assert os.path.exists(path), (name, path)
    for name in ("report.md", "report.html", "figures/attention.png", "figures/student.png",
                 "figures/cross_attention.png"):  # fmt: skip
        assert os.path.getsize(os.path.join(result.run_dir, name)) > 0, name
    text = read(result.report_path)
    for heading in ("## Results", "## Attention", "## Masked-word", "## Generated Shakespeare",
                    "## Student versus teacher", "## Spelling to sound", "### Cross attention",
                    "docker run", "curl -X POST"):  # fmt: skip
        assert heading in text, heading
    # The encoder-decoder's section quotes its own metrics and test words.
    g2p = result.metrics["seq2seq"]
    assert f"| greedy | {g2p['greedy_wer']:.3f} | {g2p['greedy_per']:.3f} |" in text
    assert g2p["test_examples"] == main_job.PROFILES["quick"]["seq2seq"]["test_examples"]
    # Each generative section quotes its own export's answer (both serve `generate`).
    shakespeare = text[text.index("## Generated Shakespeare") : text.index("## Student")]
    served_gpt = result.answers["shakespeare_gpt"]["outputs"]["generated_text"][0]
    assert served_gpt.strip() in shakespeare
    assert "data:image/png;base64," in read(result.html_path)
    assert set(result.exports) == {
        "sentiment", "sentiment_student", "encoder", "shakespeare_gpt", "g2p"
    }  # fmt: skip
    assert set(result.metrics) >= {"scratch", "transfer", "finetune", "distill", "seq2seq"}


@pytest.mark.slow
def test_quick_exports_answer_in_a_fresh_process(quick_run):
    _, result, _ = quick_run
    e = result.exports
    jobs = {
        "sentiment": (e["sentiment"]["path"], "serving_default", "text", ["Loved it.", "Awful."]),
        "student": (e["sentiment_student"]["path"], "serving_default", "text", ["Loved it."]),
        "encoder": (e["encoder"]["path"], "embed", "text", ["Loved it.", "Awful."]),
        "gpt": (e["shakespeare_gpt"]["path"], "generate", "prompts", ["ROMEO:"]),
        "g2p": (e["g2p"]["path"], "generate", "sources", ["keras", ""]),
    }
    process = subprocess.run(
        [sys.executable, "-c", FRESH_CLIENT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert not report["keras_transformer"]
    answers = report["answers"]
    assert set(answers["sentiment"]["label"]) <= {"negative", "positive"}
    assert len(answers["student"]["label"]) == 1
    assert len(answers["encoder"]["sentence_embedding"]) == 2
    assert answers["gpt"]["generated_text"][0].strip()
    assert answers["g2p"]["generated_text"][0].strip()  # phonemes for a word
    assert answers["g2p"]["generated_text"][1] == ""  # an empty source: an empty output
    # The pipeline's own fresh-process queries are in the result (and the report).
    assert set(result.answers) == set(result.exports)


@pytest.mark.slow
def test_quick_rerun_skips_every_finished_stage(quick_run, capsys):
    config, result, first_seconds = quick_run
    capsys.readouterr()
    start = time.monotonic()
    again = main_job.run(config)
    out = capsys.readouterr().out
    skipped = [n for n in main_job.stage_names(config) if f"{n}: done before, skipped" in out]
    assert skipped == [n for n in main_job.stage_names(config) if n != "report"]
    assert again.exports == result.exports  # no new export versions
    assert time.monotonic() - start < first_seconds
