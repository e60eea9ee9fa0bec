"""pretrain: masked-LM (BERT-style) or causal-LM (GPT-style) pretraining on a text corpus.

Trains from random weights on the built-in `shakespeare` corpus (or a text file or folder of
yours), with character-level, WordPiece or byte-level BPE (GPT-2's) tokens, under a
`tf.distribute` strategy. Reports validation loss and perplexity (and masked-LM accuracy); GPT
runs print sample generations. The classic character-level Shakespeare model is one command:

    python -m workflows pretrain --objective causal --tokens char --steps 2000

With `--tokens bpe` the merges are learned from the training split (`--vocabulary-size` tokens:
the 256 byte symbols, `<|endoftext|>` and the merged ones), or given: `--vocabulary vocab.json
--merges merges.txt` (GPT-2 / Hugging Face files) or `--vocabulary tokenizer.json` (a Hugging
Face ByteLevel BPE). `<|endoftext|>` ends each text of the training stream and starts each
prompt; given files without it make a stream with no end token (a note says so).

Outputs (in --output-dir, default runs/pretrain-<time>/): config.json, model.keras,
tokenizer.json, preprocessor.json (the tokenizer with the run's sequence length and special
tokens, so `workflows export --run` serves text as the run trained; BPE runs add the
tokenizer's vocab.json and merges.txt, for Hugging Face tools), history.json,
metrics.json, samples.txt, train_loss.json (the loss of every step) and tensorboard/
(`tensorboard --logdir <run>/tensorboard`). A killed run resumes from its last evaluation
when started again with the same --output-dir.
"""

import dataclasses
import math
import os
import time

import numpy as np
import tensorflow as tf

from keras_transformer import data as kt_data
from keras_transformer import training
from keras_transformer.data import pipelines
from keras_transformer.models import (
    BertBackbone,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
)
from keras_transformer.preprocessing import (
    CausalLMPreprocessor,
    MaskedLMPreprocessor,
    Preprocessor,
    save_preprocessor,
)
from keras_transformer.text import BytePairTokenizer
from keras_transformer.text.io import save_tokenizer
from keras_transformer.training.compilation import resolve_jit_compile
from keras_transformer.training.evaluation import bits_per_character
from keras_transformer.training.precision import using_precision
from workflows.config import (
    jit_compile_setting,
    precision_setting,
    setting,
    write_json_atomic,
)
from workflows.pretrain_tokens import build_tokenizer, causal_lm_tokens, check_token_settings
from workflows.training import (
    fit,
    make_optimizer,
    model_size_arguments,
    save_model_atomic,
    start,
    write_history,
)


@dataclasses.dataclass(frozen=True)
class Config:
    objective: str = setting(
        "causal", "causal (GPT-style) or masked (BERT-style)", ("causal", "masked")
    )
    tokens: str = setting(
        "char",
        "char (characters), wordpiece, or bpe (GPT-2's byte-level BPE)",
        ("char", "wordpiece", "bpe"),
    )
    corpus: str = setting("shakespeare", "built-in 'shakespeare', or a text file or folder")
    vocabulary: str | None = setting(
        None,
        "wordpiece: a vocab.txt; bpe: a vocab.json (with --merges) or a Hugging Face "
        "tokenizer.json; not given: learned from the corpus",
    )
    merges: str | None = setting(None, "bpe: the merges.txt of a --vocabulary vocab.json")
    vocabulary_size: int = setting(
        8000,
        "size of a vocabulary learned from the corpus: wordpiece, its tokens with the special "
        "ones; bpe, the 256 byte symbols, <|endoftext|> and the merges (at most that many: "
        "merging stops at pairs seen once); not used by char or a given --vocabulary",
    )
    size: str = setting("tiny", "model size: tiny, mini, small, medium, base")
    num_layers: int | None = setting(None, "override the size's number of layers")
    hidden_dim: int | None = setting(None, "override the size's width")
    num_heads: int | None = setting(None, "override the size's attention heads")
    intermediate_dim: int | None = setting(None, "override the size's feed-forward width")
    sequence_length: int = setting(128, "context length in tokens")
    batch_size: int = setting(32, "global batch size (split across replicas)")
    steps: int = setting(1000, "training steps")
    max_seconds: float = setting(0.0, "stop training after this many seconds (0: no limit)")
    learning_rate: float = setting(1e-3, "peak learning rate (AdamW)")
    warmup_steps: int = setting(100, "linear warm-up steps before cosine decay")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    clip_norm: float = setting(1.0, "global gradient-norm clipping (0: none)")
    dropout: float = setting(0.1, "dropout rate")
    attention_chunk_size: int = setting(
        0,
        "attend this many queries at a time and recompute the weights in the backward pass: "
        "long sequences train in less memory (0: plain attention)",
    )
    mask_rate: float = setting(0.15, "share of tokens chosen for masked-LM prediction")
    eval_interval: int = setting(200, "steps between evaluations (and resumable checkpoints)")
    eval_batches: int = setting(20, "validation batches per evaluation")
    log_interval: int = setting(10, "steps between TensorBoard training-loss points")
    mixed_precision: str = precision_setting()
    jit_compile: str = jit_compile_setting()
    strategy: str = setting(
        "auto", "tf.distribute strategy: auto, cpu, one_device, mirrored, multi_worker, tpu"
    )
    seed: int = setting(0, "random seed")
    output_dir: str | None = setting(None, "output folder (reuse one to resume)")
    prompt: str = setting("ROMEO:", "prompt for the sample generations (causal only)")
    num_samples: int = setting(2, "sample generations to print (causal only)")
    sample_length: int = setting(200, "new tokens per sample")
    temperature: float = setting(0.8, "sampling temperature")
    top_k: int = setting(20, "sample among the k most likely tokens")
    verbose: int = setting(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line")

    def unused_settings(self):
        """The settings this run ignores (left out of its config.json)."""
        unused = []
        if self.objective == "causal":
            unused.append("mask_rate")
        else:  # masked: no sample generations
            unused += ["prompt", "num_samples", "sample_length", "temperature", "top_k"]
        if self.tokens == "char":
            unused += ["vocabulary", "vocabulary_size"]
        elif self.vocabulary:
            unused.append("vocabulary_size")  # the given files fix the size
        if self.tokens != "bpe":
            unused.append("merges")
        return tuple(unused)


@dataclasses.dataclass(frozen=True)
class Result:
    run_dir: str
    model_path: str
    tokenizer_path: str
    steps: int
    seconds: float
    metrics: dict
    samples: list


BUILT_IN_CORPORA = ("shakespeare", "movie_sentiment", "shakespeare+movie_sentiment")


def load_corpus(corpus, seed=0):
    """Returns (train_texts, validation_texts) for a built-in name or a file/folder path.

    Built in: `shakespeare` (the plays, one text per scene), `movie_sentiment` (the review
    sentences of that dataset's train and validation splits, labels unused) and
    `shakespeare+movie_sentiment` (both).
    """
    if corpus in BUILT_IN_CORPORA:
        train, validation = [], []
        if "shakespeare" in corpus:
            train += [scene.text for scene in kt_data.load_shakespeare("train")]
            validation += [scene.text for scene in kt_data.load_shakespeare("validation")]
        if "movie_sentiment" in corpus:
            train += kt_data.load_movie_sentiment("train").texts
            validation += kt_data.load_movie_sentiment("validation").texts
        return train, validation
    if not os.path.exists(corpus):
        raise FileNotFoundError(
            f"Corpus {corpus!r} is neither a built-in corpus {BUILT_IN_CORPORA} nor an existing "
            "file or folder."
        )
    texts = kt_data.text_corpus(corpus)
    if len(texts) >= 20:  # hold out whole documents
        order = np.random.default_rng(seed).permutation(len(texts))
        cut = max(1, len(texts) // 20)
        return [texts[i] for i in order[cut:]], [texts[i] for i in order[:cut]]
    joined = "\n".join(texts)  # one long text: hold out its last 5%
    cut = int(len(joined) * 0.95)
    return [joined[:cut]], [joined[cut:]]


def build_model(config, vocabulary_size):
    arguments = model_size_arguments(
        config,
        vocabulary_size=vocabulary_size,
        max_sequence_length=config.sequence_length,
        dropout=config.dropout,
        attention_chunk_size=config.attention_chunk_size or None,
    )
    if config.objective == "causal":
        return GPTCausalLM(GPTBackbone(**arguments))
    return BertMaskedLM(BertBackbone(**arguments))


def split_passages(texts, max_chars):
    """Cuts texts at line breaks into passages of at most about `max_chars` characters.

    Masked-LM examples are one passage each (truncated to the context length), so long texts
    (a whole scene) would otherwise lose everything past their first `sequence_length` tokens.
    """
    passages = []
    for text in texts:
        current = []
        size = 0
        for line in text.splitlines():
            if current and size + len(line) > max_chars:
                passages.append("\n".join(current))
                current, size = [], 0
            while len(line) > max_chars:  # one very long line
                passages.append(line[:max_chars])
                line = line[max_chars:]
            current.append(line)
            size += len(line) + 1
        if any(part.strip() for part in current):
            passages.append("\n".join(current))
    return [p for p in passages if p.strip()]


def make_preprocessor(config, tokenizer):
    """The run's preprocessor: what `make_dataset` maps, saved as preprocessor.json."""
    if config.objective == "causal":
        return CausalLMPreprocessor(
            tokenizer, config.sequence_length, **causal_lm_tokens(tokenizer)
        )
    return MaskedLMPreprocessor(
        tokenizer, config.sequence_length, mask_selection_rate=config.mask_rate, seed=config.seed
    )


def make_dataset(config, texts, preprocessor, batch_size, training):
    """Training or validation batches: `preprocessor` (or a tokenizer: the run's preprocessor
    is built from it) mapped over the texts."""
    if not isinstance(preprocessor, Preprocessor):
        preprocessor = make_preprocessor(config, preprocessor)
    if config.objective == "masked":  # about 4 characters per WordPiece token, less [CLS]/[SEP]
        texts = split_passages(texts, max_chars=4 * (config.sequence_length - 2))
        if len(texts) < batch_size:
            raise ValueError(
                f"The {'training' if training else 'validation'} text makes {len(texts)} "
                f"passages, fewer than one batch of {batch_size}. Use more text or a smaller "
                "--batch-size."
            )
    texts_ds = tf.data.Dataset.from_tensor_slices(texts)
    shuffle = len(texts) if training else None
    if config.objective == "causal":
        return pipelines.causal_lm_dataset(
            texts_ds,
            preprocessor,
            None,
            batch_size,
            seed=config.seed,
            shuffle_buffer_size=shuffle,
        )
    return pipelines.masked_lm_dataset(
        texts_ds,
        preprocessor,
        None,
        batch_size,
        seed=config.seed,
        shuffle_buffer_size=shuffle,
        drop_remainder=True,
    )


def with_known_cardinality(dataset):
    """Counts a (small, cached) dataset's batches and declares the count.

    Keras 3.15's `evaluate` (and `fit`'s validation) under-reports the loss by a factor
    n / (n + 1) on a dataset of unknown cardinality, as `causal_lm_dataset` is (seen here:
    2.19 instead of 2.92 over 3 batches); a declared cardinality avoids it.
    """
    count = sum(1 for _ in dataset)
    if count == 0:
        raise ValueError("The validation text makes no batch: use more text or a smaller batch.")
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def check_config(config):
    if config.objective == "masked" and config.tokens == "char":
        raise ValueError(
            "Masked-LM pretraining needs the [CLS]/[SEP]/[MASK] tokens of a WordPiece "
            "vocabulary: use --tokens wordpiece with --objective masked."
        )
    check_token_settings(config)
    for name in (
        "steps",
        "batch_size",
        "sequence_length",
        "eval_interval",
        "eval_batches",
        "log_interval",
    ):
        if getattr(config, name) <= 0:
            raise ValueError(f"`{name}` must be positive. Received: {getattr(config, name)}")
    if config.attention_chunk_size < 0:
        raise ValueError(
            "`attention_chunk_size` must be 0 (plain attention) or a positive number of queries. "
            f"Received: {config.attention_chunk_size}"
        )


def run(config):
    """Runs pretraining; returns a `Result` (on every worker; the chief writes the files)."""
    check_config(config)
    place = start(config, "pretrain")
    run_dir, strategy = place.run_dir, place.strategy

    print(f"[pretrain] preparing corpus {config.corpus!r} ...", flush=True)
    train_texts, validation_texts = load_corpus(config.corpus, config.seed)
    tokenizer = build_tokenizer(config, train_texts)
    preprocessor = make_preprocessor(config, tokenizer)
    tokenizer_path = os.path.join(run_dir, "tokenizer.json")
    if place.chief:
        save_tokenizer(tokenizer, tokenizer_path)
        save_preprocessor(preprocessor, os.path.join(run_dir, "preprocessor.json"))
        if isinstance(tokenizer, BytePairTokenizer):  # for Hugging Face tools
            tokenizer.save_files(run_dir)
    train_ds = make_dataset(config, train_texts, preprocessor, config.batch_size, True).repeat()
    validation_ds = make_dataset(config, validation_texts, preprocessor, config.batch_size, False)
    validation_ds = with_known_cardinality(validation_ds.take(config.eval_batches).cache())

    with strategy.scope(), using_precision(config.mixed_precision):
        model = build_model(config, tokenizer.vocabulary_size())
        model.compile(
            optimizer=make_optimizer(
                config.learning_rate,
                config.steps,
                config.warmup_steps,
                config.weight_decay,
                config.clip_norm,
            ),
            jit_compile=resolve_jit_compile(config.jit_compile),
        )
    print(
        f"[pretrain] {type(model).__name__}: {model.count_params():,} parameters, vocabulary "
        f"{tokenizer.vocabulary_size():,}, {strategy.num_replicas_in_sync} replica(s)",
        flush=True,
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
        total_steps=config.steps,  # the last interval is shorter when it does not divide
        throughput=("tokens", config.batch_size * config.sequence_length),
    )
    seconds = time.monotonic() - start_time
    history = write_history(history, run_dir, place.chief)
    steps_done = int(model.optimizer.iterations.numpy())

    evaluation = training.evaluate(model, validation_ds, strategy=strategy)
    bits = None
    if config.objective == "causal":  # the blocks of validation_ds, scored per character
        bits = bits_per_character(
            model,
            preprocessor,
            validation_texts,
            batch_size=config.batch_size,
            max_blocks=config.eval_batches * config.batch_size,
            drop_remainder=True,
        )["bits_per_character"]
    metrics = {
        "tokens": config.tokens,
        "vocabulary_size": tokenizer.vocabulary_size(),
        "validation_loss": float(evaluation["loss"]),
        "validation_perplexity": float(math.exp(min(evaluation["loss"], 50.0))),
        "validation_accuracy": float(evaluation.get("accuracy", float("nan"))),
        "validation_bits_per_character": bits,
        "train_loss_first": history["loss"][0] if history.get("loss") else None,
        "train_loss_last": history["loss"][-1] if history.get("loss") else None,
        "tokens_per_second": steps_done * config.batch_size * config.sequence_length / seconds
        if seconds > 0
        else None,
    }
    model_path = os.path.join(run_dir, "model.keras")
    samples = []
    if place.chief:
        save_model_atomic(model, model_path)
        if config.objective == "causal" and config.num_samples > 0:
            samples = generate_samples(model, preprocessor, config)
            with open(os.path.join(run_dir, "samples.txt"), "w", encoding="utf-8") as file:
                file.write("\n\n-----\n\n".join(samples) + "\n")
        write_json_atomic(os.path.join(run_dir, "metrics.json"), metrics)
    print(
        f"[pretrain] done: {steps_done} steps in {seconds:.0f} s, {config.tokens} tokens "
        f"(vocabulary {metrics['vocabulary_size']:,}), validation loss "
        f"{metrics['validation_loss']:.3f}, perplexity {metrics['validation_perplexity']:.2f} "
        "per token" + (f", {bits:.3f} bits per character" if bits is not None else ""),
        flush=True,
    )
    for i, sample in enumerate(samples):
        print(f"\n[pretrain] sample {i + 1}:\n{sample}", flush=True)
    return Result(run_dir, model_path, tokenizer_path, steps_done, seconds, metrics, samples)


def generate_samples(model, preprocessor, config):
    """Generates `num_samples` continuations of the prompt (top-k sampling).

    The prompt is framed by the run's `CausalLMPreprocessor`, as the exported `generate`
    frames it (after its start token, `[EOS]` when the vocabulary has it: in the training
    stream a text follows `[EOS]`); a sample reads as the prompt followed by the new text, the
    start token left out (a prompt longer than the model allows keeps its end).

    Args:
        model: a `GPTCausalLM`.
        preprocessor: the run's `CausalLMPreprocessor` (or its tokenizer).
        config: the run's `Config` (`prompt`, `num_samples`, `sample_length`, `top_k`,
            `temperature`, `seed`, `sequence_length`).

    Returns:
        A list of `num_samples` strings.
    """
    if isinstance(preprocessor, CausalLMPreprocessor):
        prompter = preprocessor
    else:
        prompter = CausalLMPreprocessor(preprocessor, config.sequence_length)
    limit = model.backbone.max_sequence_length
    # One new token at least: the prompt keeps its last `limit - 1` tokens.
    token_ids, padding_mask, lengths, empty = prompter.generate_preprocess(
        [config.prompt], max_new_tokens=1, max_sequence_length=limit
    )
    if bool(empty[0]):
        raise ValueError(f"The prompt {config.prompt!r} has no tokens; give a non-empty prompt.")
    length = max(1, min(config.sample_length, limit - int(lengths[0])))
    out = model.generate(
        {
            "token_ids": tf.tile(token_ids, [config.num_samples, 1]),
            "padding_mask": tf.tile(padding_mask, [config.num_samples, 1]),
        },
        max_new_tokens=length,
        top_k=config.top_k,
        temperature=config.temperature,
        seed=config.seed,
    )
    skip = 0 if prompter.start_token_id is None else 1  # the start token is not text
    texts = prompter.detokenize(
        tf.ragged.boolean_mask(out["token_ids"][:, skip:], out["padding_mask"][:, skip:])
    )
    return [text.decode("utf-8", errors="replace") for text in texts.numpy()]
