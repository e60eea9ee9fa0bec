"""A tiny GPT's full training step, ours (Keras `fit`) against a plain PyTorch eager one.

At tiny sizes and small batches a training step is mostly per-op overhead, not arithmetic. This
script trains, in one process, the GPT that `python -m workflows pretrain --objective causal
--tokens char` trains (built and compiled as `workflows/pretrain.py` does: `GPTCausalLM` over a
`GPTBackbone` from `model_size_arguments`, AdamW with warm-up and cosine decay, weight decay
0.01 except biases and layer norms, global gradient-norm clipping at 1.0, the task's default
loss and weighted accuracy) against a straightforward PyTorch eager GPT of the same
architecture:

- the same layers and widths: token and learned position embeddings, embedding dropout,
  `--num-layers` pre-norm blocks (layer norm, causal self-attention with biased Q, K, V and
  output projections, dropout on the attention weights and on the attention output; layer
  norm, feed-forward H -> I -> H with biases, tanh GELU, dropout), a final layer norm and an
  LM head tied to the token embedding, dropout 0.1 everywhere, layer-norm epsilon 1e-5;
- the same optimizer: AdamW (betas 0.9, 0.999, epsilon 1e-7 as Keras), the same learning-rate
  schedule, weight decay on the same variables, gradients clipped to global norm 1.0;
- the same batches: `--batch-size` x `--sequence-length` character ids of the Shakespeare
  corpus, cut as the workflow cuts them.

Equal work per step: data, forward, backward, optimizer step, a loss and accuracy metric. Ours
reads a `tf.data` pipeline (the workflow's `make_dataset`; with the default `--data cached`
its first `--cached-batches` batches are cached in memory and repeated, so neither side
tokenizes text while timed; `--data stream` keeps tokenizing as the workflow does). PyTorch
reads the same batches from in-memory tensors in a Python loop (no DataLoader) and keeps the
running loss and accuracy as tensors, as Keras's metrics do.

Timing: the sides (PyTorch and each `--ours` variant: a `--jit-compile` setting and a
`steps_per_execution`, each its own model, built and seeded alike) alternate for `--rounds`
rounds, the order reversed every other round, after one untimed warm-up round each (which
traces, and with XLA compiles, our step), so load from other jobs hits all alike. Each round is
one `fit` call (or one PyTorch loop) of `--steps` steps; its time per step is measured from the
end of the first execution to the end of the last (so `fit`'s per-call start-up is left out).
The table reports the median over rounds of the wall time and of the process's CPU time per
step: on a shared machine the wall time swells whenever a thread waits for a core, the CPU
time much less. Both sides run on `--threads` threads: PyTorch's `set_num_threads` /
`set_num_interop_threads` and TensorFlow's intra- and inter-op pools.

Ops per step: the op count of the train function `fit` runs, with its whole function library
(`keras_transformer.graph_checks.graph_ops`); with XLA, also how many of them run op by op in
the TensorFlow executor (outside the compiled program).

Run from the repository root:
    python -m benchmarks.small_step                        # as the workflow compiles: auto:1
    python -m benchmarks.small_step --ours off:1 on:1 off:8 --threads 1
"""

import argparse
import collections
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import load_average, machine_description  # noqa: E402
from keras_transformer.graph_checks import graph_ops, keras_fit_step  # noqa: E402
from keras_transformer.training.compilation import resolve_jit_compile  # noqa: E402
from workflows import pretrain  # noqa: E402
from workflows.training import make_optimizer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--num-heads", type=int, default=2, help="the tiny size's 2 heads")
    parser.add_argument("--intermediate-dim", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--ours",
        nargs="+",
        default=["auto:1"],
        metavar="JIT:STEPS",
        help="our variants, each `--jit-compile` (auto, on, off) and steps_per_execution; "
        "several are trained side by side (default: auto:1, as the workflow compiles)",
    )
    parser.add_argument("--data", choices=("cached", "stream"), default="cached")
    parser.add_argument("--cached-batches", type=int, default=64)
    parser.add_argument(
        "--torch-attention",
        choices=("sdpa", "manual"),
        default="sdpa",
        help="PyTorch attention: F.scaled_dot_product_attention, or softmax(QK^T)V by hand",
    )
    parser.add_argument("--no-ops", action="store_true", help="skip counting ops per step")
    return parser.parse_args(argv)


def set_threads(threads):
    """Pins TensorFlow's and PyTorch's thread pools to `threads` (before either runs an op)."""
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


# Ours ------------------------------------------------------------------------------------------


def workflow_config(args, total_steps):
    return pretrain.Config(
        objective="causal",
        tokens="char",
        size="tiny",
        num_layers=args.num_layers,
        hidden_dim=args.hidden_dim,
        num_heads=args.num_heads,
        intermediate_dim=args.intermediate_dim,
        sequence_length=args.sequence_length,
        batch_size=args.batch_size,
        steps=total_steps,
    )


def parse_variant(text):
    """`"on:8"` -> `("on", 8)`: a `--jit-compile` setting and a `steps_per_execution`."""
    jit, _, spe = text.partition(":")
    if jit not in ("auto", "on", "off") or not spe.isdigit() or int(spe) < 1:
        raise SystemExit(
            f"--ours {text!r}: expected JIT:STEPS, JIT one of auto, on, off and STEPS a "
            "positive integer (e.g. auto:1 or on:8)."
        )
    return jit, int(spe)


def build_ours(config, vocabulary_size, jit_compile, steps_per_execution):
    """The workflow's model and compile (`workflows/pretrain.py` `run`), on one device, with
    `jit_compile` (`auto`, `on`, `off`) and `steps_per_execution`."""
    keras.utils.set_random_seed(config.seed)
    model = pretrain.build_model(config, vocabulary_size)
    model.compile(
        optimizer=make_optimizer(
            config.learning_rate,
            config.steps,
            config.warmup_steps,
            config.weight_decay,
            config.clip_norm,
        ),
        jit_compile=resolve_jit_compile(jit_compile),
        steps_per_execution=steps_per_execution,
    )
    return model


class StepClock(keras.callbacks.Callback):
    """Records `(steps done, time)` at the end of every execution of the train function."""

    def __init__(self, steps_per_execution):
        super().__init__()
        self.steps_per_execution = steps_per_execution
        self.marks = []

    def on_train_begin(self, logs=None):
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append((batch + 1, time.perf_counter(), time.process_time()))

    def seconds_per_step(self):
        """`(wall seconds, CPU seconds)` per step, from the end of the first execution on."""
        (first_step, first_wall, first_cpu), (last_step, last_wall, last_cpu) = (
            self.marks[0],
            self.marks[-1],
        )
        steps = last_step - first_step
        return (last_wall - first_wall) / steps, (last_cpu - first_cpu) / steps


def train_function_ops(model, dataset):
    """The ops (`graph_ops`, with the function library) of the train function `fit` runs,
    and the names of the library functions XLA compiles (`jit_compile`) with their callees."""
    concrete = keras_fit_step(model, dataset)
    return graph_ops(concrete), xla_functions(concrete.graph.as_graph_def())
    raise RuntimeError("The dataset gave no batch.")


def xla_functions(graph_def):
    """Names of the library functions marked `_XlaMustCompile`, and of all they call."""
    library = {f.signature.name: f for f in graph_def.library.function}
    pending = [name for name, f in library.items() if f.attr["_XlaMustCompile"].b]
    found = set()
    while pending:
        name = pending.pop()
        if name in found or name not in library:
            continue
        found.add(name)
        for node in library[name].node_def:
            for value in node.attr.values():
                pending += [value.func.name] if value.func.name else []
                pending += [f.name for f in value.list.func]
    return found


def count_ops(ops, compiled, steps_per_execution):
    """One line: the train function's ops, how many XLA compiles, the commonest of the rest.

    Placeholders (the function's inputs: the batch and the captured variables) are not run,
    so they are left out of the ops run op by op. With `steps_per_execution` > 1 the step sits
    in a `tf.while_loop` whose body runs once per step, so the ops run per step stay about the
    count of one step's ops (static counts are not divided by it).
    """
    outside = [
        op for op in ops if op.name.split("/", 1)[0] not in compiled and op.type != "Placeholder"
    ]
    kinds = collections.Counter(op.type for op in outside).most_common(6)
    line = f"{len(ops)} ops in the train function"
    if steps_per_execution > 1:
        line += f" ({steps_per_execution} steps per call, in a while loop)"
    if compiled:
        line += f", {len(ops) - len(outside)} of them XLA-compiled or inputs"
    line += f"; {len(outside)} run op by op, commonest: "
    return line + ", ".join(f"{k} {n}" for k, n in kinds)


# PyTorch ---------------------------------------------------------------------------------------


def torch_gpt(
    vocabulary_size, num_layers, hidden_dim, num_heads, intermediate_dim, length, dropout, attention
):
    """A nanoGPT-style GPT: the architecture of our `GPTBackbone` + tied `GPTCausalLM` head."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm = nn.LayerNorm(hidden_dim, eps=1e-5)
            self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)  # Wq, Wk, Wv side by side
            self.output = nn.Linear(hidden_dim, hidden_dim)
            self.feed_forward_norm = nn.LayerNorm(hidden_dim, eps=1e-5)
            self.intermediate = nn.Linear(hidden_dim, intermediate_dim)
            self.down = nn.Linear(intermediate_dim, hidden_dim)
            self.attention_dropout = nn.Dropout(dropout)
            self.residual_dropout = nn.Dropout(dropout)
            self.feed_forward_dropout = nn.Dropout(dropout)
            self.register_buffer("causal", torch.ones(length, length, dtype=torch.bool).tril())

        def attend(self, x):
            b, t, h = x.shape
            q, k, v = self.qkv(x).split(h, dim=2)
            q, k, v = (z.view(b, t, num_heads, h // num_heads).transpose(1, 2) for z in (q, k, v))
            if attention == "sdpa":
                p = dropout if self.training else 0.0
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:
                scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(h // num_heads))
                scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
                y = self.attention_dropout(scores.softmax(dim=-1)) @ v
            y = y.transpose(1, 2).reshape(b, t, h)
            return self.residual_dropout(self.output(y))

        def forward(self, x):
            x = x + self.attend(self.attention_norm(x))
            y = F.gelu(self.intermediate(self.feed_forward_norm(x)), approximate="tanh")
            return x + self.feed_forward_dropout(self.down(y))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(vocabulary_size, hidden_dim)
            self.position_embedding = nn.Embedding(length, hidden_dim)
            self.dropout = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(Block() for _ in range(num_layers))
            self.final_norm = nn.LayerNorm(hidden_dim, eps=1e-5)
            for name, parameter in self.named_parameters():
                if parameter.dim() >= 2:
                    nn.init.trunc_normal_(parameter, std=0.02, a=-0.04, b=0.04)
                elif name.endswith("bias"):
                    nn.init.zeros_(parameter)

        def forward(self, token_ids):
            t = token_ids.shape[1]
            positions = self.position_embedding.weight[:t]
            x = self.dropout(self.token_embedding(token_ids) + positions)
            for block in self.blocks:
                x = block(x)
            return self.final_norm(x) @ self.token_embedding.weight.T  # tied head, (B, T, V)

    return GPT()


def torch_optimizer(model, config):
    """AdamW as `make_optimizer`: the same schedule, decay on all but biases and norms."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(0.9, 0.999),
        eps=1e-7,
    )
    schedule = keras_schedule(config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: float(schedule(step)) / config.learning_rate
    )
    return optimizer, scheduler


def keras_schedule(config):
    """The learning rate of step k (0-based), as `make_optimizer`'s schedule, in plain Python."""
    warmup = min(config.warmup_steps, max(config.steps - 2, 0))
    decay_steps = max(config.steps - 1 - warmup, 1)
    peak = config.learning_rate

    def rate(step):
        if warmup and step < warmup:
            return peak * step / warmup
        progress = min(step - warmup, decay_steps) / decay_steps
        return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    return rate


class TorchTrainer:
    """The PyTorch training loop: batches from in-memory tensors, running loss and accuracy."""

    def __init__(self, model, optimizer, scheduler, inputs, targets, clip_norm):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.inputs, self.targets, self.clip_norm = inputs, targets, clip_norm
        self.index = 0

    def run(self, steps):
        """Runs `steps` steps; returns `(wall, CPU)` seconds per step after the first, and the
        running loss and accuracy."""
        import torch
        from torch.nn import functional as F

        self.model.train()
        loss_sum = torch.zeros(())
        correct = torch.zeros(())
        count = 0
        marks = []
        for _ in range(steps):
            x = self.inputs[self.index % len(self.inputs)]  # (B, T)
            y = self.targets[self.index % len(self.targets)]
            self.index += 1
            logits = self.model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            with torch.no_grad():
                loss_sum += loss.detach()
                correct += (logits.argmax(-1) == y).float().mean()
                count += 1
            marks.append((time.perf_counter(), time.process_time()))
        steps = len(marks) - 1
        wall = (marks[-1][0] - marks[0][0]) / steps
        cpu = (marks[-1][1] - marks[0][1]) / steps
        return (wall, cpu), float(loss_sum / count), float(correct / count)


# The comparison --------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    import torch

    total_steps = (args.rounds + 1) * args.steps
    config = workflow_config(args, total_steps)
    print(f"# {machine_description()}; torch {torch.__version__}", flush=True)
    print(
        f"# threads: {args.threads} (TF intra/inter-op, torch num_threads/interop); "
        f"load average {load_average()}",
        flush=True,
    )

    train_texts, _ = pretrain.load_corpus(config.corpus, config.seed)
    tokenizer = pretrain.build_tokenizer(config, train_texts)
    preprocessor = pretrain.make_preprocessor(config, tokenizer)
    dataset = pretrain.make_dataset(config, train_texts, preprocessor, args.batch_size, True)
    cached = dataset.take(args.cached_batches).cache()
    dataset = cached.repeat() if args.data == "cached" else dataset.repeat()
    vocabulary_size = tokenizer.vocabulary_size()

    # The same batches for PyTorch, as in-memory int64 tensors.
    batches = [(x["token_ids"].numpy(), y.numpy()) for x, y, _ in cached]
    inputs = [torch.from_numpy(x.astype(np.int64)) for x, _ in batches]
    targets = [torch.from_numpy(y.astype(np.int64)) for _, y in batches]

    variants = [parse_variant(text) for text in args.ours]
    models = {
        f"ours {jit}:{spe}": build_ours(config, vocabulary_size, jit, spe) for jit, spe in variants
    }
    torch.manual_seed(config.seed)
    theirs = torch_gpt(
        vocabulary_size,
        args.num_layers,
        args.hidden_dim,
        args.num_heads,
        args.intermediate_dim,
        args.sequence_length,
        config.dropout,
        args.torch_attention,
    )
    ours_params = next(iter(models.values())).count_params()
    theirs_params = sum(p.numel() for p in theirs.parameters())
    if ours_params != theirs_params:
        raise RuntimeError(
            f"The two models differ in size: ours {ours_params:,} parameters, PyTorch's "
            f"{theirs_params:,}. Fix torch_gpt to match the architecture."
        )
    optimizer, scheduler = torch_optimizer(theirs, config)
    trainer = TorchTrainer(theirs, optimizer, scheduler, inputs, targets, config.clip_norm)
    print(
        f"# model: {args.num_layers} layers x {args.hidden_dim} (heads {args.num_heads}, "
        f"feed-forward {args.intermediate_dim}), vocabulary {vocabulary_size}, "
        f"{ours_params:,} parameters; batch {args.batch_size} x {args.sequence_length}; "
        f"data {args.data}; PyTorch attention {args.torch_attention}",
        flush=True,
    )
    for name, model in models.items():
        line = f"# {name}: jit_compile={model.jit_compile}, "
        line += f"steps_per_execution={model.steps_per_execution}"
        if not args.no_ops:
            ops, compiled = train_function_ops(model, dataset)
            line += f"; {count_ops(ops, compiled, model.steps_per_execution)}"
        print(line, flush=True)

    unit = math.lcm(*(spe for _, spe in variants))
    steps = max(math.ceil(args.steps / unit), 2) * unit
    clocks = {name: StepClock(model.steps_per_execution) for name, model in models.items()}

    def run(side):
        if side == "PyTorch":
            return trainer.run(steps)[0]
        models[side].fit(
            dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clocks[side]]
        )
        return clocks[side].seconds_per_step()

    for name in models:
        start = time.perf_counter()
        run(name)  # warm-up: traces (and compiles) the step
        print(
            f"# {name}: warm-up round (trace, compile, {steps} steps) "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
    run("PyTorch")
    sides = [*models, "PyTorch"]
    results = {side: [] for side in sides}
    for round_index in range(args.rounds):
        order = sides if round_index % 2 == 0 else sides[::-1]
        for side in order:
            results[side].append(run(side))
        print(
            f"  round {round_index + 1}: "
            + ", ".join(
                f"{side} {results[side][-1][0] * 1e3:.1f} ms/step "
                f"({results[side][-1][1] * 1e3:.1f} CPU-ms)"
                for side in sides
            ),
            flush=True,
        )

    def median_ms(side, which):
        return statistics.median(r[which] for r in results[side]) * 1e3

    torch_ms, torch_cpu_ms = median_ms("PyTorch", 0), median_ms("PyTorch", 1)
    print(
        f"PyTorch {torch_ms:.1f} ms/step ({torch_cpu_ms:.1f} CPU-ms); medians of {args.rounds} "
        f"rounds of {steps} steps; load average {load_average()}",
        flush=True,
    )
    for name in models:
        ours_ms, ours_cpu_ms = median_ms(name, 0), median_ms(name, 1)
        print(
            f"{name}: {ours_ms:.1f} ms/step ({ours_cpu_ms:.1f} CPU-ms): ratio "
            f"{torch_ms / ours_ms:.2f} wall, {torch_cpu_ms / ours_cpu_ms:.2f} CPU "
            "(PyTorch / ours: >1, ours faster)",
            flush=True,
        )
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
