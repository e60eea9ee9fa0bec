"""All the performance benchmarks in one run, printed as one table against their targets.

Runs, in one process and one after the other, the measuring functions of the other scripts:

- `train_speed`: training tokens/s of our BERT masked LM and GPT causal LM vs keras-hub's, in
  float32 and mixed_bfloat16, and the fraction of the `tf.matmul` peak each reaches;
- `tokenizer_throughput`: our WordPiece tokenizer vs keras-nlp's (tensorflow-text) in `tf.data`;
- `serving_latency`: our raw-text classifier SavedModel vs keras-hub's (batch 1 and 32), and
  greedy generation tokens/s of our exports (plain, and XLA-compiled) vs keras-hub's
  `GPT2CausalLM.generate` (plain, and with XLA);
- `student_speed`: a half-depth student classifier vs its teacher (speed only).

Each part prints a line when it starts and when it ends (with its seconds). A part that fails
(an import error, a crash inside a benchmark) becomes a row that holds the error; the other parts
still run, and the command exits with status 1 at the end. The table goes to stdout and, written
atomically, to `--output` (default `runs/benchmarks/run_all-<timestamp>.md`).

    python -m benchmarks.run_all --quick      # smoke test: tiny training models, few repeats
    python -m benchmarks.run_all              # the numbers for the README, ~5 minutes on 2 cores
    python -m benchmarks.run_all --no-xla --output /tmp/table.md
"""

import argparse
import dataclasses
import datetime
import gc
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from benchmarks.common import load_average, machine_description, markdown_table  # noqa: E402
from benchmarks.publish import (  # noqa: E402
    DOCS_PAGE,
    README,
    check_or_exit,
    publishing,
    replace_block,
    write_atomic,
)
from benchmarks.publish import add_arguments as add_publish_arguments  # noqa: E402

PEAK_TARGET = 0.65  # issue #8: fraction of the matmul peak at the "mini" size
PAR_TARGET = 1.0  # everywhere else: at least on par with the reference
DTYPE_LABELS = {"float32": "fp32", "mixed_bfloat16": "bf16"}
HEADER = ("benchmark", "ours", "reference", "ratio (>1: ours better)", "target", "met?")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How long each part measures. `train_args` are `train_speed` command-line flags."""

    train_args: tuple
    tokenizer_repeats: int
    classifier_repeats: int
    generation_repeats: int
    student_repeats: int


PROFILES = {
    "quick": Profile(
        train_args=("--quick",),
        tokenizer_repeats=3,
        classifier_repeats=6,
        generation_repeats=3,
        student_repeats=5,
    ),
    # The other scripts' own defaults: 10 timed training steps after 3 warm-up steps per model.
    "default": Profile(
        train_args=(),
        tokenizer_repeats=5,
        classifier_repeats=40,
        generation_repeats=10,
        student_repeats=20,
    ),
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table. `ours` and `reference` are display strings with their units.

    `ratio` is oriented so that above 1 ours is better; `cpu_ratio` the same from CPU time.
    `met` is None where the row has no target (or it does not apply); `error` marks a failure.
    """

    benchmark: str
    ours: str = ""
    reference: str = ""
    ratio: float | None = None
    cpu_ratio: float | None = None
    target: str = ""
    met: bool | None = None
    error: str | None = None


def par_row(benchmark, ours, reference, ratio, cpu_ratio=None):
    """A row compared with a reference, whose target is being at least on par (ratio >= 1)."""
    return Row(
        benchmark,
        ours,
        reference,
        ratio,
        cpu_ratio,
        target=f"ratio ≥ {PAR_TARGET:.2f}",
        met=ratio >= PAR_TARGET,
    )


def error_row(benchmark, error):
    """The row of a part that failed: the error's type and message on one line."""
    message = " ".join(f"{type(error).__name__}: {error}".split()).replace("|", "/")
    return Row(benchmark, error=message[:200])


def table_cells(row):
    """The display cells of a row, in the order of `HEADER`."""
    if row.error is not None:
        return (row.benchmark, f"FAILED: {row.error}", "—", "—", "—", "error")
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
    if row.cpu_ratio is not None:
        ratio += f" (CPU {row.cpu_ratio:.2f})"
    met = {True: "yes", False: "no", None: "—"}[row.met]
    return (row.benchmark, row.ours, row.reference, ratio, row.target or "—", met)


def format_table(rows):
    return markdown_table(HEADER, [table_cells(row) for row in rows])


# === The parts ===


def training_rows(profile):
    """Training tokens/s vs keras-hub, then the fraction of the matmul peak, per model and dtype."""
    from benchmarks import train_speed

    args = train_speed.parse_args(list(profile.train_args))
    measured, peaks = train_speed.measure(args)
    speed, peak = [], []
    for r in measured:
        name = f"{r['model']} {DTYPE_LABELS.get(r['dtype'], r['dtype'])} ({args.size})"
        speed.append(
            par_row(
                f"training tokens/s, {name}",
                f"{r['ours_tps']:,.0f} tok/s",
                f"keras-hub {r['hub_tps']:,.0f} tok/s",
                r["ratio"],
                r["cpu_ratio"],
            )
        )
        peak.append(
            Row(
                f"fraction of matmul peak, {name}",
                f"{r['ours_peak']:.2f} of {peaks[r['dtype']] / 1e9:,.0f} GFLOP/s",
                f"keras-hub {r['hub_peak']:.2f}",
                r["ours_peak"] / r["hub_peak"],
                target=f"ours ≥ {PEAK_TARGET:.2f} at mini",
                # The target is set at the "mini" size; the quick profile's tiny one says nothing.
                met=r["ours_peak"] >= PEAK_TARGET if args.size == "mini" else None,
            )
        )
    return speed + peak


def tokenizer_rows(profile):
    """Sentences/s of our WordPiece tokenizer vs keras-nlp's in `tf.data` (parallel map)."""
    from benchmarks import tokenizer_throughput

    texts, _, ours, reference = tokenizer_throughput.setup()
    batch_size = 256
    medians, _ = tokenizer_throughput.compare(
        ours, reference, texts, batch_size, profile.tokenizer_repeats, parallel=True
    )
    return [
        par_row(
            f"tokenizer sentences/s, tf.data batch {batch_size}",
            f"{medians['ours']:,.0f} sent/s",
            f"keras-nlp {medians['keras-nlp']:,.0f} sent/s",
            medians["ours"] / medians["keras-nlp"],
        )
    ]


def classifier_rows(profile, measure=None):
    """Raw-text classifier SavedModel latency vs keras-hub's, at equal padding, batch 1 and 32.

    One row per batch size and padding (`serving_latency.PADDINGS`): both sides padded to the
    batch's longest text, and both padded to 128; each cell shows the mean padded width T.
    `measure` stands in for `serving_latency.benchmark_classifier` (tests).
    """
    from benchmarks import serving_latency

    result = (measure or serving_latency.benchmark_classifier)(profile.classifier_repeats)
    latency, widths = result["latency"], result["widths"]
    rows = []
    for batch_size, per_padding in latency.items():
        for padding, seconds in per_padding.items():
            width = widths[batch_size][padding]
            rows.append(
                par_row(
                    f"classifier SavedModel latency, batch {batch_size}, "
                    f"{serving_latency.PADDINGS[padding]}",
                    f"{1e3 * seconds['ours']:.1f} ms (T {width['ours']:.0f})",
                    f"keras-hub {1e3 * seconds['keras-hub']:.1f} ms (T {width['keras-hub']:.0f})",
                    seconds["keras-hub"] / seconds["ours"],
                )
            )
    return rows


# Which of our exported `generate` SavedModels each keras-hub `generate` is compared with: the
# plain one with keras-hub's plain loop, the XLA export (`export(..., jit_compile=True)`) with
# keras-hub under XLA.
GENERATION_PAIRS = {"keras-hub": "ours", "keras-hub + XLA": "ours + XLA"}


def generation_rows(profile, with_xla):
    """Greedy generation tokens/s of our SavedModels vs keras-hub's `generate` (plain, XLA)."""
    from benchmarks import serving_latency

    speed = serving_latency.benchmark_generation(profile.generation_repeats, with_xla=with_xla)
    rows = []
    for batch_size, per_name in speed.items():
        for name, ours in GENERATION_PAIRS.items():
            if name not in per_name or ours not in per_name:
                continue
            rows.append(
                par_row(
                    f"generation tokens/s, batch {batch_size}, {ours} vs {name}",
                    f"{ours} {per_name[ours]:,.0f} tok/s",
                    f"{name} {per_name[name]:,.0f} tok/s",
                    per_name[ours] / per_name[name],
                )
            )
    return rows


def student_rows(profile):
    """Examples/s of the half-depth student classifier vs its teacher (mini, batch 32 x 128)."""
    from benchmarks import student_speed

    result = student_speed.measure("mini", 32, 128, profile.student_repeats)
    return [
        par_row(
            f"student vs teacher examples/s, BertClassifier mini, {result['student_layers']} vs "
            f"{result['teacher_layers']} blocks",
            f"student {result['student']:,.0f} ex/s",
            f"teacher {result['teacher']:,.0f} ex/s",
            result["speedup"],
        )
    ]


def parts(profile, with_xla=True):
    """The parts in running order: `(title, function returning rows)`."""
    return [
        ("training speed and fraction of matmul peak", lambda: training_rows(profile)),
        ("tokenizer throughput", lambda: tokenizer_rows(profile)),
        ("classifier SavedModel latency", lambda: classifier_rows(profile)),
        ("generation speed", lambda: generation_rows(profile, with_xla)),
        ("student vs teacher speed", lambda: student_rows(profile)),
    ]


# === Running and reporting ===


def run_part(title, function):
    """Runs one part; returns `(rows, seconds)`. An exception becomes one error row."""
    print(f"[run_all] {title}: started", flush=True)
    start = time.perf_counter()
    try:
        rows = list(function())
        status = "done"
    except Exception as error:  # noqa: BLE001 - reported in the table, the run goes on.
        traceback.print_exc()
        rows = [error_row(title, error)]
        status = "FAILED"
    finally:
        # Leave no state behind for the next part: its own dtype policy, a fresh session.
        keras.mixed_precision.set_dtype_policy("float32")
        keras.backend.clear_session()
        gc.collect()
    seconds = time.perf_counter() - start
    print(f"[run_all] {title}: {status} in {seconds:.0f} s", flush=True)
    return rows, seconds


def library_versions():
    try:
        import keras_hub

        return f"keras-hub {keras_hub.__version__}"
    except Exception as error:  # noqa: BLE001 - the training part reports it as its failure.
        return f"keras-hub not importable ({type(error).__name__}: {error})"


NOTES = (
    "ratio: ours / reference for speeds (tokens/s, sentences/s, examples/s) and for the "
    "fraction of the matmul peak; reference / ours for latencies (ms); training rows add "
    "the same ratio from CPU time per step. Classifier rows: T is the mean padded width of "
    "the timed batches, equal on both sides by construction.",
    "fraction of matmul peak: FLOPs per step / step time / the best tf.matmul FLOP/s "
    "measured in this process (shown); other jobs on the cores lower that peak more than "
    "they slow the training steps, so read it with the load average.",
)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One run's results and the circumstances: what the report and the pages show."""

    command: str
    machine: str
    started: datetime.datetime
    load_at_start: str
    load_at_end: str
    rows: list
    timings: list
    total_seconds: float

    @property
    def failed(self):
        return [row.benchmark for row in self.rows if row.error is not None]

    @property
    def not_met(self):
        return [row.benchmark for row in self.rows if row.met is False]

    def header(self):
        return (
            f"`{self.command}`, started {self.started:%Y-%m-%d %H:%M %Z}; {self.machine}; "
            f"load average (1, 5, 15 min) {self.load_at_start} at the start, "
            f"{self.load_at_end} at the end; {self.total_seconds:.0f} s."
        )

    def not_met_line(self):
        if not self.not_met:
            return "Every row met its target."
        return f"Not met: {'; '.join(self.not_met)}."


def report_text(measurement, title):
    """The full report: heading, circumstances, table, notes, seconds per part, failures."""
    failed = measurement.failed
    return "\n".join(
        [
            f"# {title}",
            "",
            measurement.header(),
            "",
            format_table(measurement.rows),
            "",
            measurement.not_met_line(),
            "",
            *NOTES,
            f"Seconds per part: {', '.join(measurement.timings)}.",
            f"Failed: {', '.join(failed)}." if failed else "Failed: none.",
            "",
        ]
    )


def docs_block(measurement):
    """The `run_all` block of docs/BENCHMARKS.md: the report without its heading."""
    return "\n".join(
        [
            f"Latest run: {measurement.header()}",
            "",
            format_table(measurement.rows),
            "",
            measurement.not_met_line(),
            "",
            *(f"{note}\n" for note in NOTES),
            f"Seconds per part: {', '.join(measurement.timings)}.",
        ]
    )


def readme_block(measurement, docs_path):
    """The `run_all` block of the README: when and where, the table, what was not met."""
    link = os.path.relpath(docs_path) if not os.path.isabs(docs_path) else docs_path
    return "\n".join(
        [
            measurement.header(),
            "",
            format_table(measurement.rows),
            "",
            f"{measurement.not_met_line()} What each row measures, and the notes: [`{link}`]"
            f"({link}).",
        ]
    )


@dataclasses.dataclass(frozen=True)
class Publication:
    """Where a run's figures go: the `run_all` block of `docs` and of `readme` (None: not)."""

    docs: str | None = None
    readme: str | None = None
    block: str = "run_all"

    def targets(self):
        return [(path, self.block) for path in (self.docs, self.readme) if path]


def run(part_list, output, title="run_all", publication=None, command="run_all"):
    """Runs the parts, prints the report and writes it to `output`; returns the exit status.

    Args:
        part_list: list of `(title, function)`; each function returns a list of `Row`s.
        output: str or Path. The markdown file to write (atomically).
        title: str. The report's heading.
        publication: `Publication` or None. If every part succeeded, the table is written
            into its pages' `run_all` blocks (atomically); a run with a failed part publishes
            nothing, so the pages keep their previous, complete figures.
        command: str. The command line, as the report and the pages name it.

    Returns:
        0 if every part and row succeeded, else 1.
    """
    started = datetime.datetime.now().astimezone()
    load_at_start = load_average()
    machine = f"{machine_description()}, {library_versions()}"
    print(f"Machine: {machine}")
    print(f"Load average (1, 5, 15 min) at start: {load_at_start}", flush=True)
    rows, timings = [], []
    for part_title, function in part_list:
        part_rows, seconds = run_part(part_title, function)
        rows.extend(part_rows)
        timings.append(f"{part_title} {seconds:.0f} s")
    measurement = Measurement(
        command=command,
        machine=machine,
        started=started,
        load_at_start=load_at_start,
        load_at_end=load_average(),
        rows=rows,
        timings=timings,
        total_seconds=(datetime.datetime.now().astimezone() - started).total_seconds(),
    )
    report = report_text(measurement, title)
    print()
    print(report, end="")
    write_atomic(output, report)
    print(f"Written to {output}")
    if publication is not None:
        pages = " and ".join(path for path, _ in publication.targets())
        if measurement.failed:
            print(f"Not published: a part failed, so {pages} keep their previous figures.")
        else:
            if publication.docs:
                content = docs_block(measurement)
                replace_block(publication.docs, publication.block, content, source=command)
            if publication.readme:
                content = readme_block(measurement, publication.docs or DOCS_PAGE)
                replace_block(publication.readme, publication.block, content, source=command)
            print(f"Published to the {publication.block!r} block of {pages}.")
    return 1 if measurement.failed else 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny training models, few repeats"
    )
    parser.add_argument("--no-xla", action="store_true", help="skip keras-hub's XLA generation")
    parser.add_argument(
        "--output",
        default=None,
        help="markdown file for the report (default: runs/benchmarks/run_all-<timestamp>.md)",
    )
    add_publish_arguments(parser, readme=README)
    args = parser.parse_args(argv)
    if args.output is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.output = os.path.join("runs", "benchmarks", f"run_all-{stamp}.md")
    return args


def main(argv=None):
    args = parse_args(argv)
    name = "quick" if args.quick else "default"
    publication = None
    if publishing(args):
        publication = Publication(docs=args.docs, readme=args.readme)
        check_or_exit(publication.targets())  # before measuring: missing markers fail at once
    command = "python -m benchmarks.run_all" + (" --quick" if args.quick else "")
    command += " --no-xla" if args.no_xla else ""
    part_list = parts(PROFILES[name], with_xla=not args.no_xla)
    return run(
        part_list,
        args.output,
        title=f"Benchmarks: run_all, {name} profile",
        publication=publication,
        command=command,
    )


if __name__ == "__main__":
    sys.exit(main())
