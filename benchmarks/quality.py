"""Quality table: from scratch vs pretrained starts vs the distilled student, on movie_sentiment.

Runs the workflows in order, each into its own folder under --output-dir (a rerun skips the
steps whose metrics.json exists), then prints one table:

1. pretrain: a BERT-style masked LM on `shakespeare+movie_sentiment` (the plays plus the
   sentiment training texts, labels unused), WordPiece vocabulary trained on that text.
2. scratch: the same classifier architecture and tokenizer, random weights.
3. transfer: the pretrained encoder frozen, a new head trained.
4. transfer + finetune: then the whole model, at a low learning rate.
5. distill: the fine-tuned classifier taught to a student with half its blocks.
6. MiniLM as-is (nearest class centroid of its embeddings), MiniLM transfer, and MiniLM
   transfer + finetune: the same, from the real pretrained all-MiniLM-L6-v2.

    python benchmarks/quality.py                 # about 30 minutes on 2 cores
    python benchmarks/quality.py --quick         # a few minutes, small numbers: a smoke test
"""

import argparse
import datetime
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workflows import asis, distill, finetune, pretrain, scratch, transfer  # noqa: E402

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


def step(name, module, folder, **settings):
    """Runs one workflow unless its metrics.json exists; returns its metrics."""
    run_dir = os.path.join(folder, name)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(metrics_path):
        print(f"[quality] {name}: done before, reusing {metrics_path}", flush=True)
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
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    folder = args.output_dir
    os.makedirs(folder, exist_ok=True)
    epochs = profile["epochs"]
    common = {"sequence_length": profile["pretrain"]["sequence_length"], "batch_size": 32}

    step(
        "pretrain",
        pretrain,
        folder,
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
        init_from=base,
        epochs=epochs["scratch"],
        learning_rate=3e-4,
        **common,
    )
    rows["transfer (ours, frozen)"] = step(
        "transfer",
        transfer,
        folder,
        init_from=base,
        epochs=epochs["transfer"],
        learning_rate=1e-3,
        **common,
    )
    rows["transfer + finetune (ours)"] = step(
        "finetune",
        finetune,
        folder,
        init_from=os.path.join(folder, "transfer"),
        epochs=epochs["finetune"],
        learning_rate=1e-4,
        **common,
    )
    rows["distilled student (ours)"] = step(
        "distill",
        distill,
        folder,
        init_from=os.path.join(folder, "finetune"),
        epochs=epochs["distill"],
        learning_rate=1e-4,
        **common,
    )
    if not args.skip_minilm:
        rows["MiniLM as-is (centroids)"] = step(
            "minilm_asis", asis, folder, init_from="minilm", **common
        )
        rows["MiniLM transfer (frozen)"] = step(
            "minilm_transfer",
            transfer,
            folder,
            init_from="minilm",
            epochs=epochs["minilm_transfer"],
            learning_rate=1e-3,
            **common,
        )
        rows["MiniLM transfer + finetune"] = step(
            "minilm_finetune",
            finetune,
            folder,
            init_from=os.path.join(folder, "minilm_transfer"),
            epochs=epochs["minilm_finetune"],
            learning_rate=3e-5,
            **common,
        )
    print_table(rows, profile, args)


def print_table(rows, profile, args):
    print(
        f"\nmovie_sentiment test accuracy ({datetime.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, profile {'quick' if args.quick else 'full'})\n"
    )
    print("| start | test accuracy | parameters | examples/s (predict) |")
    print("| --- | --- | --- | --- |")
    for name, metrics in rows.items():
        parameters = metrics.get("parameters")
        speed = metrics.get("examples_per_second")
        print(
            f"| {name} | {metrics['test_accuracy']:.4f} | {parameters:,} | {speed:,.0f} |"
            if parameters
            else f"| {name} | {metrics['test_accuracy']:.4f} | - | - |"
        )
    student = rows.get("distilled student (ours)")
    if student:
        print(
            f"\nstudent vs teacher: {student['student_layers']} blocks, accuracy kept "
            f"{student['accuracy_kept']:.3f} (teacher {student['teacher_test_accuracy']:.4f}), "
            f"speed-up {student['speedup']:.2f}x"
        )


if __name__ == "__main__":
    main()
