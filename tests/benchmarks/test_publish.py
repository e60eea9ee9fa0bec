"""benchmarks.publish: marked blocks replaced atomically, refused without markers; main job."""

import os

import pytest

from benchmarks import publish

PAGE = """# Title

Hand-written text.

<!-- figures:begin -->
old figures
<!-- figures:end -->

More hand-written text.
"""


def test_replace_block_changes_only_the_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    publish.replace_block(page, "figures", "| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert page.read_text() == PAGE.replace(
        "old figures\n", "\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    )
    assert list(tmp_path.iterdir()) == [page]  # no temporary file left behind


def test_replacing_twice_gives_the_same_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    publish.replace_block(page, "figures", "new")
    once = page.read_text()
    publish.replace_block(page, "figures", "new")
    assert page.read_text() == once
    assert publish.block_content(once, "figures") == "new"


def test_source_comment_names_the_command(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    publish.replace_block(page, "figures", "x", source="python -m benchmarks.run_all")
    content = publish.block_content(page.read_text(), "figures")
    assert content.splitlines() == [
        "<!-- written by `python -m benchmarks.run_all`: rerun it rather than edit here -->",
        "x",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no markers at all\n", "no block 'figures'.*begin -->` and `<!-- figures:end -->` are"),
        ("<!-- figures:begin -->\nx\n", "no block 'figures'.*`<!-- figures:end -->` is missing"),
        (
            "<!-- figures:end -->\n<!-- figures:begin -->\n",
            "figures:end -->` comes before",
        ),
        (
            "<!-- figures:begin -->\n<!-- figures:end -->\n<!-- figures:begin -->\n",
            "more than once",
        ),
    ],
)
def test_bad_markers_are_refused_and_the_page_is_unchanged(tmp_path, text, message):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(publish.PublishError, match=message):
        publish.replace_block(page, "figures", "new")
    assert page.read_text() == text
    with pytest.raises(publish.PublishError, match=message):
        publish.check_blocks([(page, "figures")])


def test_a_missing_page_is_refused(tmp_path):
    with pytest.raises(publish.PublishError, match="does not exist"):
        publish.check_blocks([(tmp_path / "nope.md", "figures")])


def test_block_names_are_checked():
    with pytest.raises(ValueError, match="block name"):
        publish.markers("Run All")


def test_a_failed_write_leaves_the_page_and_no_temporary(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(PAGE)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        publish.replace_block(page, "figures", "new")
    assert page.read_text() == PAGE
    assert list(tmp_path.iterdir()) == [page]


def test_publishing_follows_the_flags():
    parser = __import__("argparse").ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    publish.add_arguments(parser, readme="README.md")
    assert publish.publishing(parser.parse_args([])) is True
    assert publish.publishing(parser.parse_args(["--quick"])) is False
    assert publish.publishing(parser.parse_args(["--quick", "--publish"])) is True
    assert publish.publishing(parser.parse_args(["--no-publish"])) is False
    args = parser.parse_args([])
    assert (args.docs, args.readme) == ("docs/BENCHMARKS.md", "README.md")


def test_print_and_publish_prints_always_and_writes_only_when_publishing(tmp_path, capsys):
    parser = __import__("argparse").ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    publish.add_arguments(parser)
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    quick = parser.parse_args(["--quick", "--docs", str(page)])
    publish.print_and_publish(quick, "figures", "quick figures", source="benchmarks.demo")
    assert page.read_text() == PAGE and capsys.readouterr().out == "quick figures\n"
    full = parser.parse_args(["--docs", str(page)])
    publish.print_and_publish(full, "figures", "new figures", source="benchmarks.demo")
    assert "new figures" in page.read_text() and "old figures" not in page.read_text()
    assert capsys.readouterr().out == f"new figures\n[demo] published in {page}\n"


# A report as workflows/report.py writes it (sections abridged to what the block reads).
REPORT = """# Main job report (default profile)

2026-11-29 06:40, run folder `/work/runs/main`. Raw text in, served models out: every number below comes from this run.

## Results

| model | test acc | val acc | parameters | .keras size | examples/s |
|---|---|---|---|---|---|
| from scratch (random weights) | 0.798 | 0.732 | 1.05 M | 12.8 MB | 1,880 |
| distilled student (half depth) | 0.796 | 0.768 | 17.39 M | 208.8 MB | 489 |

`movie_sentiment` subset: 4,000 training and 500 test sentences (MiniLM rows use the smaller `minilm.csv` subset and its own test split when the profile makes one).

## Student versus teacher

| | blocks |
|---|---|
| student | 3 |

The student keeps 99% of the teacher's accuracy at 2.48x its speed.

![student](figures/student.png)

## Stage times

| stage | seconds |
|---|---|
| data | 30 |
| pretrain_bert | 90 |

(Stages done by an earlier run show that run's time.)
"""  # noqa: E501


def test_main_job_block_holds_the_table_note_and_student_line():
    block = publish.main_job_block(REPORT, "runs/main/report.md")
    lines = block.splitlines()
    assert lines[0] == (
        "The main job, default profile (`python -m workflows main`), run 2026-11-29 06:40; its "
        "stage times add up to 2.0 min. The results table of its `runs/main/report.md`:"
    )
    assert "| from scratch (random weights) | 0.798 | 0.732 | 1.05 M | 12.8 MB | 1,880 |" in lines
    assert any(line.startswith("`movie_sentiment` subset: 4,000 training") for line in lines)
    assert lines[-1] == "The student keeps 99% of the teacher's accuracy at 2.48x its speed."
    assert "Stage times" not in block and "figures/student.png" not in block


def test_main_job_block_names_a_non_default_profile():
    report = REPORT.replace("(default profile)", "(quick profile)")
    assert "(`python -m workflows main --profile quick`)" in publish.main_job_block(report)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# Something else\n", "is not a main-job report"),
        ("# Main job report (quick profile)\n\n## Results\n\nno table\n", "no results table"),
    ],
)
def test_main_job_block_refuses_other_files(text, message):
    with pytest.raises(publish.PublishError, match=message):
        publish.main_job_block(text)


def test_main_job_command_writes_the_readme_block(tmp_path, capsys):
    run_dir = tmp_path / "main"
    run_dir.mkdir()
    (run_dir / "report.md").write_text(REPORT)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- main_job:begin -->\nold\n<!-- main_job:end -->\n")
    assert publish.main(["main-job", str(run_dir), "--into", str(readme)]) == 0
    content = publish.block_content(readme.read_text(), "main_job")
    assert content.splitlines()[0].startswith("<!-- written by `python -m benchmarks.publish")
    assert "| distilled student (half depth) | 0.796 |" in content
    assert "old" not in content
    assert "Written to block 'main_job'" in capsys.readouterr().out


def test_main_job_command_errors_are_one_line_and_exit_2(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert publish.main(["main-job", str(tmp_path / "missing"), "--into", str(readme)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "report.md does not exist" in error
    assert error.count("\n") == 1
    run_dir = tmp_path / "main"
    run_dir.mkdir()
    (run_dir / "report.md").write_text(REPORT)
    assert publish.main(["main-job", str(run_dir), "--into", str(readme)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "has no block 'main_job'" in error
    assert readme.read_text() == "no markers\n"
