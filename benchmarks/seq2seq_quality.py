"""How good the encoder-decoder gets, and how fast: G2P on cmudict, dates on date_to_iso.

Trains `Seq2SeqTransformer` from scratch with `workflows seq2seq` itself, one run per row:

- `cmudict` (spelling -> ARPAbet phonemes with stress) with the main job's encoder-decoder
  settings (`workflows.main_job`: its default profile's model and `G2P_TRAINING`), once per
  number of steps in `--steps`, each run with its own warm-up and cosine schedule; every row
  is tested on the same `--test-words` words of the test split (0: all 12,605), greedy and
  with beam search (4 beams): word error rate (a word is right if it equals any listed
  pronunciation) and phoneme error rate, beside the training minutes. WER against minutes.
- with `--full`, one more row with the main job's `full` profile (4 blocks x 128, 30,000
  steps; about an hour on 2 cores);
- `date_to_iso` (dates written 18 ways -> ISO 8601): the workflow's defaults for
  `--date-steps` steps, exact match on 2,000 test dates.

Targets (issue 15): WER <= 0.45 at the main job's default budget (its default-profile row),
WER <= 0.25 with `--full`, date_to_iso exact match >= 0.99 in <= 5 minutes of training. The
published Transformer G2P results on CMUdict, about 0.22 WER and 0.05-0.06 PER (Yolchuyeva
et al., Interspeech 2019), come from another split and much longer training: a reference,
not a match.

    python -m benchmarks.seq2seq_quality                 # ~15 min; publishes docs/BENCHMARKS.md
    python -m benchmarks.seq2seq_quality --full          # + the full-profile row (~1 h more)
    python -m benchmarks.seq2seq_quality --quick         # ~2 min smoke run; published if asked

Wall-clock minutes are what they are on the machine at the time: the block records its load
average at the start and the end.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.common import load_average, machine_description, markdown_table  # noqa: E402
from benchmarks.publish import (  # noqa: E402
    add_arguments,
    check_or_exit,
    print_and_publish,
    publishing,
)
from workflows import main_job, seq2seq  # noqa: E402

BLOCK = "seq2seq_quality"
TARGETS = {"default_wer": 0.45, "full_wer": 0.25, "date_exact_match": 0.99, "date_minutes": 5.0}
QUICK = {"num_layers": 1, "hidden_dim": 64, "num_heads": 2, "intermediate_dim": 128,
         "train_examples": 5000, "eval_interval": 50}  # fmt: skip


def g2p_settings(profile):
    """The main job's encoder-decoder settings of `profile` (model, batch, rates, beams)."""
    settings = {**main_job.G2P_TRAINING, **main_job.PROFILES[profile]["seq2seq"]}
    for key in ("steps", "test_examples", "eval_interval"):
        settings.pop(key, None)
    return settings


def train_row(name, folder, settings):
    """One `workflows seq2seq` run; its metrics with the row's name."""
    config = seq2seq.Config(verbose=0, output_dir=os.path.join(folder, name), **settings)
    print(f"[seq2seq_quality] {name}: training (load {load_average()}) ...", flush=True)
    result = seq2seq.run(config)
    print(f"[seq2seq_quality] {name}: done in {result.seconds / 60:.1f} min", flush=True)
    return {"name": name, **result.metrics}


def run(args, folder):
    rows = []
    for steps in args.steps:
        settings = {**g2p_settings("default"), "steps": steps, "test_examples": args.test_words,
                    "eval_interval": min(500, steps), "num_beams": 4}  # fmt: skip
        if args.quick:
            settings.update(QUICK, eval_interval=min(50, steps))
        model = "quick model" if args.quick else "main-job model"
        rows.append(train_row(f"cmudict, {model}, {steps:,} steps", folder, settings))
    if args.full:
        full = main_job.PROFILES["full"]["seq2seq"]
        settings = {**g2p_settings("full"), "test_examples": args.test_words, "num_beams": 4,
                    "steps": full["steps"], "eval_interval": full["eval_interval"]}  # fmt: skip
        rows.append(train_row("cmudict, full profile", folder, settings))
    date = {"dataset": "date_to_iso", "steps": args.date_steps, "num_beams": 4,
            "eval_interval": min(500, args.date_steps), "test_examples": 2000}  # fmt: skip
    if args.quick:
        date.update(QUICK, eval_interval=min(50, args.date_steps))
    rows.append(train_row(f"date_to_iso, {args.date_steps:,} steps", folder, date))
    return rows


def verdicts(rows, args):
    """Lines saying which targets this run met (only those it measured)."""
    if args.quick:  # quick rows train other models than the targets name
        return []
    lines = []
    main_steps = main_job.PROFILES["default"]["seq2seq"]["steps"]
    for row in rows:
        if row["name"] == f"cmudict, main-job model, {main_steps:,} steps":
            wer = min(row["greedy_wer"], row["beam4_wer"])
            met = "met" if wer <= TARGETS["default_wer"] else "NOT met"
            lines.append(
                f"- Main-job budget ({main_steps:,} steps, {row['train_seconds'] / 60:.1f} min): "
                f"WER {wer:.3f}, target <= {TARGETS['default_wer']}: {met}."
            )
        if row["name"] == "cmudict, full profile":
            wer = min(row["greedy_wer"], row["beam4_wer"])
            met = "met" if wer <= TARGETS["full_wer"] else "NOT met"
            lines.append(
                f"- Full profile ({row['train_seconds'] / 60:.1f} min): WER {wer:.3f}, target "
                f"<= {TARGETS['full_wer']}: {met}."
            )
        if row["name"].startswith("date_to_iso"):
            minutes, exact = row["train_seconds"] / 60, row["greedy_exact_match"]
            met = exact >= TARGETS["date_exact_match"] and minutes <= TARGETS["date_minutes"]
            lines.append(
                f"- date_to_iso: exact match {exact:.4f} after {minutes:.1f} min, target >= "
                f"{TARGETS['date_exact_match']} in <= {TARGETS['date_minutes']:g} min: "
                f"{'met' if met else 'NOT met'}."
            )
    return lines


def command(args):
    """The command that trains this run's rows (where it publishes left out)."""
    flags = [f"--steps {','.join(str(steps) for steps in args.steps)}",
             f"--test-words {args.test_words}", f"--date-steps {args.date_steps}"]  # fmt: skip
    flags += [flag for flag in ("--full", "--quick") if getattr(args, flag[2:])]
    return " ".join(["python -m benchmarks.seq2seq_quality", *flags])


def report(rows, args, load_start):
    header = ("run", "parameters", "steps", "train min", "test", "greedy WER", "greedy PER",
              "beam-4 WER", "beam-4 PER", "beam-4 WER no stress", "beam-4 PER no stress",
              "greedy exact", "beam-4 exact")  # fmt: skip

    def rate(row, key):
        return f"{row[key]:.3f}" if key in row else "-"

    table = markdown_table(
        header,
        [
            (
                row["name"],
                f"{row['parameters'] / 1e6:.2f} M",
                f"{row['steps']:,}",
                f"{row['train_seconds'] / 60:.1f}",
                f"{row['test_examples']:,}",
                rate(row, "greedy_wer"),
                rate(row, "greedy_per"),
                rate(row, "beam4_wer"),
                rate(row, "beam4_per"),
                rate(row, "beam4_wer_stressless"),
                rate(row, "beam4_per_stressless"),
                rate(row, "greedy_exact_match"),
                rate(row, "beam4_exact_match"),
            )
            for row in rows
        ],
    )
    return "\n".join(
        [
            f"`{command(args)}` on {machine_description()} (load average {load_start} at the "
            f"start, {load_average()} at the end).",
            "",
            "Each row trains a `Seq2SeqTransformer` from scratch (characters in; cmudict: "
            "ARPAbet phonemes with stress out) with `python -m workflows seq2seq`; WER and PER "
            'on the same test words for every cmudict row; "no stress": the same beam-4 '
            "predictions scored with the stress digits taken off both sides (39 phonemes). "
            "Published Transformer G2P on CMUdict: about 0.22 WER, 0.05-0.06 PER (another "
            "split, far longer training and, as far as we can tell, no stress).",
            "",
            table,
            "",
            *verdicts(rows, args),
        ]
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.seq2seq_quality", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--steps",
        default=None,
        help="comma-separated training steps of the cmudict rows (default: 1000, the main "
        "job's default-profile steps, and twice those)",
    )
    parser.add_argument("--test-words", type=int, default=2000, help="test words (0: all)")
    parser.add_argument("--date-steps", type=int, default=2000, help="date_to_iso steps")
    parser.add_argument("--full", action="store_true", help="add the full-profile row (~1 h)")
    parser.add_argument("--quick", action="store_true", help="tiny models and data, ~2 min")
    add_arguments(parser)
    args = parser.parse_args(argv)
    main_steps = main_job.PROFILES["default"]["seq2seq"]["steps"]
    if args.steps is None:
        args.steps = "100" if args.quick else f"1000,{main_steps},{2 * main_steps}"
    try:
        args.steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        parser.error(f"--steps takes comma-separated whole numbers; received {args.steps!r}")
    if any(s <= 0 for s in args.steps) or args.date_steps <= 0 or args.test_words < 0:
        parser.error("--steps and --date-steps must be positive, --test-words >= 0")
    if args.quick:
        args.test_words = min(args.test_words, 200) if args.test_words else 200
        args.date_steps = min(args.date_steps, 100)
    return args


def main(argv=None):
    args = parse_args(argv)
    if publishing(args):
        check_or_exit([(args.docs, BLOCK)])
    load_start = load_average()
    with tempfile.TemporaryDirectory() as folder:
        rows = run(args, folder)
    text = report(rows, args, load_start)
    print_and_publish(args, BLOCK, text, source="benchmarks.seq2seq_quality")


if __name__ == "__main__":
    main()
