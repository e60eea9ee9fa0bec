"""Publish measured figures into markdown pages: a command rewrites a marked block, atomically.

A block is everything between a line `<!-- NAME:begin -->` and a line `<!-- NAME:end -->`.
The commands that measure (`benchmarks.run_all`, `benchmarks.quality`,
`benchmarks.pipeline_overhead`, `benchmarks.serving_examples`) write their results into their
blocks of `docs/BENCHMARKS.md`, `README.md` and `docs/SERVING.md`, so that no figure on those
pages is typed by hand. The file is rewritten through a temporary file in the same folder and a
rename: a reader sees the old page or the new one, never half of it. A page without the markers
is refused with an error naming them (nothing is written); so is a page with a marker twice.

This module is also the command that publishes the main job's results (the "Results" section
of `RUN/report.md`, written by `python -m workflows main`):

    python -m benchmarks.publish main-job runs/main                  # README.md's main_job block
    python -m benchmarks.publish main-job runs/main --into docs/BENCHMARKS.md
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

DOCS_PAGE = "docs/BENCHMARKS.md"
README = "README.md"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class PublishError(ValueError):
    """A page or a report that cannot be published (missing markers, missing sections)."""


def markers(name):
    """`(begin, end)`: the two marker lines of block `name`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"A block name is lower-case letters, digits and `_`, starting with a letter. "
            f"Received: name={name!r}"
        )
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def _marker_lines(text, marker):
    return [i for i, line in enumerate(text.splitlines()) if line.strip() == marker]


def find_block(text, name, where="the page"):
    """`(begin, end)` line numbers of block `name`'s markers in `text` (0-based).

    Raises:
        PublishError: a marker is missing, appears twice, or the end comes before the begin.
    """
    begin, end = markers(name)
    found = {marker: _marker_lines(text, marker) for marker in (begin, end)}
    missing = [marker for marker, lines in found.items() if not lines]
    if missing:
        lines = " and ".join(f"`{marker}`" for marker in missing)
        raise PublishError(
            f"{where} has no block {name!r}: the line {lines} "
            f"{'is' if len(missing) == 1 else 'are'} missing. "
            f"Add the two lines `{begin}` and `{end}` where the figures go, then run the "
            "command again."
        )
    doubled = [marker for marker, lines in found.items() if len(lines) > 1]
    if doubled:
        raise PublishError(
            f"{where} has {' and '.join(doubled)} more than once: keep one block {name!r}."
        )
    (first,), (last,) = found[begin], found[end]
    if last < first:
        raise PublishError(f"{where}: `{end}` comes before `{begin}`; put the end after it.")
    return first, last


def replace_block_text(text, name, content, where="the page"):
    """`text` with the lines between block `name`'s markers replaced by `content`.

    The markers stay; `content` goes between them, with one blank line on each side (so that
    markdown tables and headings inside the block render). Everything outside is unchanged.
    """
    first, last = find_block(text, name, where)
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines[first].endswith("\r\n") else "\n"
    body = content.strip("\n")
    middle = [newline] + [line + newline for line in body.split("\n")] + [newline]
    if not body:
        middle = []
    return "".join(lines[: first + 1] + middle + lines[last:])


def block_content(text, name, where="the page"):
    """The text between block `name`'s markers, without the blank lines around it."""
    first, last = find_block(text, name, where)
    return "\n".join(text.splitlines()[first + 1 : last]).strip("\n")


def read_page(path):
    path = Path(path)
    if not path.is_file():
        raise PublishError(f"{path} does not exist: publish into an existing markdown page.")
    return path.read_text(encoding="utf-8")


def check_blocks(targets):
    """Raises `PublishError` unless every `(path, block name)` in `targets` can be published.

    Measuring commands call this before they measure, so that a page without its markers
    fails at once rather than after the measurement.
    """
    for path, name in targets:
        find_block(read_page(path), name, where=str(path))


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def replace_block(path, name, content, source=None):
    """Replaces block `name` of the markdown file `path` with `content`, atomically.

    Args:
        path: str or Path. An existing markdown file holding the block's two markers.
        name: str. The block's name (`run_all` for `<!-- run_all:begin -->`).
        content: str. The new markdown between the markers.
        source: str or None. The command that writes the block; if given, an invisible
            comment naming it opens the block, so a reader knows where the figures come from.

    Raises:
        PublishError: the file or a marker is missing (the file is left unchanged).
    """
    if source:
        content = f"<!-- written by `{source}`: rerun it rather than edit here -->\n{content}"
    text = read_page(path)
    write_atomic(path, replace_block_text(text, name, content, where=str(path)))


# === Publishing options shared by the measuring commands ===


def add_arguments(parser, docs=DOCS_PAGE, readme=None):
    """Adds `--docs` (and `--readme` if given a default), `--publish` and `--no-publish`."""
    parser.add_argument(
        "--docs", default=docs, help=f"markdown page whose block gets the results (default {docs})"
    )
    if readme is not None:
        parser.add_argument(
            "--readme", default=readme, help=f"README whose block gets the table (default {readme})"
        )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--publish", action="store_true", help="publish even a --quick run (e.g. into a copy)"
    )
    group.add_argument("--no-publish", action="store_true", help="print and save the results only")


def publishing(args):
    """True if the results go into the pages: a full run does, a `--quick` one only if asked."""
    return not args.no_publish and (args.publish or not getattr(args, "quick", False))


def print_and_publish(args, name, text, source):
    """Prints `text` and, if `publishing(args)`, writes it into block `name` of `args.docs`."""
    print(text)
    if publishing(args):
        replace_block(args.docs, name, text, source=source)
        print(f"[{source.rsplit('.', 1)[-1]}] published in {args.docs}")


def check_or_exit(targets):
    """`check_blocks`, or one `error: ...` line on stderr and exit status 2."""
    try:
        check_blocks(targets)
    except PublishError as error:
        print(f"error: {error} (or pass --no-publish)", file=sys.stderr)
        sys.exit(2)


# === The main job's results ===

_TITLE = re.compile(r"# Main job report \((?P<profile>[^)]*) profile\)\s*$")
_WHEN = re.compile(r"(?P<when>\d{4}-\d{2}-\d{2} \d{2}:\d{2}), run folder")
_STUDENT = re.compile(r"The student keeps .*? its speed\.")


def _sections(text):
    """`{heading: body}` of the `## ` sections of a markdown text."""
    sections, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = []
        elif heading is not None:
            sections[heading].append(line)
    return {heading: "\n".join(lines).strip("\n") for heading, lines in sections.items()}


def _stage_minutes(stage_times):
    seconds = []
    for line in stage_times.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and re.fullmatch(r"\d+(\.\d+)?", cells[1]):
            seconds.append(float(cells[1]))
    return sum(seconds) / 60 if seconds else None


def main_job_block(report_text, report_path="report.md"):
    """The README block for a main-job report: its results table, note and student line.

    Args:
        report_text: str. The text of `RUN/report.md` (`workflows.report.write_report`).
        report_path: str. Its path, as the block names it.

    Returns:
        str: markdown.

    Raises:
        PublishError: the text is not a main-job report or lacks its results table.
    """
    lines = report_text.splitlines()
    title = _TITLE.match(lines[0]) if lines else None
    if title is None:
        raise PublishError(
            f"{report_path} is not a main-job report (its first line should be "
            "'# Main job report (PROFILE profile)'): give the run folder of `python -m "
            "workflows main`."
        )
    sections = _sections(report_text)
    results = sections.get("Results", "")
    if not any(line.startswith("|") for line in results.splitlines()):
        raise PublishError(
            f"{report_path} has no results table (a '## Results' section with a table): "
            "rerun `python -m workflows main` to finish the report."
        )
    when = _WHEN.search(report_text)
    profile = title.group("profile")
    command = "python -m workflows main" + ("" if profile == "default" else f" --profile {profile}")
    intro = f"The main job, {profile} profile (`{command}`)"
    if when:
        intro += f", run {when.group('when')}"
    minutes = _stage_minutes(sections.get("Stage times", ""))
    if minutes is not None:
        intro += f"; its stage times add up to {minutes:.1f} min"
    parts = [f"{intro}. The results table of its `{report_path}`:", "", results]
    student = _STUDENT.search(sections.get("Student versus teacher", ""))
    if student:
        parts += ["", student.group(0)]
    return "\n".join(parts)


def publish_main_job(run_dir, into=README, block="main_job"):
    """Reads `run_dir/report.md` and writes its results into block `block` of `into`."""
    report_path = Path(run_dir) / "report.md"
    if not report_path.is_file():
        raise PublishError(
            f"{report_path} does not exist: run `python -m workflows main` (its run folder is "
            "runs/main unless --output-dir) and give that folder."
        )
    display = os.path.relpath(report_path) if not report_path.is_absolute() else str(report_path)
    content = main_job_block(report_path.read_text(encoding="utf-8"), display)
    check_blocks([(into, block)])
    replace_block(into, block, content, source=f"python -m benchmarks.publish main-job {run_dir}")
    return content


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    main_job = commands.add_parser(
        "main-job", help="the main job's results table (RUN/report.md) into a page's block"
    )
    main_job.add_argument("run_dir", help="the main job's run folder (runs/main by default)")
    main_job.add_argument("--into", default=README, help=f"the page (default {README})")
    main_job.add_argument("--block", default="main_job", help="the block's name (main_job)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        content = publish_main_job(args.run_dir, into=args.into, block=args.block)
    except (PublishError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(content)
    print(f"\nWritten to block {args.block!r} of {args.into}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
