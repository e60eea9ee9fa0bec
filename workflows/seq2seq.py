"""seq2seq: trains an encoder-decoder Transformer from scratch on source -> target pairs.

Trains `keras_transformer.models.Seq2SeqTransformer` (the original Transformer: encoder,
decoder with cross attention, output layer tied to the token embedding) on one of:

- `cmudict` (default): grapheme-to-phoneme, a word's spelling -> its ARPAbet phonemes, on the
  CMU Pronouncing Dictionary split by word; every listed pronunciation is a training target
  and a prediction is right if it equals any of them.
- `date_to_iso`: dates written 18 ways -> ISO 8601 (small and fast: the quick check).
- a TSV file of `source<TAB>target` lines (e.g. a Tatoeba translation file; columns after
  the second are ignored). A line without a tab or with an empty side stops the run with an
  error naming the file and line. Sources are split 80/10/10 by a hash of the source; the
  targets of a source listed on several lines all count as right.

    python -m workflows seq2seq --dataset date_to_iso --steps 1500
    python -m workflows seq2seq --dataset pairs.tsv --tokens bpe --vocabulary-size 4000

Tokens: `--tokens` for the sources and `--target-tokens` for the targets, each `char`,
`wordpiece` (case kept) or `bpe` (byte-level, lossless); `--vocabulary shared` learns one
vocabulary from both sides, `separate` one per side (laid out without overlapping ids). The
`auto` defaults: characters and one shared vocabulary, except for cmudict: characters in,
phonemes out (WordPiece over the phoneme strings: one token per phoneme), separate.

Lengths: `--encoder-sequence-length` S holds a source and its `[EOS]`;
`--decoder-sequence-length` T holds `[BOS]` and a target. Unset, they fit the longest
training pair (at most 256). A longer source is truncated to its first S - 1 tokens, a
longer target to its first T - 1; the run prints how many of each split were cut and
metrics.json records them (`truncated`).

Training: teacher forcing (the decoder reads the target shifted right and predicts each
next token), cross-entropy with `--label-smoothing` averaged over the real target tokens,
each batch padded only to its own longest source and target (`--padding batch`; `full` pads
every batch to S and T; `--length-buckets` draws each training batch from pairs of similar
source length), AdamW with linear warm-up and cosine decay, evaluation (validation loss and
token accuracy) and a checkpoint every
`--eval-interval` steps, early stopping after `--patience` evaluations without a lower
validation loss (best weights restored; a resumed run starts counting afresh), under any
`--strategy` (also several workers: `--workers` or `TF_CONFIG`). A killed run resumes from
its last checkpoint when started again with the same `--output-dir`, skipping the batches
already trained on; with `--dropout 0` it ends with the very weights of an uninterrupted run
(the checkpoint does not hold the dropout layers' random-number states, so with dropout the
masks after a resume differ).

Test: the test split (`--test-examples` of it, drawn at random; 0: all) is decoded greedily
and with beam search (`--num-beams`); metrics.json holds, for each, `exact_match`, for
cmudict `wer` and `per`, for a TSV `bleu` and `chrf` (sacrebleu), e.g. `greedy_wer`,
`beam4_wer`.

A prediction is the generated ids after `[BOS]` up to `[EOS]`, without special tokens and
without the other side's placeholder ids (`seq2seq_data.output_ids`), detokenized by the
target tokenizer.

Outputs (in --output-dir, default runs/seq2seq-<time>/): config.json (the `auto` settings
resolved), model.keras, preprocessor.json (the `Seq2SeqPreprocessor`: both tokenizers, S and
T, the special tokens: what an export needs to serve the run as it trained), tokenizer.json
(the source tokenizer), history.json, metrics.json, predictions.tsv (`source, greedy, beam,
references...` per test source, a header first), train_loss.json and tensorboard/.
"""

import dataclasses
import math
import os
import time

import keras
import tensorflow as tf

from keras_transformer import training
from keras_transformer.data import pipelines
from keras_transformer.models import Seq2SeqBackbone, Seq2SeqTransformer, TokenMeanCrossEntropy
from keras_transformer.preprocessing import Seq2SeqPreprocessor, save_preprocessor
from keras_transformer.text.io import save_tokenizer
from keras_transformer.training.compilation import resolve_jit_compile
from workflows import seq2seq_data, seq2seq_eval
from workflows.config import (
    jit_compile_setting,
    precision_setting,
    setting,
    write_json_atomic,
)
from workflows.pretrain import with_known_cardinality
from workflows.training import (
    fit,
    make_optimizer,
    model_size_arguments,
    save_model_atomic,
    start,
    write_history,
)

TOKENS = ("auto", *seq2seq_data.TOKEN_KINDS)


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = setting("cmudict", "cmudict, date_to_iso, or a TSV file of source<TAB>target")
    tokens: str = setting("auto", "source tokens: char, wordpiece or bpe", TOKENS)
    target_tokens: str = setting("auto", "target tokens: char, wordpiece or bpe", TOKENS)
    vocabulary: str = setting(
        "auto", "one vocabulary for both sides, or one each", ("auto", "shared", "separate")
    )
    vocabulary_size: int = setting(1000, "size of a learned WordPiece or BPE vocabulary")
    encoder_sequence_length: int | None = setting(None, "S, [EOS] included (unset: fit data)")
    decoder_sequence_length: int | None = setting(None, "T, [BOS] included (unset: fit data)")
    train_examples: int = setting(
        0, "train on this many training sources, drawn at random (0: all)"
    )
    test_examples: int = setting(2000, "test sources decoded, drawn at random (0: all)")
    size: str = setting("tiny", "model size: tiny, mini, small, medium, base")
    num_layers: int | None = setting(None, "override the size's encoder and decoder blocks")
    hidden_dim: int | None = setting(None, "override the size's width")
    num_heads: int | None = setting(None, "override the size's attention heads")
    intermediate_dim: int | None = setting(None, "override the size's feed-forward width")
    normalize_first: bool = setting(True, "pre-norm blocks (else post-norm, as the original)")
    dropout: float = setting(0.1, "dropout rate")
    label_smoothing: float = setting(
        0.1, "share of each label's probability spread over all tokens"
    )
    batch_size: int = setting(64, "global batch size of training pairs (split across replicas)")
    padding: str = setting(
        "batch",
        "pad each batch to its own longest source and target (batch), or to S and T (full)",
        ("batch", "full"),
    )
    length_buckets: int = setting(
        0, "draw each training batch from one of this many source-length buckets (0: off)"
    )
    steps: int = setting(3000, "training steps")
    max_seconds: float = setting(0.0, "stop training after this many seconds (0: no limit)")
    learning_rate: float = setting(1e-3, "peak learning rate (AdamW)")
    warmup_steps: int = setting(200, "linear warm-up steps before cosine decay")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    clip_norm: float = setting(1.0, "global gradient-norm clipping (0: none)")
    eval_interval: int = setting(500, "steps between evaluations (and resumable checkpoints)")
    eval_batches: int = setting(20, "validation batches per evaluation")
    patience: int = setting(0, "stop after this many evaluations without progress (0: off)")
    num_beams: int = setting(4, "beams of the beam-search decoding of the test split")
    length_penalty: float = setting(1.0, "beam scores: sum(log p) / length ** length_penalty")
    log_interval: int = setting(10, "steps between TensorBoard training-loss points")
    mixed_precision: str = precision_setting()
    jit_compile: str = jit_compile_setting()
    strategy: str = setting(
        "auto", "tf.distribute strategy: auto, cpu, one_device, mirrored, multi_worker, tpu"
    )
    seed: int = setting(0, "random seed")
    output_dir: str | None = setting(None, "output folder (reuse one to resume)")
    verbose: int = setting(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line")

    def unused_settings(self):
        """The settings this run ignores (left out of its config.json)."""
        learned = {self.tokens, self.target_tokens} & {"wordpiece", "bpe"}
        return (
            () if learned or "auto" in (self.tokens, self.target_tokens) else ("vocabulary_size",)
        )


@dataclasses.dataclass(frozen=True)
class Result:
    run_dir: str
    model_path: str
    steps: int
    seconds: float
    metrics: dict


def resolve(config):
    """`config` with its `auto` token settings made explicit (as config.json records them)."""
    kind = seq2seq_data.dataset_kind(config.dataset)
    tokens = "char" if config.tokens == "auto" else config.tokens
    target_tokens = config.target_tokens
    if target_tokens == "auto":
        target_tokens = "wordpiece" if kind == "cmudict" else tokens
    vocabulary = config.vocabulary
    if vocabulary == "auto":
        vocabulary = "shared" if tokens == target_tokens and kind != "cmudict" else "separate"
    if vocabulary == "shared" and tokens != target_tokens:
        raise ValueError(
            f"--vocabulary shared needs one kind of tokens on both sides; received --tokens "
            f"{tokens} and --target-tokens {target_tokens}. Use --vocabulary separate, or the "
            "same kind for both."
        )
    return dataclasses.replace(
        config, tokens=tokens, target_tokens=target_tokens, vocabulary=vocabulary
    )


def check_config(config):
    for name in (
        "steps",
        "batch_size",
        "eval_interval",
        "eval_batches",
        "log_interval",
        "num_beams",
        "vocabulary_size",
    ):
        if getattr(config, name) <= 0:
            raise ValueError(f"`{name}` must be positive. Received: {getattr(config, name)}")
    for name in ("train_examples", "test_examples", "patience", "warmup_steps", "length_buckets"):
        if getattr(config, name) < 0:
            raise ValueError(f"`{name}` must be >= 0. Received: {getattr(config, name)}")
    for name in ("encoder_sequence_length", "decoder_sequence_length"):
        value = getattr(config, name)
        if value is not None and value < 2:
            raise ValueError(f"`{name}` must be at least 2 (a token and [EOS]). Received: {value}")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1). Received: {config.label_smoothing}")


def make_preprocessor(config, splits):
    """The run's tokenizers and lengths, learned from the training pairs, as a preprocessor."""
    pairs = splits["train"].pairs()
    source_tokenizer, target_tokenizer = seq2seq_data.build_tokenizers(
        pairs, config.tokens, config.target_tokens, config.vocabulary, config.vocabulary_size
    )
    encoder_length, decoder_length = seq2seq_data.sequence_lengths(
        pairs,
        source_tokenizer,
        target_tokenizer or source_tokenizer,
        config.encoder_sequence_length,
        config.decoder_sequence_length,
    )
    return Seq2SeqPreprocessor(
        source_tokenizer, encoder_length, decoder_length, target_tokenizer=target_tokenizer
    )


def build_model(config, preprocessor):
    """A fresh `Seq2SeqTransformer` sized for the preprocessor's vocabulary and lengths.

    Its `max_sequence_length` is max(S, T + 1): generation writes `[BOS]` and up to T tokens.
    """
    backbone = Seq2SeqBackbone(
        **model_size_arguments(
            config,
            vocabulary_size=preprocessor.target_vocabulary.vocabulary_size(),
            max_sequence_length=max(
                preprocessor.encoder_sequence_length, preprocessor.decoder_sequence_length + 1
            ),
            dropout=config.dropout,
            normalize_first=config.normalize_first,
        )
    )
    return Seq2SeqTransformer(backbone)


def compile_model(model, config):
    """AdamW (warm-up, cosine decay) and cross-entropy, label-smoothed if asked.

    The loss is `TokenMeanCrossEntropy`: the mean over the real target tokens of the global
    batch, sum(w * loss) / sum(w) on any number of replicas, not Keras's default
    sum(w * loss) / (B * T): a batch cut to its longest target (`--padding batch`) has the loss
    of the same batch padded to T. With `label_smoothing > 0` the labels are one-hot
    (`make_dataset`: Keras's sparse cross-entropy has no label smoothing); the accuracy is the
    same token accuracy, weighted by the sample weights (padding weighs 0).
    """
    optimizer = make_optimizer(
        config.learning_rate,
        config.steps,
        config.warmup_steps,
        config.weight_decay,
        config.clip_norm,
    )
    jit_compile = resolve_jit_compile(config.jit_compile)
    loss = TokenMeanCrossEntropy(label_smoothing=config.label_smoothing)
    if not config.label_smoothing:
        model.compile(optimizer=optimizer, jit_compile=jit_compile, loss=loss)
        return
    model.compile(
        optimizer=optimizer,
        jit_compile=jit_compile,
        loss=loss,
        weighted_metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def make_dataset(config, examples, preprocessor, training):
    """Teacher-forced batches of every `(source, target)` pair of `examples`.

    Training batches are shuffled with `--seed` and repeat; labels are one-hot when the
    loss is label-smoothed (see `compile_model`). With `--padding batch` every batch is cut
    to its own longest source and target (training and validation alike); with
    `--length-buckets`, training batches are drawn from buckets of similar source lengths.
    """
    pairs = examples.pairs()
    if training and len(pairs) < config.batch_size:
        raise ValueError(
            f"The training split holds {len(pairs)} pairs, fewer than one batch of "
            f"{config.batch_size}. Use more data or a smaller --batch-size."
        )
    sources, targets = zip(*pairs, strict=True)
    dataset = pipelines.seq2seq_dataset(
        tf.data.Dataset.from_tensor_slices((list(sources), list(targets))),
        preprocessor,
        None,
        None,
        config.batch_size,
        seed=config.seed,
        shuffle_buffer_size=len(pairs) if training else None,
        drop_remainder=training,
        trim=config.padding == "batch",
        length_buckets=config.length_buckets if training else 0,
    )
    if config.label_smoothing:
        size = preprocessor.target_vocabulary.vocabulary_size()
        dataset = dataset.map(lambda x, y, w: (x, tf.one_hot(y, size), w))
    return dataset.repeat() if training else dataset


def run(config):
    """Trains and tests; returns a `Result` (on every worker; the chief writes the files)."""
    config = resolve(config)
    check_config(config)
    kind = seq2seq_data.dataset_kind(config.dataset)
    place = start(config, "seq2seq")
    run_dir = place.run_dir
    print(f"[seq2seq] preparing {config.dataset!r} ...", flush=True)
    try:
        splits = seq2seq_data.load_splits(config.dataset, config.seed)
        splits["train"] = splits["train"].head(config.train_examples, config.seed)
        splits["test"] = splits["test"].head(config.test_examples, config.seed)
        preprocessor = make_preprocessor(config, splits)
        train_ds = make_dataset(config, splits["train"], preprocessor, True)
        validation_ds = make_dataset(config, splits["validation"], preprocessor, False)
        validation_ds = with_known_cardinality(validation_ds.take(config.eval_batches).cache())
    except BaseException:
        place.discard()  # a refused dataset leaves no run folder behind
        raise
    truncated = seq2seq_data.report_truncation(splits, preprocessor)
    if place.chief:
        save_preprocessor(preprocessor, os.path.join(run_dir, "preprocessor.json"))
        save_tokenizer(preprocessor.source_tokenizer, os.path.join(run_dir, "tokenizer.json"))

    with place.setting_up():
        model = build_model(config, preprocessor)
        compile_model(model, config)
    print(
        f"[seq2seq] {model.count_params():,} parameters, vocabulary "
        f"{model.backbone.vocabulary_size:,} ({config.tokens} -> {config.target_tokens}, "
        f"{config.vocabulary}), S = {preprocessor.encoder_sequence_length}, T = "
        f"{preprocessor.decoder_sequence_length}, {len(splits['train'].pairs()):,} training "
        f"pairs, {place.strategy.num_replicas_in_sync} replica(s)",
        flush=True,
    )

    callbacks = []
    if config.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            )
        )
    start_time = time.monotonic()
    history = fit(
        model,
        train_ds,
        config,
        place,
        epochs=math.ceil(config.steps / config.eval_interval),
        steps_per_epoch=config.eval_interval,
        validation_data=validation_ds,
        callbacks=callbacks,
        total_steps=config.steps,
        throughput=(
            "tokens",
            config.batch_size
            * (preprocessor.encoder_sequence_length + preprocessor.decoder_sequence_length),
        ),
    )
    seconds = time.monotonic() - start_time
    history = write_history(history, run_dir, place.chief)
    steps_done = int(model.optimizer.iterations.numpy())
    evaluation = training.evaluate(model, validation_ds, strategy=place.strategy)
    metrics = {
        "steps": steps_done,
        "train_seconds": seconds,
        "train_loss_first": history["loss"][0] if history.get("loss") else None,
        "train_loss_last": history["loss"][-1] if history.get("loss") else None,
        "validation_loss": float(evaluation["loss"]),
        "validation_token_accuracy": float(evaluation["accuracy"]),
        "encoder_sequence_length": preprocessor.encoder_sequence_length,
        "decoder_sequence_length": preprocessor.decoder_sequence_length,
        "vocabulary_size": model.backbone.vocabulary_size,
        "parameters": int(model.count_params()),
        "truncated": truncated,
        "test_examples": len(splits["test"]),
        "num_beams": config.num_beams,
    }
    model_path = os.path.join(run_dir, "model.keras")
    if place.chief:
        save_model_atomic(model, model_path)  # first: decoding the test split takes a while
        metrics.update(
            seq2seq_eval.test_split(
                model,
                preprocessor,
                splits["test"],
                kind,
                run_dir,
                num_beams=config.num_beams,
                length_penalty=config.length_penalty,
            )
        )
        write_json_atomic(os.path.join(run_dir, "metrics.json"), metrics)
    summary = ", ".join(
        f"{name} {value:.3f}"
        for name, value in metrics.items()
        if name.startswith(("greedy_", f"beam{config.num_beams}_"))
    )
    print(
        f"[seq2seq] done: {steps_done} steps in {seconds:.0f} s, validation loss "
        f"{metrics['validation_loss']:.3f}; test ({len(splits['test']):,}): {summary}",
        flush=True,
    )
    return Result(run_dir, model_path, steps_done, seconds, metrics)
