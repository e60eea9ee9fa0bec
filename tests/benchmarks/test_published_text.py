"""The text the measuring commands publish: quality table, pipeline lines, serving examples."""

import types

from benchmarks import pipeline_overhead, quality, serving_examples


def test_quality_table_rows_student_line_and_reused_steps():
    rows = {
        "from scratch": {
            "test_accuracy": 0.77531, "parameters": 5197570, "examples_per_second": 394.2
        },
        "MiniLM as-is (centroids)": {"test_accuracy": 0.7306},
        "distilled student (ours)": {
            "test_accuracy": 0.7654, "parameters": 3618050, "examples_per_second": 832.0,
            "student_layers": 2, "accuracy_kept": 1.0171, "teacher_test_accuracy": 0.7525,
            "speedup": 2.104,
        },
    }  # fmt: skip
    text = quality.quality_table(
        rows, "python -m benchmarks.quality", "started 2026-12-01", reused=["pretrain"]
    )
    lines = text.splitlines()
    assert (
        lines[0]
        == "`python -m benchmarks.quality`, started 2026-12-01. movie_sentiment test accuracy:"
    )
    assert "| from scratch | 0.7753 | 5,197,570 | 394 |" in lines
    assert "| MiniLM as-is (centroids) | 0.7306 | - | - |" in lines
    assert (
        "Student vs teacher: 2 blocks, accuracy kept 1.017 (teacher 0.7525), speed-up 2.10x."
        in lines
    )
    assert (
        lines[-1] == "Reused from an earlier run in the same folder (its metrics.json): pretrain."
    )
    assert "Reused" not in quality.quality_table(rows, "c", "w")


def test_pipeline_result_text_gives_both_ratios():
    args = types.SimpleNamespace(
        size="mini", batch_size=32, sequence_length=128, rounds=4, batches=30
    )
    result = {"pipeline": {"step": 0.200, "cpu": 0.400}, "memory": {"step": 0.190, "cpu": 0.380}}
    text = pipeline_overhead.result_text(args, result, "python -m x", "AMD EPYC", ("0.1", "0.9"))
    assert "| real pipeline (tokenize + pack + mask in tf.data) | 200.0 ms | 400.0 ms |" in text
    assert "| the same pipeline's batches, cached in memory | 190.0 ms | 380.0 ms |" in text
    assert "Ratio in-memory / pipeline: 0.950 from the median step, 0.950 from CPU time" in text
    assert "load average (1, 5, 15 min) 0.1 at the start, 0.9 at the end" in text


def test_round_floats_rounds_only_floats():
    value = {"a": [0.123456, 2, "x"], "b": {"c": -0.00004}}
    assert serving_examples.round_floats(value) == {"a": [0.1235, 2, "x"], "b": {"c": -0.0}}


def test_shorten_cuts_long_lists_and_names_nested_shapes():
    response = {
        "predictions": [
            {"sentence_embedding": [0.1] * 384, "token_embeddings": [[0.0] * 384] * 4,
             "padding_mask": [1, 1, 1, 1]}
        ]
    }  # fmt: skip
    row = serving_examples.shorten(response)["predictions"][0]
    assert row["sentence_embedding"] == [0.1, 0.1, 0.1, 0.1, "..."]
    assert row["token_embeddings"] == ["... 4 x 384 values ..."]
    assert row["padding_mask"] == [1, 1, 1, 1]
