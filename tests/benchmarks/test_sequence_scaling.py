"""benchmarks.sequence_scaling: one real measurement in its own process, the table, bad input."""

import pytest

from benchmarks import sequence_scaling as scaling

TINY = {"dtype": "float32", "size": "tiny", "vocabulary_size": 100, "chunk_size": 16,
        "steps": 1, "warmup": 1, "model": "gpt", "length": 64, "batch": 2}  # fmt: skip


def test_a_chunked_model_trains_in_its_own_process_and_reports_its_memory():
    result = scaling.measure({**TINY, "side": "ours, chunked"})
    assert "error" not in result, result
    assert result["ms"] > 0
    assert result["peak_mib"] >= result["built_mib"] > 100  # TensorFlow alone is more


def test_a_process_that_fails_is_reported_not_raised():
    result = scaling.measure({**TINY, "side": "ours", "size": "no such size"})
    assert result["error"].startswith("failed: ") and "no such size" in result["error"]


def test_the_table_has_a_row_per_length_and_marks_what_did_not_fit():
    def entry(ms, mib):
        return {"ms": ms, "step_mib": mib}

    rows = [
        {"model": "BertMaskedLM", "length": 128, "batch": 32, "ours": entry(100, 500),
         "ours, chunked": entry(110, 450), "keras-hub": entry(120, 600)},
        {"model": "BertMaskedLM", "length": 1024, "batch": 4, "ours": {"error": "oom"},
         "ours, chunked": entry(200, 700), "keras-hub": entry(300, 2000)},
    ]  # fmt: skip
    args = scaling.parse_args(["--models", "bert"])
    text = scaling.report(rows, [], args, "0.1 0.1 0.1")
    table = [
        [cell.strip() for cell in line.strip(" |").split("|")]
        for line in text.splitlines()
        if line.startswith("| BertMaskedLM")
    ]
    assert table == [
        ["BertMaskedLM", "128", "32", "100", "110", "120", "500", "450", "600", "1.20", "1.09"],
        ["BertMaskedLM", "1024", "4", "error", "200", "300", "error", "700", "2,000", "-", "1.50"],
    ]


@pytest.mark.parametrize(
    "argv", [["--lengths", "128,x"], ["--lengths", "100"], ["--models", "t5"], ["--steps", "0"]]
)
def test_bad_arguments_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        scaling.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
