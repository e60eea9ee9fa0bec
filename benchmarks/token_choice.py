"""Which tokens for the main job's GPT: validation bits per character at equal wall-clock.

Trains the main job's GPT (its default profile: 4 layers, width 128, context 128 tokens, batch
32) on the built-in Shakespeare corpus once per tokenization, characters and byte-level BPE
at a few vocabulary sizes, each for the same wall-clock budget, with `workflows pretrain`
itself; then scores every model on the whole validation split in bits per character
(`keras_transformer.training.evaluation.bits_per_character`), the one unit in which a
character model and a BPE model compare. The lowest wins.

Equal time, whatever else runs: a first phase times training steps of all contenders in
alternating rounds, in wall-clock and in CPU time of this process, and gives each the number
of steps that fits the budget, `--seconds` of CPU time, at its own cost per step; the run
trains those steps with the usual warm-up and cosine schedule. On a machine of its own a
step's wall time follows its CPU time, so equal CPU budgets are equal wall-clock budgets; on
a shared machine wall time swings with the other jobs while CPU time stays the work done, and
the steps, not a clock, end each run, so load that comes and goes cannot cut one row short
(a guard stops a row at 6x the budget plus 2 minutes of wall-clock). The table shows both
costs per step, the steps each row got and the wall seconds they took (with the first step's
tracing). Learning the BPE merges happens before and is not counted (its own column).

    python -m benchmarks.token_choice                 # ~15 min, publishes docs/BENCHMARKS.md
    python -m benchmarks.token_choice --seconds 400   # a longer budget per row
    python -m benchmarks.token_choice --quick         # ~1 min tiny run; published only if asked
"""

import argparse
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from benchmarks.common import (  # noqa: E402
    interleaved_with_cpu,
    load_average,
    machine_description,
    markdown_table,
)
from benchmarks.publish import add_arguments, check_or_exit, publishing, replace_block  # noqa: E402
from keras_transformer.preprocessing import load_preprocessor  # noqa: E402
from keras_transformer.training.evaluation import bits_per_character  # noqa: E402
from workflows import main_job, pretrain  # noqa: E402

BLOCK = "token_choice"
DEFAULT_SIZES = (500, 1000, 2000)


def main_job_settings():
    """The GPT settings of the main job's default profile (model, context, batch, rates)."""
    profile = main_job.PROFILES["default"]["gpt"]
    keep = ("num_layers", "hidden_dim", "num_heads", "intermediate_dim", "sequence_length")
    settings = {key: profile[key] for key in keep}
    settings.update(main_job.GPT_TRAINING)
    return settings


def contenders(vocabulary_sizes):
    """`[(name, pretrain settings)]`: characters, then BPE at each vocabulary size."""
    rows = [("char", {"tokens": "char"})]
    rows += [
        (f"bpe-{size}", {"tokens": "bpe", "vocabulary_size": size}) for size in vocabulary_sizes
    ]
    return rows


def step_seconds(configs, texts, rounds, warmup=3):
    """Median wall-clock and CPU seconds of one training step of each config.

    Each contender gets its own tokenizer (BPE merges learned here, timed), dataset batch and
    compiled model, as `workflows pretrain` builds them. After `warmup` untimed steps each,
    the contenders take one step in turn, `rounds` times, the order flipping every round, so
    that drift in the machine's load hits all alike. CPU time is this process's (all its
    threads): while one model steps, nothing else in the process runs.

    Returns:
        `(wall, cpu, merge_seconds)`: dicts name -> median seconds per step, and name ->
        seconds taken to learn the BPE merges.
    """
    steps, merge_seconds = {}, {}
    for name, config in configs.items():
        start = time.perf_counter()
        tokenizer = pretrain.build_tokenizer(config, texts)
        merge_seconds[name] = time.perf_counter() - start
        preprocessor = pretrain.make_preprocessor(config, tokenizer)
        dataset = pretrain.make_dataset(config, texts[:200], preprocessor, config.batch_size, True)
        x, y, weights = next(iter(dataset))
        model = pretrain.build_model(config, tokenizer.vocabulary_size())
        model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate))

        def step(model=model, x=x, y=y, weights=weights):
            model.train_on_batch(x, y, sample_weight=weights)

        steps[name] = step
    wall, cpu = interleaved_with_cpu(steps, rounds, warmup)
    return wall, cpu, merge_seconds


def measure(seconds, vocabulary_sizes, corpus="shakespeare", overrides=None, rounds=10):
    """Trains and scores every contender; returns the table rows as dicts, best first."""
    base = {**main_job_settings(), **(overrides or {}), "corpus": corpus}
    train_texts, validation_texts = pretrain.load_corpus(corpus, base.get("seed", 0))
    configs = {
        name: pretrain.Config(**base, **settings, num_samples=0, verbose=0)
        for name, settings in contenders(vocabulary_sizes)
    }
    print(f"[token_choice] timing steps of {', '.join(configs)} ...", flush=True)
    wall, per_step, merge_seconds = step_seconds(configs, train_texts, rounds)
    rows = []
    with tempfile.TemporaryDirectory(prefix="token-choice-") as folder:
        for name, config in configs.items():
            steps = max(2, int(seconds / per_step[name]))
            config = pretrain.Config(
                **{
                    **{f: getattr(config, f) for f in config.__dataclass_fields__},
                    "steps": steps,
                    "max_seconds": 6.0 * seconds + 120.0,
                    "eval_interval": steps,
                    "warmup_steps": min(config.warmup_steps, steps // 10),
                    "output_dir": os.path.join(folder, name),
                }
            )
            print(
                f"[token_choice] {name}: {per_step[name] * 1000:.0f} CPU ms/step "
                f"({wall[name] * 1000:.0f} ms wall) -> {steps} steps in {seconds:.0f} CPU-s "
                f"(load {load_average()})",
                flush=True,
            )
            result = pretrain.run(config)
            model = keras.saving.load_model(result.model_path, compile=False)
            preprocessor = load_preprocessor(os.path.join(result.run_dir, "preprocessor.json"))
            score = bits_per_character(model, preprocessor, validation_texts)
            rows.append(
                {
                    "name": name,
                    "vocabulary": preprocessor.tokenizer.vocabulary_size(),
                    "characters_per_token": score["characters_per_token"],
                    "step_ms": wall[name] * 1000,
                    "step_cpu_ms": per_step[name] * 1000,
                    "steps": result.steps,
                    "train_seconds": result.seconds,
                    "merge_seconds": merge_seconds[name],
                    "bits_per_character": score["bits_per_character"],
                    "loss_per_token": score["loss_per_token"],
                    "characters": score["characters"],
                }
            )
            print(
                f"[token_choice] {name}: {score['bits_per_character']:.4f} bits per character "
                f"({result.steps} steps, {result.seconds:.0f} s wall)",
                flush=True,
            )
    return sorted(rows, key=lambda row: row["bits_per_character"])


def report(rows, seconds, corpus, overrides=None):
    """The markdown block: machine, settings, the table best first, and the winner."""
    header = ("tokens", "vocabulary", "chars/token", "CPU ms/step", "wall ms/step", "steps",
              "train s", "merges s", "validation bits/char", "loss/token")  # fmt: skip
    table = markdown_table(
        header,
        [
            (
                row["name"],
                f"{row['vocabulary']:,}",
                f"{row['characters_per_token']:.2f}",
                f"{row['step_cpu_ms']:.0f}",
                f"{row['step_ms']:.0f}",
                f"{row['steps']:,}",
                f"{row['train_seconds']:.0f}",
                f"{row['merge_seconds']:.1f}" if row["name"] != "char" else "-",
                f"{row['bits_per_character']:.4f}",
                f"{row['loss_per_token']:.3f}",
            )
            for row in rows
        ],
    )
    best = rows[0]
    settings = {**main_job_settings(), **(overrides or {})}
    who = "A --quick GPT" if overrides else "The main job's GPT"
    return "\n".join(
        [
            f"`python -m benchmarks.token_choice --seconds {seconds:g}` on {machine_description()}"
            f" (load average at the end {load_average()}).",
            "",
            f"{who} ({settings['num_layers']} block(s), width {settings['hidden_dim']}, "
            f"context {settings['sequence_length']} tokens, batch {settings['batch_size']}) "
            f"trained {seconds:g} CPU-seconds per row on `{corpus}`; bits per character over "
            f"the whole validation split ({rows[0]['characters']:,} characters for the best "
            "row).",
            "",
            table,
            "",
            f"Winner: **{best['name']}** ({best['bits_per_character']:.4f} bits per character).",
        ]
    )


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=240.0, help="training budget per row, CPU-seconds"
    )
    parser.add_argument(
        "--vocabulary-sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="comma-separated BPE vocabulary sizes",
    )
    parser.add_argument("--corpus", default="shakespeare", help="pretrain's --corpus")
    parser.add_argument("--quick", action="store_true", help="a tiny model, 5 s per row")
    add_arguments(parser)
    arguments = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in arguments.vocabulary_sizes.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--vocabulary-sizes takes integers: {arguments.vocabulary_sizes!r}")
    if any(size < 257 for size in sizes) or not sizes:
        parser.error("--vocabulary-sizes: each BPE vocabulary holds the 256 bytes and more.")
    if not math.isfinite(arguments.seconds) or arguments.seconds <= 0:
        parser.error("--seconds must be a positive number.")
    arguments.sizes = sizes
    return arguments


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    if publishing(arguments):
        check_or_exit([(arguments.docs, BLOCK)])  # before the training, not after
    overrides = None
    if arguments.quick:
        overrides = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64,
                     "sequence_length": 32, "eval_batches": 2}  # fmt: skip
        arguments.seconds = min(arguments.seconds, 5.0)
    rows = measure(arguments.seconds, arguments.sizes, arguments.corpus, overrides)
    text = report(rows, arguments.seconds, arguments.corpus, overrides)
    print(text)
    if publishing(arguments):
        replace_block(arguments.docs, BLOCK, text, source="python -m benchmarks.token_choice")
        print(f"[token_choice] published into {arguments.docs} ({BLOCK})")
    return rows


if __name__ == "__main__":
    main()
