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


def fake_classifier_measure(repeats):
    latency = {
        b: {"longest": {"ours": 0.004 * b, "keras-hub": 0.006 * b}, "128": {"ours": 0.01 * b,
            "keras-hub": 0.008 * b}}
        for b in (1, 32)
    }  # fmt: skip
    widths = {
        b: {"longest": {"ours": 27.0, "keras-hub": 27.0}, "128": {"ours": 128.0,
            "keras-hub": 128.0}}
        for b in (1, 32)
    }  # fmt: skip
    return {"latency": latency, "widths": widths}


def test_classifier_rows_compare_at_equal_padding():
    rows = run_all.classifier_rows(run_all.PROFILES["quick"], measure=fake_classifier_measure)
    assert [run_all.table_cells(row)[:4] for row in rows] == [
        (
            "classifier SavedModel latency, batch 1, both padded to the batch's longest text",
            "4.0 ms (T 27)",
            "keras-hub 6.0 ms (T 27)",
            "1.50",
        ),
        (
            "classifier SavedModel latency, batch 1, both padded to 128",
            "10.0 ms (T 128)",
            "keras-hub 8.0 ms (T 128)",
            "0.80",
        ),
        (
            "classifier SavedModel latency, batch 32, both padded to the batch's longest text",
            "128.0 ms (T 27)",
            "keras-hub 192.0 ms (T 27)",
            "1.50",
        ),
        (
            "classifier SavedModel latency, batch 32, both padded to 128",
            "320.0 ms (T 128)",
            "keras-hub 256.0 ms (T 128)",
            "0.80",
        ),
    ]


def test_generation_rows_pair_each_export_with_its_like(monkeypatch):
    """Plain ours against plain keras-hub, our XLA export against keras-hub under XLA."""
    from benchmarks import serving_latency

    speed = {1: {"ours": 90.0, "ours + XLA": 200.0, "keras-hub": 80.0, "keras-hub + XLA": 250.0}}
    monkeypatch.setattr(serving_latency, "benchmark_generation", lambda repeats, with_xla: speed)
    rows = run_all.generation_rows(run_all.PROFILES["quick"], with_xla=True)
    assert [run_all.table_cells(row)[:4] for row in rows] == [
        ("generation tokens/s, batch 1, ours vs keras-hub", "ours 90 tok/s",
         "keras-hub 80 tok/s", "1.12"),
        ("generation tokens/s, batch 1, ours + XLA vs keras-hub + XLA", "ours + XLA 200 tok/s",
         "keras-hub + XLA 250 tok/s", "0.80"),
    ]  # fmt: skip


MARKED = (
    "# Page\n\nHand-written.\n\n<!-- run_all:begin -->\nold table\n<!-- run_all:end -->\n\nEnd.\n"
)


def pages(tmp_path):
    docs, readme = tmp_path / "BENCHMARKS.md", tmp_path / "README.md"
    docs.write_text(MARKED)
    readme.write_text(MARKED)
    return run_all.Publication(docs=str(docs), readme=str(readme)), docs, readme


def test_run_publishes_the_table_into_both_pages(tmp_path):
    from benchmarks.publish import block_content

    publication, docs, readme = pages(tmp_path)
    part = ("ok", lambda: [run_all.par_row("ok row", "2 ex/s", "ref 1 ex/s", 2.0),
                           run_all.par_row("slow row", "1 ex/s", "ref 2 ex/s", 0.5)])  # fmt: skip
    status = run_all.run(
        [part], tmp_path / "report.md", publication=publication, command="python -m x"
    )
    assert status == 0
    for page in (docs, readme):
        text = page.read_text()
        assert text.startswith("# Page\n\nHand-written.\n\n") and text.endswith("\n\nEnd.\n")
        content = block_content(text, "run_all")
        assert "old table" not in content
        assert content.splitlines()[0] == (
            "<!-- written by `python -m x`: rerun it rather than edit here -->"
        )
        assert "`python -m x`, started " in content and "load average" in content
        assert "| ok row " in content and "| slow row " in content
        assert "Not met: slow row." in content
    assert "Seconds per part: ok " in block_content(docs.read_text(), "run_all")
    assert f"[`{docs}`]({docs})" in block_content(readme.read_text(), "run_all")


def test_a_run_with_a_failed_part_publishes_nothing(tmp_path, capsys):
    publication, docs, readme = pages(tmp_path)

    def broken():
        raise RuntimeError("boom")

    assert run_all.run([("broken", broken)], tmp_path / "r.md", publication=publication) == 1
    assert docs.read_text() == MARKED and readme.read_text() == MARKED
    assert "Not published: a part failed" in capsys.readouterr().out


def test_main_refuses_a_page_without_markers_before_measuring(tmp_path, monkeypatch, capsys):
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text("no markers\n")
    monkeypatch.setattr(run_all, "parts", lambda *a, **k: pytest.fail("measured anyway"))
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(["--docs", str(docs), "--readme", str(tmp_path / "README.md")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "has no block 'run_all'" in error
    assert docs.read_text() == "no markers\n"


def test_a_quick_run_publishes_only_when_asked():
    assert run_all.publishing(run_all.parse_args(["--quick"])) is False
    assert run_all.publishing(run_all.parse_args(["--quick", "--publish"])) is True
    assert run_all.publishing(run_all.parse_args([])) is True
