"""The seq2seq workflow's test: greedy and beam decoding, predictions.tsv, and the metrics.

Metrics are computed from the predictions as written to predictions.tsv (`score`), so the
file alone reproduces metrics.json:

- every dataset: `exact_match` (`keras_transformer.training.seq2seq_metrics.exact_match`: the
  prediction's whitespace-separated tokens equal those of one of its references);
- `cmudict`: `wer` (a word is right if it equals any listed pronunciation) and `per` (edit
  distance to the closest pronunciation over its length, summed over words); and the same
  two with the stress digits taken off both the predictions and the references
  (`wer_stressless`, `per_stressless`: the 39 phonemes without stress, what many published
  CMUdict G2P results score), so the share of errors that are stress alone is visible;
- a TSV file: `bleu` and `chrf`, sacrebleu's corpus BLEU (13a tokenization) and chrF on
  0-100 scales, with every listed target of a source as a reference.
"""

import os
import time

import numpy as np
import tensorflow as tf

from keras_transformer.data.cmudict import strip_stress
from keras_transformer.training import seq2seq_metrics
from workflows.seq2seq_data import output_ids

COLUMNS = ("source", "greedy", "beam", "references")
DECODE_BATCH_SIZE = 128
_LINE_BREAKS = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def decode(model, preprocessor, sources, num_beams=1, length_penalty=1.0):
    """Generates a target for each source: greedy (`num_beams=1`) or beam search.

    Each source is framed by `preprocessor.generate_preprocess` (`source [EOS]`, truncated
    to its S); the decoder starts from `[BOS]` and stops at `[EOS]` or after T tokens.
    Special tokens and the other side's placeholder ids are dropped before detokenizing.

    Args:
        model: a `Seq2SeqTransformer`.
        preprocessor: the run's `Seq2SeqPreprocessor`.
        sources: list of str.
        num_beams: int. 1: greedy; more: beam search with that many beams.
        length_penalty: float. Beam scores are sum(log p) / length ** length_penalty.

    Returns:
        A list of str, one per source (tabs and line breaks written as spaces, so each is one
        TSV field).
    """
    keep = output_ids(preprocessor.target_vocabulary)
    texts = []
    for start in range(0, len(sources), DECODE_BATCH_SIZE):
        batch = sources[start : start + DECODE_BATCH_SIZE]
        encoder_inputs = preprocessor.generate_preprocess(tf.constant(batch))
        out = model.generate(
            {name: value.numpy() for name, value in encoder_inputs.items()},
            start_token=preprocessor.start_token_id,
            max_new_tokens=preprocessor.decoder_sequence_length,
            end_token=preprocessor.end_token_id,
            num_beams=num_beams,
            length_penalty=length_penalty,
        )
        ids, mask = out["token_ids"][:, 1:], out["padding_mask"][:, 1:]  # without [BOS]
        valid = mask & keep[np.clip(ids, 0, len(keep) - 1)]
        ragged = tf.RaggedTensor.from_row_lengths(ids[valid], valid.sum(axis=1))
        texts += [
            text.decode("utf-8", errors="replace").translate(_LINE_BREAKS)
            for text in preprocessor.detokenize(ragged).numpy()
        ]
    return texts


def write_predictions(path, sources, greedy, beam, references):
    """Writes predictions.tsv: a header, then `source, greedy, beam, reference...` per row.

    A source's references fill the columns after `beam` (as many as it has). No field holds
    a tab or a line break: sources and references cannot (TSV lines, cmudict words, dates)
    and `decode` writes those in predictions as spaces.
    """
    lines = ["\t".join(COLUMNS)]
    for source, one, other, listed in zip(sources, greedy, beam, references, strict=True):
        lines.append("\t".join([source, one, other, *listed]))
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write("\n".join(lines) + "\n")


def read_predictions(path):
    """Reads predictions.tsv back: `(sources, greedy, beam, references)` lists."""
    sources, greedy, beam, references = [], [], [], []
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split("\t")
        sources.append(fields[0])
        greedy.append(fields[1])
        beam.append(fields[2])
        references.append(tuple(fields[3:]))
    return sources, greedy, beam, references


def score(predictions, references, kind):
    """The metrics of one decoding of the test split.

    Args:
        predictions: list of str.
        references: list of tuples of str (every correct target of each source).
        kind: str. `"cmudict"`, `"date_to_iso"` or `"tsv"`.

    Returns:
        dict: `exact_match`; for cmudict `wer`, `per`, `wer_stressless`, `per_stressless`;
        for TSV `bleu`, `chrf`.
    """
    metrics = {"exact_match": seq2seq_metrics.exact_match(predictions, references)}
    if kind == "cmudict":
        metrics["wer"] = seq2seq_metrics.word_error_rate(predictions, references)
        metrics["per"] = seq2seq_metrics.phoneme_error_rate(predictions, references)
        plain = [strip_stress(p) for p in predictions]
        listed = [tuple(dict.fromkeys(strip_stress(r) for r in refs)) for refs in references]
        metrics["wer_stressless"] = seq2seq_metrics.word_error_rate(plain, listed)
        metrics["per_stressless"] = seq2seq_metrics.phoneme_error_rate(plain, listed)
    if kind == "tsv":
        import sacrebleu  # here: every `python -m workflows` command imports this module

        depth = max(len(r) for r in references)
        streams = [[r[k] if k < len(r) else None for r in references] for k in range(depth)]
        metrics["bleu"] = float(sacrebleu.corpus_bleu(predictions, streams).score)
        metrics["chrf"] = float(sacrebleu.corpus_chrf(predictions, streams).score)
    return metrics


def both_decodings(greedy, beam, references, kind, num_beams):
    """`{"greedy_<metric>": ..., "beam<k>_<metric>": ...}` for both decodings."""
    metrics = {f"greedy_{k}": v for k, v in score(greedy, references, kind).items()}
    metrics.update({f"beam{num_beams}_{k}": v for k, v in score(beam, references, kind).items()})
    return metrics


def test_split(model, preprocessor, examples, kind, run_dir, num_beams=4, length_penalty=1.0):
    """Decodes the test sources greedily and with beams, writes predictions.tsv, scores both.

    Prints the first five beam predictions (`=` right, `x` wrong).

    Returns:
        dict: `both_decodings`'s metrics and the seconds each decoding took.
    """
    sources = list(examples.sources)
    begin = time.monotonic()
    greedy = decode(model, preprocessor, sources)
    greedy_seconds = time.monotonic() - begin
    begin = time.monotonic()
    beam = decode(model, preprocessor, sources, num_beams, length_penalty)
    beam_seconds = time.monotonic() - begin
    write_predictions(
        os.path.join(run_dir, "predictions.tsv"), sources, greedy, beam, examples.references
    )
    shown = zip(sources[:5], beam[:5], examples.references[:5], strict=True)
    for source, prediction, listed in shown:
        mark = "=" if prediction.split() in [r.split() for r in listed] else "x"
        print(f"[seq2seq] {mark} {source!r} -> {prediction!r} (expected {listed[0]!r})")
    metrics = both_decodings(greedy, beam, examples.references, kind, num_beams)
    metrics["greedy_seconds"] = greedy_seconds
    metrics[f"beam{num_beams}_seconds"] = beam_seconds
    return metrics
