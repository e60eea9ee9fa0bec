"""benchmarks.run_all: the table, the failure rows, the exit status, the written report."""

import pytest

from benchmarks import run_all
from benchmarks.common import markdown_table


def test_markdown_table_pads_and_aligns():
    table = markdown_table(("name", "value"), [("a", "1"), ("long name", "1,000")])
    assert table.splitlines() == [
        "| name      | value |",
        "|-----------|-------|",
        "| a         |     1 |",
        "| long name | 1,000 |",
    ]


def test_markdown_table_rejects_short_rows():
    with pytest.raises(ValueError, match="Every row needs 2 cells"):
        markdown_table(("name", "value"), [("a",)])


def test_par_row_target_and_cells():
    faster = run_all.par_row("x", "12 tok/s", "keras-hub 10 tok/s", 1.2, cpu_ratio=1.25)
    slower = run_all.par_row("y", "8 tok/s", "keras-hub 10 tok/s", 0.8)
    assert faster.met is True and slower.met is False
    assert run_all.table_cells(faster) == (
        "x",
        "12 tok/s",
        "keras-hub 10 tok/s",
        "1.20 (CPU 1.25)",
        "ratio ≥ 1.00",
        "yes",
    )
    assert run_all.table_cells(slower)[3:] == ("0.80", "ratio ≥ 1.00", "no")


def test_row_without_target_says_so():
    row = run_all.Row("peak (tiny)", "0.05", "keras-hub 0.04", 1.25, target="ours ≥ 0.65")
    assert run_all.table_cells(row)[3:] == ("1.25", "ours ≥ 0.65", "—")


def test_error_row_is_one_line_without_pipes():
    row = run_all.error_row("part", ImportError("no module\nnamed | keras_hub"))
    assert row.error == "ImportError: no module named / keras_hub"
    cells = run_all.table_cells(row)
    assert cells[1] == "FAILED: ImportError: no module named / keras_hub"
    assert cells[-1] == "error"
    assert "\n" not in run_all.format_table([row]).splitlines()[2]


def test_run_reports_a_failed_part_and_keeps_going(tmp_path, capsys):
    calls = []

    def good():
        calls.append("good")
        return [run_all.par_row("good row", "2 ex/s", "ref 1 ex/s", 2.0)]

    def broken():
        calls.append("broken")
        raise RuntimeError("keras-hub exploded")

    def after():
        calls.append("after")
        return [run_all.par_row("after row", "1 ex/s", "ref 2 ex/s", 0.5)]

    output = tmp_path / "sub" / "table.md"
    status = run_all.run(
        [("good part", good), ("broken part", broken), ("after part", after)], output
    )
    assert status == 1
    assert calls == ["good", "broken", "after"]
    report = output.read_text()
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[1].strip() == "benchmark"
    assert [line.split("|")[1].strip() for line in lines[1:]] == [
        "good row",
        "broken part",
        "after row",
    ]
    assert "FAILED: RuntimeError: keras-hub exploded" in lines[2]
    assert "Failed: broken part." in report
    assert "load average" in report
    assert list(output.parent.iterdir()) == [output]  # no temporary file left behind
    out = capsys.readouterr().out
    assert "[run_all] broken part: FAILED in" in out
    assert "[run_all] after part: done in" in out
    assert report in out


def test_run_succeeds_when_every_part_does(tmp_path):
    part = ("ok", lambda: [run_all.par_row("ok row", "1", "ref 1", 1.0)])
    assert run_all.run([part], tmp_path / "table.md") == 0
    assert "Failed: none." in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize(
    ("profile", "size", "met"), [("default", "mini", True), ("quick", "tiny", None)]
)
def test_training_rows_judge_the_peak_only_at_mini(monkeypatch, profile, size, met):
    from benchmarks import train_speed

    measured = {
        "model": "BertMaskedLM",
        "dtype": "mixed_bfloat16",
        "ours_tps": 2000.0,
        "hub_tps": 1000.0,
        "ratio": 2.0,
        "cpu_ratio": 1.5,
        "ours_peak": 0.7,
        "hub_peak": 0.35,
    }
    monkeypatch.setattr(train_speed, "measure", lambda args: ([measured], {"mixed_bfloat16": 8e11}))
    speed, peak = run_all.training_rows(run_all.PROFILES[profile])
    assert run_all.table_cells(speed) == (
        f"training tokens/s, BertMaskedLM bf16 ({size})",
        "2,000 tok/s",
        "keras-hub 1,000 tok/s",
        "2.00 (CPU 1.50)",
        "ratio ≥ 1.00",
        "yes",
    )
    assert peak.benchmark == f"fraction of matmul peak, BertMaskedLM bf16 ({size})"
    assert peak.ours == "0.70 of 800 GFLOP/s"
    assert peak.ratio == pytest.approx(2.0)
    assert peak.met is met


def test_default_output_is_timestamped_under_runs():
    args = run_all.parse_args(["--quick"])
    assert args.output.startswith("runs/benchmarks/run_all-") and args.output.endswith(".md")


@pytest.mark.slow
def test_student_part_runs_for_real():
    # A real (small) measurement: a 2-block student against its 4-block "mini" teacher.
    profile = run_all.PROFILES["quick"]
    (row,) = run_all.student_rows(profile)
    assert row.error is None
    assert "2 vs 4 blocks" in row.benchmark
    assert row.ratio > 1.0  # half the blocks: faster, whatever else runs on the machine
