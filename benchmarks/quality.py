"""Quality table: from scratch vs pretrained starts vs the distilled student, on movie_sentiment.

Runs the workflows in order, each into its own folder under --output-dir (a rerun skips the
steps whose metrics.json exists, and the table says which), then prints one table and writes
it into the `quality` block of docs/BENCHMARKS.md (atomically; a `--quick` run only with
`--publish`; `--no-publish` never):

1. pretrain: a BERT-style masked LM on `shakespeare+movie_sentiment` (the plays plus the
   sentiment training texts, labels unused), WordPiece vocabulary trained on that text.
2. scratch: the same classifier architecture and tokenizer, random weights.
3. transfer: the pretrained encoder frozen, a new head trained.
4. transfer + finetune: then the whole model, at a low learning rate.
5. distill: the fine-tuned classifier taught to a student with half its blocks.
6. MiniLM as-is (nearest class centroid of its embeddings), MiniLM transfer, and MiniLM
   transfer + finetune: the same, from the real pretrained all-MiniLM-L6-v2.

    python -m benchmarks.quality                 # about 30 minutes on 2 cores
    python -m benchmarks.quality --quick         # a few minutes, small numbers: a smoke test
"""

import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.common import load_average, machine_description  # noqa: E402
from benchmarks.publish import add_arguments, check_or_exit, publishing, replace_block  # noqa: E402

PROFILES = {
    "full": {
        "pretrain": {
            "num_layers": 4,
            "hidden_dim": 256,
            "num_heads": 4,
            "intermediate_dim": 1024,
            "sequence_length": 64,
            "batch_size": 32,
            "steps": 1200,
            "eval_interval": 200,
            "learning_rate": 1e-3,
            "warmup_steps": 100,
            "vocabulary_size": 8000,
        },
        "epochs": {
            "scratch": 5,
            "transfer": 5,
            "finetune": 3,
            "distill": 4,
            "minilm_transfer": 5,
            "minilm_finetune": 2,
        },
        "max_examples": None,
    },
    "quick": {
        "pretrain": {
            "num_layers": 2,
            "hidden_dim": 64,
            "num_heads": 2,
            "intermediate_dim": 128,
            "sequence_length": 32,
            "batch_size": 32,
            "steps": 60,
            "eval_interval": 30,
            "learning_rate": 1e-3,
            "warmup_steps": 10,
            "vocabulary_size": 2000,
        },
        "epochs": {
            "scratch": 1,
            "transfer": 1,
            "finetune": 1,
            "distill": 1,
            "minilm_transfer": 1,
            "minilm_finetune": 1,
        },
        "max_examples": None,
    },
}


def step(name, module, folder, reused=None, **settings):
    """Runs one workflow unless its metrics.json exists; returns its metrics.

    The names of steps whose metrics come from an earlier run are appended to `reused`.
    """
    run_dir = os.path.join(folder, name)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(metrics_path):
        print(f"[quality] {name}: done before, reusing {metrics_path}", flush=True)
        if reused is not None:
            reused.append(name)
    else:
        print(f"[quality] {name} ...", flush=True)
        module.run(module.Config(output_dir=run_dir, verbose=2, **settings))
    with open(metrics_path, encoding="utf-8") as file:
        return json.load(file)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/quality")
    parser.add_argument("--quick", action="store_true", help="the quick profile")
    parser.add_argument("--skip-minilm", action="store_true", help="leave out the MiniLM rows")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if publishing(args):
        check_or_exit([(args.docs, BLOCK)])  # before the 30 minutes, not after
    from workflows import asis, distill, finetune, pretrain, scratch, transfer

    started = datetime.datetime.now().astimezone()
    machine, load_at_start = machine_description(), load_average()
    reused = []
    profile = PROFILES["quick" if args.quick else "full"]
    folder = args.output_dir
    os.makedirs(folder, exist_ok=True)
    epochs = profile["epochs"]
    common = {"sequence_length": profile["pretrain"]["sequence_length"], "batch_size": 32}

    step(
        "pretrain",
        pretrain,
        folder,
        reused,
        objective="masked",
        tokens="wordpiece",
        corpus="shakespeare+movie_sentiment",
        eval_batches=10,
        **profile["pretrain"],
    )
    base = os.path.join(folder, "pretrain")
    rows = {}
    rows["from scratch"] = step(
        "scratch",
        scratch,
        folder,
        reused,
        init_from=base,
        epochs=epochs["scratch"],
        learning_rate=3e-4,
        **common,
    )
    rows["transfer (ours, frozen)"] = step(
        "transfer",
        transfer,
        folder,
        reused,
        init_from=base,
        epochs=epochs["transfer"],
        learning_rate=1e-3,
        **common,
    )
    rows["transfer + finetune (ours)"] = step(
        "finetune",
        finetune,
        folder,
        reused,
        init_from=os.path.join(folder, "transfer"),
        epochs=epochs["finetune"],
        learning_rate=1e-4,
        **common,
    )
    rows["distilled student (ours)"] = step(
        "distill",
        distill,
        folder,
        reused,
        init_from=os.path.join(folder, "finetune"),
        epochs=epochs["distill"],
        learning_rate=1e-4,
        **common,
    )
    if not args.skip_minilm:
        rows["MiniLM as-is (centroids)"] = step(
            "minilm_asis", asis, folder, reused, init_from="minilm", **common
        )
        rows["MiniLM transfer (frozen)"] = step(
            "minilm_transfer",
            transfer,
            folder,
            reused,
            init_from="minilm",
            epochs=epochs["minilm_transfer"],
            learning_rate=1e-3,
            **common,
        )
        rows["MiniLM transfer + finetune"] = step(
            "minilm_finetune",
            finetune,
            folder,
            reused,
            init_from=os.path.join(folder, "minilm_transfer"),
            epochs=epochs["minilm_finetune"],
            learning_rate=3e-5,
            **common,
        )
    table = quality_table(
        rows,
        command="python -m benchmarks.quality" + (" --quick" if args.quick else ""),
        circumstances=f"started {started:%Y-%m-%d %H:%M %Z}; {machine}; load average (1, 5, "
        f"15 min) {load_at_start} at the start, {load_average()} at the end",
        reused=reused,
    )
    print("\n" + table)
    if publishing(args):
        replace_block(args.docs, BLOCK, table, source="python -m benchmarks.quality")
        print(f"\nWritten to the {BLOCK!r} block of {args.docs}.")


BLOCK = "quality"


def quality_table(rows, command, circumstances, reused=()):
    """The quality table as markdown: where and when, one row per start, the student line.

    Args:
        rows: dict `{row name: metrics}` (each workflow's metrics.json).
        command: str. The command that measured, as the text names it.
        circumstances: str. When, on what machine, under what load.
        reused: names of the steps whose metrics came from an earlier run.

    Returns:
        str: markdown.
    """
    lines = [f"`{command}`, {circumstances}. movie_sentiment test accuracy:", ""]
    lines += [
        "| start | test accuracy | parameters | examples/s (predict) |",
        "| --- | --- | --- | --- |",
    ]
    for name, metrics in rows.items():
        parameters = metrics.get("parameters")
        speed = metrics.get("examples_per_second")
        lines.append(
            f"| {name} | {metrics['test_accuracy']:.4f} | {parameters:,} | {speed:,.0f} |"
            if parameters
            else f"| {name} | {metrics['test_accuracy']:.4f} | - | - |"
        )
    student = rows.get("distilled student (ours)")
    if student:
        lines += [
            "",
            f"Student vs teacher: {student['student_layers']} blocks, accuracy kept "
            f"{student['accuracy_kept']:.3f} (teacher {student['teacher_test_accuracy']:.4f}), "
            f"speed-up {student['speedup']:.2f}x.",
        ]
    if reused:
        lines += [
            "",
            f"Reused from an earlier run in the same folder (its metrics.json): "
            f"{', '.join(reused)}.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
