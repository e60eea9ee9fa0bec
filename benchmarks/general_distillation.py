"""General distillation: MiniLM fine-tuned vs a task-level and a general (compress) student.

Issue 18's target table, on `movie_sentiment`. Runs the workflows in order, each into its own
folder under --output-dir (a rerun skips the steps whose metrics.json exists, and the table
says which):

1. teacher: the pretrained all-MiniLM-L6-v2 fine-tuned whole with a new head (`finetune
   --init-from minilm`, Hugging Face's standard recipe: 2 epochs, 5e-5);
2. task-level student: `distill` of that fine-tuned teacher (half its blocks, the full
   vocabulary; distilled on the task's labelled texts);
3. general student: `compress` of the pretrained MiniLM on the built-in unlabelled text (half
   its blocks, the vocabulary pruned to that text), then `finetune` exactly as the teacher was
   (same epochs and learning rate).

Then, in this one process: the three classifiers predict the same test batch (each through its
own tokenizer, outside the timing), alternating in rounds whose order flips (examples/s as the
median; their ratio is what the target reads), and each classifier's encoder, as a sentence
encoder (mean pooling), is compared with the pretrained MiniLM over sentence pairs of the
built-in validation text: the Spearman correlation of the two models' cosine similarities and
whether MiniLM's two reference pairs keep their order. The general student's encoder row is
the `compress` output itself, before any fine-tuning.

Targets (issue 18): the general student keeps >= 97% of the teacher's test accuracy with >= 40%
fewer parameters and >= 2x its examples/s; as a sentence encoder, Spearman >= 0.9 and the
reference order kept.

    python -m benchmarks.general_distillation           # ~1 h on 2 cores; docs/BENCHMARKS.md
    python -m benchmarks.general_distillation --compress-steps 750
    python -m benchmarks.general_distillation --quick   # one epoch each, 20 compress steps
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    interleaved,
    load_average,
    machine_description,
    markdown_table,
)
from benchmarks.publish import add_arguments, check_or_exit, publishing, replace_block  # noqa: E402

BLOCK = "general_distillation"
PROFILES = {
    "full": {
        "finetune_epochs": 2,
        "distill_epochs": 2,
        "compress_steps": 1000,
        "compress_eval_interval": 250,
    },
    "quick": {
        "finetune_epochs": 1,
        "distill_epochs": 1,
        "compress_steps": 20,
        "compress_eval_interval": 10,
    },
}
FINETUNE_RATE, DISTILL_RATE = 5e-5, 1e-4
TARGETS = {"parameters_saved": 0.40, "accuracy_kept": 0.97, "speedup": 2.0, "spearman": 0.9}


def step(name, module, folder, reused, timings, **settings):
    """Runs one workflow into `folder/name` unless its metrics.json exists; returns its metrics."""
    run_dir = os.path.join(folder, name)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(metrics_path):
        print(f"[general_distillation] {name}: done before, reusing {metrics_path}", flush=True)
        reused.append(name)
    else:
        print(f"[general_distillation] {name} ...", flush=True)
        started = time.monotonic()
        module.run(module.Config(output_dir=run_dir, verbose=2, **settings))
        timings[name] = time.monotonic() - started
    with open(metrics_path, encoding="utf-8") as file:
        return json.load(file)


def classifier_speeds(run_dirs, texts, repeats):
    """`{name: examples/s}` of the classifiers in `run_dirs`, timed side by side on `texts`."""
    import keras
    import tensorflow as tf

    from keras_transformer.preprocessing import load_preprocessor

    calls = {}
    for name, run_dir in run_dirs.items():
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
        preprocessor = load_preprocessor(os.path.join(run_dir, "preprocessor.json"))
        x = preprocessor(tf.constant(texts))
        calls[name] = lambda model=model, x=x: model.predict_on_batch(x)
    seconds = interleaved(calls, repeats)
    return {name: len(texts) / value for name, value in seconds.items()}


def encoder_agreement(encoders, corpus, pairs, seed):
    """`{name: similarity agreement with the pretrained MiniLM}` of each `(backbone, text)`."""
    from keras_transformer.preprocessing import ClassifierPreprocessor
    from workflows import classify, compress, pretrain

    reference = classify.load_base("minilm")
    reference_text = ClassifierPreprocessor(reference.tokenizer, 128)
    _, validation_texts = pretrain.load_corpus(corpus, seed)
    return {
        name: compress.similarity_agreement(
            reference.backbone,
            reference_text,
            backbone,
            ClassifierPreprocessor(tokenizer, 128),
            "mean",
            validation_texts,
            pairs,
            seed,
        )
        for name, (backbone, tokenizer) in encoders.items()
    }


def file_mb(run_dir):
    return os.path.getsize(os.path.join(run_dir, "model.keras")) / 1e6


def table(rows, speeds, agreement, teacher):
    """The target table as markdown rows."""
    header = [
        "model",
        "blocks x width",
        "vocabulary",
        "parameters",
        "fewer than teacher",
        "model.keras MB",
        "examples/s",
        "speed vs teacher",
        "test accuracy",
        "accuracy kept",
        "similarity Spearman",
        "reference order",
    ]
    lines = []
    for name, row in rows.items():
        classifier = row.get("metrics")
        encoder = agreement[name]
        speed = speeds.get(name)
        lines.append(
            [
                name,
                row["shape"],
                f"{row['vocabulary']:,}",
                f"{row['parameters']:,}",
                f"{1 - row['parameters'] / teacher['parameters']:.1%}",
                f"{row['file_mb']:.1f}",
                f"{speed:,.0f}" if speed else "-",
                f"{speed / speeds['teacher']:.2f}x" if speed else "-",
                f"{classifier['test_accuracy']:.4f}" if classifier else "-",
                f"{classifier['test_accuracy'] / teacher['test_accuracy']:.3f}"
                if classifier
                else "-",
                f"{encoder['similarity_spearman']:.3f}",
                "kept" if encoder["reference_order_kept"] else "NOT kept",
            ]
        )
    return markdown_table(header, lines)


def verdicts(general, teacher, speeds, encoder):
    """One line per target: the measured value, the target, met or not."""
    saved = 1 - general["parameters"] / teacher["parameters"]
    kept = general["test_accuracy"] / teacher["test_accuracy"]
    speedup = speeds["general student"] / speeds["teacher"]
    checks = [
        ("parameters saved", saved, TARGETS["parameters_saved"], f"{saved:.1%}", ">= 40%"),
        ("accuracy kept", kept, TARGETS["accuracy_kept"], f"{kept:.3f}", ">= 0.97"),
        ("speed vs teacher", speedup, TARGETS["speedup"], f"{speedup:.2f}x", ">= 2x"),
        (
            "similarity Spearman (encoder)",
            encoder["similarity_spearman"],
            TARGETS["spearman"],
            f"{encoder['similarity_spearman']:.3f}",
            ">= 0.9",
        ),
    ]
    lines = [
        f"- {name}: {shown} (target {target}): {'met' if value >= bound else 'NOT met'}"
        for name, value, bound, shown, target in checks
    ]
    order = encoder["reference_order_kept"]
    pairs = "; ".join(
        f"{pair['texts'][0]!r} / {pair['texts'][1]!r}: MiniLM {pair['teacher_cosine']:.3f}, "
        f"student {pair['student_cosine']:.3f}"
        for pair in encoder["reference_pairs"]
    )
    lines.append(f"- reference pairs ({pairs}): order {'kept: met' if order else 'NOT kept'}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/general_distillation")
    parser.add_argument("--quick", action="store_true", help="one epoch each, 20 compress steps")
    parser.add_argument("--compress-steps", type=int, help="compress steps (default 1,000)")
    parser.add_argument("--pairs", type=int, default=1000, help="sentence pairs of the Spearman")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds of the speed")
    parser.add_argument("--batch-size", type=int, default=32, help="batch of the speed test")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.compress_steps is not None and args.compress_steps <= 0:
        parser.error(f"--compress-steps must be positive; got {args.compress_steps}")
    if publishing(args):
        check_or_exit([(args.docs, BLOCK)])  # before the hour, not after
    import keras

    from workflows import classify, compress, distill, finetune

    started = datetime.datetime.now().astimezone()
    machine, load_at_start = machine_description(), load_average()
    profile = dict(PROFILES["quick" if args.quick else "full"])
    if args.compress_steps is not None:
        profile["compress_steps"] = args.compress_steps
        profile["compress_eval_interval"] = min(
            profile["compress_eval_interval"], args.compress_steps
        )
    folder = args.output_dir
    os.makedirs(folder, exist_ok=True)
    reused, timings = [], {}
    path = lambda name: os.path.join(folder, name)  # noqa: E731

    run = lambda name, module, **settings: step(  # noqa: E731
        name, module, folder, reused, timings, **settings
    )
    finetune_epochs = profile["finetune_epochs"]
    teacher = run(
        "teacher", finetune, init_from="minilm", epochs=finetune_epochs, learning_rate=FINETUNE_RATE
    )
    task_student = run(
        "task_student",
        distill,
        init_from=path("teacher"),
        epochs=profile["distill_epochs"],
        learning_rate=DISTILL_RATE,
    )
    general = run(
        "general",
        compress,
        steps=profile["compress_steps"],
        eval_interval=profile["compress_eval_interval"],
    )
    # The general student is fine-tuned exactly as the teacher was.
    general_student = run(
        "general_student",
        finetune,
        init_from=path("general"),
        epochs=finetune_epochs,
        learning_rate=FINETUNE_RATE,
    )

    classifiers = {
        "teacher": "teacher",
        "task-level student": "task_student",
        "general student": "general_student",
    }
    test = classify.load_splits(finetune.Config()).test
    texts = test.texts[: args.batch_size]
    print("[general_distillation] timing the three classifiers side by side ...", flush=True)
    speeds = classifier_speeds({n: path(d) for n, d in classifiers.items()}, texts, args.repeats)

    rows, encoders = {}, {}
    for name, run in [*classifiers.items(), ("general student, encoder only", "general")]:
        base = classify.load_base(path(run))
        backbone = base.backbone
        metrics = {"teacher": teacher, "task-level student": task_student}.get(name)
        if name == "general student":
            metrics = general_student
        rows[name] = {
            "shape": f"{backbone.num_layers} x {backbone.hidden_dim}",
            "vocabulary": backbone.vocabulary_size,
            "parameters": int(
                base.classifier.count_params() if base.classifier else backbone.count_params()
            ),
            "file_mb": file_mb(path(run)),
            "metrics": metrics,
        }
        encoders[name] = (backbone, base.tokenizer)
    print("[general_distillation] sentence similarities against MiniLM ...", flush=True)
    agreement = encoder_agreement(encoders, compress.Config().corpus, args.pairs, seed=0)
    keras.backend.clear_session()

    teacher_row = {**rows["teacher"], "test_accuracy": teacher["test_accuracy"]}
    general_row = {**rows["general student"], "test_accuracy": general_student["test_accuracy"]}
    quick = " --quick" if args.quick else ""
    steps_flag = f" --compress-steps {args.compress_steps}" if args.compress_steps else ""
    lines = [
        f"`python -m benchmarks.general_distillation{quick}{steps_flag}`, started "
        f"{started:%Y-%m-%d %H:%M %Z}; {machine}; load average (1, 5, 15 min) {load_at_start} "
        f"at the start, {load_average()} at the end.",
        "",
        f"movie_sentiment test split; examples/s: median of {args.repeats} side-by-side "
        f"`predict_on_batch` rounds on {len(texts)} test texts (64 tokens); parameters of the "
        "classifiers (encoder only on the last row); similarity Spearman: each encoder's cosine "
        f"similarities (mean pooling) against the pretrained MiniLM's over {args.pairs:,} "
        "sentence pairs of the built-in validation text.",
        "",
        table(rows, speeds, agreement, teacher_row),
        "",
        f"General student vs the fine-tuned teacher (`compress` {general['student_layers']} "
        f"blocks, vocabulary {general['teacher_vocabulary_size']:,} -> "
        f"{general['student_vocabulary_size']:,}, {profile['compress_steps']:,} steps in "
        f"{general['distillation_seconds'] / 60:.1f} min; then finetune {finetune_epochs} "
        f"epochs at {FINETUNE_RATE:g}, as the teacher):",
        *verdicts(general_row, teacher_row, speeds, agreement["general student, encoder only"]),
    ]
    if timings:
        lines += [
            "",
            "Wall time per step of this run: "
            + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in timings.items())
            + ".",
        ]
    if reused:
        lines += ["", f"Reused from an earlier run in {folder}: {', '.join(reused)}."]
    text = "\n".join(lines)
    print("\n" + text)
    if publishing(args):
        replace_block(args.docs, BLOCK, text, source="python -m benchmarks.general_distillation")
        print(f"\nWritten to the {BLOCK!r} block of {args.docs}.")


if __name__ == "__main__":
    main()
