"""The main job's run report: report.md, report.html (same content, PNGs embedded) and PNGs.

Sections: the results table (from scratch, transfer, fine-tune, MiniLM start, student:
accuracy, size, speed), training curves, an attention heat map (one sentence, one layer and
head: which tokens each token attends to), masked-word predictions, generated Shakespeare,
student versus teacher, spelling to sound (the encoder-decoder on cmudict: word and phoneme
error rates, right and wrong examples, a cross-attention heat map), and the exports with a
TF Serving command, a REST request and the answers a fresh process got from each export.

Figures use matplotlib's Agg backend (no display needed).
"""

import base64
import dataclasses
import datetime
import html
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROW_NAMES = {
    "scratch": "from scratch (random weights)",
    "transfer": "transfer (our BERT, frozen + new head)",
    "finetune": "transfer + fine-tune (our BERT)",
    "minilm_transfer": "MiniLM start: transfer (frozen)",
    "minilm_finetune": "MiniLM start: transfer + fine-tune",
    "distill": "distilled student (half depth)",
}
MASKED_SENTENCES = [
    "to be , or not to [MASK] , that is the question .",
    "the king is [MASK] , long live the king .",
    "a funny and [MASK] film .",
]


@dataclasses.dataclass
class Context:
    """What the pipeline hands the report: its stages' summaries and a few choices."""

    run_dir: str
    profile: str
    data: dict
    bert: dict
    gpt: dict
    rows: dict
    teacher: str
    exports: dict
    answers: dict
    imported_modules: list
    stage_seconds: dict
    attention: tuple  # (model: "minilm" | "ours", layer, head, sentence)
    seq2seq: dict  # the seq2seq stage's summary: run_dir, model_path, metrics
    cross_attention: tuple  # (decoder block, head, word)


# === What the report measures (small model probes) ===


def attention_weights(backbone, token_ids, padding_mask, layer):
    """The (B, N, T, T) attention weights of block `layer` of a `BertBackbone`."""
    x = backbone.token_embedding(token_ids)  # (B, T, H)
    x = x + backbone.position_embedding(x)
    x = backbone.segment_embedding(x, None)
    x = backbone.embeddings_norm(x)
    for block in backbone.transformer_blocks[:layer]:
        x = block(x, padding_mask=padding_mask)
    _, scores = backbone.transformer_blocks[layer](
        x, padding_mask=padding_mask, return_attention_scores=True
    )
    return scores


def attention_probe(context):
    """Tokens and the (T, T) weights of the chosen layer and head, with what was chosen.

    The sentence is framed as the encoder's `embed` export frames it: MiniLM's
    `make_preprocessor()`, or the `ClassifierPreprocessor` of our BERT run's preprocessor.json
    (tokenizer.json and the run's sequence length in older run folders).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transformer.preprocessing import ClassifierPreprocessor, Preprocessor
    from workflows.export import run_preprocessor

    which, layer, head, sentence = context.attention
    if which == "minilm":
        from keras_transformer.pretrained import load_minilm

        pretrained = load_minilm(task="backbone")
        backbone, preprocessor = pretrained.model, pretrained.make_preprocessor()
        name = "pretrained MiniLM (all-MiniLM-L6-v2)"
    else:
        backbone = keras.saving.load_model(context.bert["model_path"], compile=False).backbone
        preprocessor = run_preprocessor(context.bert["run_dir"], backbone)
        if not isinstance(preprocessor, Preprocessor):  # a bare tokenizer: the model's length
            preprocessor = ClassifierPreprocessor(preprocessor, backbone.max_sequence_length)
        name = "our pretrained BERT"
    layer = min(max(layer, 0), backbone.num_layers - 1)
    head = min(max(head, 0), backbone.num_heads - 1)
    x = preprocessor(tf.constant([sentence]), pad_to_longest=True)  # (1, T): real tokens only
    token_ids = tf.cast(x["token_ids"], tf.int32)
    padding_mask = tf.cast(x["padding_mask"], tf.int32)
    scores = attention_weights(backbone, token_ids, padding_mask, layer)  # (1, N, T, T)
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    tokens = [vocabulary[i] for i in token_ids[0].numpy()]
    weights = np.asarray(scores[0, head], "float32")
    return {"model": name, "layer": layer, "head": head, "tokens": tokens, "weights": weights}


def cross_attention_probe(run_dir, model_path, layer, head, word):
    """The encoder-decoder's greedy phonemes for `word` and the cross attention behind them.

    The word is framed as the `generate` export frames it (the run's preprocessor.json) and
    decoded greedily; then the decoder reads `[BOS]` and those phonemes (teacher forcing)
    and `Seq2SeqBackbone.cross_attention_weights` gives block `layer`, head `head`: row i is
    the step that wrote output token i (a phoneme, then `[EOS]`), column j the source token
    j (a letter, then `[EOS]`); each row sums to 1.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from workflows.export import run_preprocessor

    model = keras.saving.load_model(model_path, compile=False)
    preprocessor = run_preprocessor(run_dir, model)
    backbone = model.backbone
    layer = layer if layer >= 0 else backbone.num_layers + layer
    layer = min(max(layer, 0), backbone.num_layers - 1)
    head = min(max(head, 0), backbone.num_heads - 1)
    inputs = preprocessor.generate_preprocess(tf.constant([word]))
    inputs = {name: value.numpy() for name, value in inputs.items()}
    out = model.generate(
        inputs,
        start_token=preprocessor.start_token_id,
        max_new_tokens=preprocessor.decoder_sequence_length,
        end_token=preprocessor.end_token_id,
    )
    generated = out["token_ids"][0][out["padding_mask"][0]]  # [BOS] ... [EOS] (if reached)
    if generated[-1] != preprocessor.end_token_id:
        generated = np.append(generated, preprocessor.end_token_id)
    decoder_ids = generated[None, :-1].astype("int32")  # [BOS] p1 .. pn
    source_length = int(inputs["encoder_padding_mask"][0].sum())
    encoder_ids = inputs["encoder_token_ids"][:, :source_length].astype("int32")
    weights = backbone.cross_attention_weights(
        encoder_ids, np.ones_like(encoder_ids), decoder_ids, layer=layer
    )  # (1, N, T, S)
    source_vocabulary = preprocessor.source_tokenizer.get_vocabulary()
    target_vocabulary = preprocessor.target_vocabulary.get_vocabulary()
    return {
        "word": word,
        "layer": layer,
        "head": head,
        "sources": [source_vocabulary[i] for i in encoder_ids[0]],
        "outputs": [target_vocabulary[i] for i in generated[1:]],
        "weights": np.asarray(weights[0, head], "float32"),
    }


def masked_predictions(context, sentences=MASKED_SENTENCES, top_k=5):
    """Top-k words for each [MASK] from our masked LM: `[(sentence, [(token, p), ...])]`.

    The texts go through the `fill_mask` export's code with the BERT run's preprocessor
    (preprocessor.json, or one rebuilt from tokenizer.json in older run folders).
    """
    import keras
    import tensorflow as tf

    from keras_transformer.serving.signatures import MaskedLMModule
    from workflows.export import run_preprocessor

    model = keras.saving.load_model(context.bert["model_path"], compile=False)
    preprocessor = run_preprocessor(context.bert["run_dir"], model)
    out = MaskedLMModule(model, preprocessor, top_k=top_k)._serve_text(tf.constant(sentences))
    tokens, scores = out["top_tokens"].numpy(), out["top_scores"].numpy()
    return [
        (
            s,
            [
                (t.decode("utf-8", "replace"), float(p))
                for t, p in zip(tokens[i, 0], scores[i, 0], strict=True)
            ],
        )
        for i, s in enumerate(sentences)
    ]


# === Figures ===


def save_figure(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_attention(probe, path):
    tokens, weights = probe["tokens"], probe["weights"]
    size = max(4.0, 0.42 * len(tokens) + 1.5)
    figure, axis = plt.subplots(figsize=(size + 1.0, size))
    image = axis.imshow(weights, cmap="viridis", vmin=0.0)
    axis.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right", fontsize=9)
    axis.set_yticks(range(len(tokens)), tokens, fontsize=9)
    axis.set_xlabel("attended-to token (key)")
    axis.set_ylabel("token (query)")
    axis.set_title(f"{probe['model']}: block {probe['layer']}, head {probe['head']}", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="attention weight")
    return save_figure(figure, path)


def plot_cross_attention(probe, path):
    sources, outputs = probe["sources"], probe["outputs"]
    width = max(4.0, 0.42 * len(sources) + 2.0)
    height = max(3.5, 0.38 * len(outputs) + 1.5)
    figure, axis = plt.subplots(figsize=(width, height))
    image = axis.imshow(probe["weights"], cmap="viridis", vmin=0.0, aspect="auto")
    axis.set_xticks(range(len(sources)), sources, fontsize=9)
    axis.set_yticks(range(len(outputs)), outputs, fontsize=9)
    axis.set_xlabel("input letter (key)")
    axis.set_ylabel("output phoneme (query: the step that wrote it)")
    axis.set_title(
        f"{probe['word']!r}: decoder block {probe['layer']}, head {probe['head']}", fontsize=10
    )
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="cross-attention weight")
    return save_figure(figure, path)


def curve_figure(runs, metrics, title, one_panel_per_run=False):
    """Training curves on the step axis: per-step training loss and validation points.

    Args:
        runs: dict of run name -> curves (`read_curves`).
        metrics: names such as `"loss"`, `"accuracy"`: one panel each (per run with
            `one_panel_per_run`, for runs whose losses do not share a scale).
        title: str. The figure's title.

    In a panel, each run has one colour: a thin line for its training values (the loss of
    every step; other metrics per epoch, dashed) and dots for its validation values, at the
    step each evaluation happened. Runs from before per-step logging (no `train_loss.json`)
    show one point per epoch at x = epoch number, labelled so. Returns the open figure.
    """
    if one_panel_per_run:
        panels = [({name: c}, m, f"{name}: {m}") for name, c in runs.items() for m in metrics]
    else:
        panels = [(runs, m, m) for m in metrics]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 3.8), squeeze=False)
    colours = {name: f"C{i}" for i, name in enumerate(runs)}
    for axis, (panel_runs, metric, panel_title) in zip(axes[0], panels, strict=True):
        for name, curve in panel_runs.items():
            if not curve:
                continue
            colour = colours[name]
            label = name if curve.get("per_step", True) else f"{name} (x: epoch)"
            epochs = curve.get("epochs", {})
            if metric == "loss" and curve.get("step"):
                axis.plot(curve["step"], curve["loss"], color=colour, lw=0.8, alpha=0.7,
                          label=f"{label}: train")  # fmt: skip
            elif epochs.get(metric):
                steps, values = _present(epochs["step"], epochs[metric])
                axis.plot(steps, values, color=colour, lw=0.8, ls="--", alpha=0.7,
                          label=f"{label}: train")  # fmt: skip
            if epochs.get(f"val_{metric}"):
                steps, values = _present(epochs["step"], epochs[f"val_{metric}"])
                axis.plot(steps, values, color=colour, marker="o", ms=4, ls="-", lw=1.2,
                          label=f"{label}: validation")  # fmt: skip
        axis.set_title(panel_title)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    figure.suptitle(title)
    return figure


def _present(steps, values):
    """The (step, value) pairs whose value was logged (not None)."""
    pairs = [(s, v) for s, v in zip(steps, values, strict=False) if v is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_curves(runs, path, metrics, title, one_panel_per_run=False):
    """Saves `curve_figure(...)` as a PNG at `path`; returns `path`."""
    return save_figure(curve_figure(runs, metrics, title, one_panel_per_run), path)


def plot_student_teacher(metrics, teacher_name, path):
    labels = [f"teacher\n({teacher_name})", "student"]
    accuracy = [metrics["teacher_test_accuracy"], metrics["test_accuracy"]]
    speed = [metrics["teacher_examples_per_second"], metrics["examples_per_second"]]
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for axis, values, title in (
        (axes[0], accuracy, "test accuracy"),
        (axes[1], speed, "examples / second"),
    ):
        bars = axis.bar(labels, values, color=["#4c72b0", "#dd8452"])
        axis.bar_label(bars, fmt="%.3g")
        axis.set_title(title)
    return save_figure(figure, path)


# === Markdown, and the same as HTML ===


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def file_mb(path):
    return os.path.getsize(path) / 1e6 if path and os.path.isfile(path) else float("nan")


def read_history(run_dir):
    path = os.path.join(run_dir, "history.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def read_curves(run_dir):
    """A run's curves for `curve_figure`: its `train_loss.json` (per-step loss, and each
    epoch's logs at the step it ended), else its `history.json` with x = epoch number."""
    from workflows.curves import read_train_loss  # imports TensorFlow: only when needed

    curves = read_train_loss(run_dir)
    if curves:
        return {**curves, "per_step": True}
    history = read_history(run_dir)
    if not history:
        return {}
    count = max(len(values) for values in history.values())
    epochs = {"step": list(range(1, count + 1)), **history}
    return {"step": [], "loss": [], "epochs": epochs, "per_step": False}


def results_section(context):
    rows = []
    for name, summary in context.rows.items():
        m = summary["metrics"]
        rows.append(
            [
                ROW_NAMES.get(name, name) + (" (teacher)" if name == context.teacher else ""),
                f"{m.get('test_accuracy', float('nan')):.3f}",
                f"{m.get('validation_accuracy', float('nan')):.3f}",
                f"{m.get('parameters', 0) / 1e6:.2f} M",
                f"{file_mb(summary.get('model_path')):.1f} MB",
                f"{m.get('examples_per_second', float('nan')):,.0f}",
            ]
        )
    table = md_table(
        ["model", "test acc", "val acc", "parameters", ".keras size", "examples/s"], rows
    )
    note = (
        f"`movie_sentiment` subset: {context.data['train_examples']:,} training and "
        f"{context.data['test_examples']:,} test sentences (MiniLM rows use the smaller "
        "`minilm.csv` subset and its own test split when the profile makes one)."
    )
    return f"## Results\n\n{table}\n\n{note}\n"


def serving_section(context):
    lines = ["## Exports (TF Serving layout)\n"]
    lines.append(
        md_table(
            ["name", "version folder", "signatures"],
            [
                [name, f"`{e['path']}`", ", ".join(e["signatures"])]
                for name, e in context.exports.items()
            ],
        )
    )
    base_dir = os.path.dirname(next(iter(context.exports.values()))["base"])
    config_lines = ["model_config_list {"]
    for name in context.exports:
        config_lines.append(
            f'  config {{ name: "{name}" base_path: "/models/{name}" model_platform: '
            '"tensorflow" }'
        )
    config_lines.append("}")
    config_path = os.path.join(context.run_dir, "models.config")
    with open(config_path, "w", encoding="utf-8") as file:
        file.write("\n".join(config_lines) + "\n")
    request = json.dumps({"signature_name": "serving_default", "inputs": {"text": [
        "A warm, funny and beautifully acted film."]}})  # fmt: skip
    generate = json.dumps({"signature_name": "generate", "inputs": {"prompts": ["ROMEO:\n"]}})
    lines.append(
        "\nServe all of them with stock TF Serving (no tensorflow-text needed):\n\n```bash\n"
        f'docker run --rm -p 8501:8501 -v "{base_dir}:/models" \\\n'
        f'  -v "{os.path.abspath(config_path)}:/models.config" \\\n'
        "  tensorflow/serving --model_config_file=/models.config\n"
        f"curl -X POST http://localhost:8501/v1/models/sentiment:predict -d '{request}'\n"
        "curl -X POST http://localhost:8501/v1/models/shakespeare_gpt:predict "
        f"-d '{generate}'\n```\n"
    )
    lines.append(
        "\nAnswers from a fresh process that imported only TensorFlow "
        f"(other modules loaded: {context.imported_modules or 'none'}):\n"
    )
    rows = []
    for name, answer in context.answers.items():
        rows.append(
            [name, answer["signature"], describe_answer(answer), f"{answer['seconds']:.1f} s"]
        )
    lines.append(md_table(["export", "signature", "answer", "load + answer"], rows))
    return "\n".join(lines) + "\n"


def describe_answer(answer):
    """One table cell for a served answer: labels with probabilities, shapes, or text."""
    outputs, inputs = answer["outputs"], answer["inputs"]
    if "label" in outputs:
        return "<br>".join(
            f"“{text}” → **{label}** ({max(p):.2f})"
            for text, label, p in zip(
                inputs["text"], outputs["label"], outputs["probabilities"], strict=True
            )
        )
    if "generated_text" in outputs:
        return f"`{json.dumps(outputs['generated_text'][0], ensure_ascii=False)}`"
    if "cosine_0_1" in outputs:
        return (
            f"sentence vectors {outputs['sentence_embedding_shape']}, cosine of the two "
            f"reviews {outputs['cosine_0_1']:.3f}"
        )
    return f"`{json.dumps(outputs, ensure_ascii=False)[:300]}`"


def markdown_to_html(text, folder):
    """The small subset of Markdown this report writes -> HTML (images embedded as base64)."""
    out, in_code, in_table = [], False, False
    for line in text.splitlines():
        if line.startswith("```"):
            out.append("</code></pre>" if in_code else "<pre><code>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif match := re.fullmatch(r"!\[(.*)\]\((.*)\)", line.strip()):
            with open(os.path.join(folder, match.group(2)), "rb") as file:
                data = base64.b64encode(file.read()).decode("ascii")
            out.append(f'<p><img alt="{html.escape(match.group(1))}" '
                       f'src="data:image/png;base64,{data}"></p>')  # fmt: skip
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    if in_table:
        out.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "pre{background:#f4f4f4;padding:8px;overflow-x:auto}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Main job report</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


def inline(text):
    text = html.escape(text).replace("&lt;br&gt;", "<br>")
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]*)\*\*", r"<b>\1</b>", text)


def answer_of_kind(context, kind):
    """The fresh process's answer from the export of `kind` (`generate`: the GPT, `seq2seq`:
    the encoder-decoder; both serve a `generate` signature), or an empty one."""
    name = next((n for n, e in context.exports.items() if e["kind"] == kind), None)
    return context.answers.get(name, {"inputs": {}, "outputs": {}})


def examples_table(rows):
    """A table of `[word, predicted, listed]` rows, or a line saying there are none."""
    return md_table(["word", "predicted", "listed"], rows) if rows else "(none)"


def seq2seq_section(context, figures, examples=6):
    """Spelling to sound: error rates per decoding, right and wrong words, cross attention."""
    from keras_transformer.training.seq2seq_metrics import exact_match
    from workflows.seq2seq_eval import read_predictions

    run = context.seq2seq
    m = run["metrics"]
    beams = m["num_beams"]
    rows = []
    for name, label in (("greedy", "greedy"), (f"beam{beams}", f"beam search, {beams} beams")):
        rows.append(
            [
                label,
                f"{m[f'{name}_wer']:.3f}",
                f"{m[f'{name}_per']:.3f}",
                f"{m[f'{name}_wer_stressless']:.3f}",
                f"{m[f'{name}_per_stressless']:.3f}",
                f"{m[f'{name}_exact_match']:.3f}",
                f"{m[f'{name}_seconds']:.1f}",
            ]
        )
    header = ["decoding", "WER", "PER", "WER without stress", "PER without stress",
              "exact match", "decoding seconds"]  # fmt: skip
    table = md_table(header, rows)
    sources, greedy_outputs, _, listed = read_predictions(
        os.path.join(run["run_dir"], "predictions.tsv")
    )
    right, wrong = [], []
    for source, greedy, references in zip(sources, greedy_outputs, listed, strict=True):
        kept = right if exact_match([greedy], [references]) == 1.0 else wrong
        kept.append([f"`{source}`", f"`{greedy}`", ", ".join(f"`{r}`" for r in references)])
    layer, head, word = context.cross_attention
    probe = cross_attention_probe(run["run_dir"], run["model_path"], layer, head, word)
    plot_cross_attention(probe, os.path.join(figures, "cross_attention.png"))
    strongest = [
        f"{t} ← {probe['sources'][int(w.argmax())]}"
        for t, w in zip(probe["outputs"], probe["weights"], strict=True)
    ]
    served = answer_of_kind(context, "seq2seq")
    served_rows = [
        [f"`{w}`", f"`{p}`"]
        for w, p in zip(
            served["inputs"].get("sources", []),
            served["outputs"].get("generated_text", []),
            strict=True,
        )
    ]
    return (
        "## Spelling to sound: the encoder-decoder (cmudict)\n\n"
        f"A `Seq2SeqTransformer` ({m['parameters'] / 1e6:.2f} M parameters; characters in, "
        f"ARPAbet phonemes with stress out) trained from scratch for {m['steps']:,} steps "
        f"({m['train_seconds'] / 60:.1f} min) on the cmudict training words, tested on "
        f"{m['test_examples']:,} test words (`python -m workflows seq2seq`). A word is right "
        "if its phonemes equal any listed pronunciation (WER: the share of words wrong); PER is "
        'the phoneme edit distance to the closest pronunciation over its length; "without '
        'stress" scores the same predictions with the stress digits taken off both sides '
        "(39 phonemes). Published Transformer results on CMUdict are about 0.22 WER and "
        "0.05-0.06 PER (Yolchuyeva et al., Interspeech 2019; another split, far longer "
        "training and, as far as we can tell, no stress: a reference, not a match).\n\n"
        f"{table}\n\n"
        f"Right (greedy), the first {examples} of {len(right):,} test words:\n\n"
        + examples_table(right[:examples])
        + f"\n\nWrong (greedy), the first {examples} of {len(wrong):,}:\n\n"
        + examples_table(wrong[:examples])
        + "\n\nAll predictions: `predictions.tsv` in the run folder "
        f"`{os.path.abspath(run['run_dir'])}`.\n\n"
        f"### Cross attention: which letters each phoneme was written from\n\n"
        f"`{probe['word']}` → `{' '.join(probe['outputs'][:-1])}` (greedy). Decoder block "
        f"{probe['layer']}, head {probe['head']} (choose with `--cross-attention-layer`, "
        "`--cross-attention-head`, `--cross-attention-word`). Row = the step that wrote an "
        "output token, column = an input letter; each row sums to 1.\n\n"
        "![cross attention](figures/cross_attention.png)\n\n"
        f"Strongest letter per output token: {', '.join(strongest)}\n\n"
        "From the exported `generate` signature (beam search, 4 beams), in a fresh process:\n\n"
        + md_table(["word", "phonemes"], served_rows)
        + "\n"
    )


TOKEN_NAMES = {"char": "characters", "bpe": "byte-level BPE", "wordpiece": "WordPiece"}


def gpt_tokens(metrics):
    """A pretrain run's tokens from its metrics: `characters`, `byte-level BPE, 2,000 tokens`."""
    kind = metrics.get("tokens", "char")
    name = TOKEN_NAMES.get(kind, kind)
    return name if kind == "char" else f"{name}, {metrics['vocabulary_size']:,} tokens"


def gpt_quality(metrics):
    """The validation sentence of a pretrain run: perplexity per token, bits per character."""
    unit = "character" if metrics.get("tokens", "char") == "char" else "token"
    text = f"Validation perplexity {metrics['validation_perplexity']:.2f} per {unit}"
    if metrics.get("validation_bits_per_character") is not None:
        text += f", {metrics['validation_bits_per_character']:.3f} bits per character"
    return text + "."


def write_report(stage_folder, context):
    """Writes RUN/report.md, RUN/report.html and RUN/figures/*.png; returns the stage summary."""
    folder = context.run_dir
    figures = os.path.join(folder, "figures")
    os.makedirs(figures, exist_ok=True)
    print("[main] report: probing attention and masked words ...", flush=True)
    sections = [
        f"# Main job report ({context.profile} profile)\n\n"
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, run folder `{os.path.abspath(folder)}`. "
        "Raw text in, served models out: every number below comes from this run.\n",
        results_section(context),
    ]
    classifier_curves = {
        ROW_NAMES.get(n, n): read_curves(s["run_dir"]) for n, s in context.rows.items()
    }
    pretrain_curves = {
        "BERT (masked LM)": read_curves(context.bert["run_dir"]),
        f"GPT (causal LM, {gpt_tokens(context.gpt['metrics'])})": read_curves(
            context.gpt["run_dir"]
        ),
    }
    plot_curves(pretrain_curves, os.path.join(figures, "pretraining.png"), ["loss"],
                "Pretraining", one_panel_per_run=True)  # fmt: skip
    plot_curves(classifier_curves, os.path.join(figures, "classifiers.png"),
                ["loss", "accuracy"], "Classifiers on movie_sentiment")  # fmt: skip
    sections.append(
        "## Training curves\n\nLines: the training loss of every step (other training "
        "metrics per epoch, dashed); dots: validation after each evaluation, on the same step "
        "axis. Each run's TensorBoard logs are in its `tensorboard/` folder.\n\n"
        "![pretraining](figures/pretraining.png)\n\n![classifiers](figures/classifiers.png)\n"
    )
    probe = attention_probe(context)
    plot_attention(probe, os.path.join(figures, "attention.png"))
    inner = probe["weights"][1:-1, 1:-1]  # without [CLS] and [SEP], where heads park
    strongest = [
        f"{t} → {probe['tokens'][1 + int(w.argmax())]}"
        for t, w in zip(probe["tokens"][1:-1], inner, strict=True)
    ]
    sections.append(
        f"## Attention: which tokens each token looks at\n\n{probe['model']}, block "
        f"{probe['layer']}, head {probe['head']} (choose with `--attention-layer`, "
        "`--attention-head`, `--attention-sentence`). Row = a token, column = the token it "
        "attends to; each row sums to 1.\n\n![attention](figures/attention.png)\n\n"
        f"Strongest link per word (leaving out [CLS] and [SEP]): {', '.join(strongest)}\n"
    )
    rows = [
        [f"`{s}`", ", ".join(f"{t} ({p:.2f})" for t, p in top)]
        for s, top in masked_predictions(context)
    ]
    sections.append(
        "## Masked-word predictions (our BERT, top 5)\n\n"
        + md_table(["sentence", "predictions (probability)"], rows)
        + "\n"
    )
    samples_path = os.path.join(context.gpt["run_dir"], "samples.txt")
    with open(samples_path, encoding="utf-8") as file:
        samples = file.read().strip()
    served = answer_of_kind(context, "generate")
    served_text = "\n".join(served["outputs"].get("generated_text", []))
    gpt_metrics = context.gpt["metrics"]
    sections.append(
        f"## Generated Shakespeare (our GPT, {gpt_tokens(gpt_metrics)})\n\n"
        f"{gpt_quality(gpt_metrics)} Its tokens are those that won `python -m "
        "benchmarks.token_choice` (validation bits per character of this GPT trained with "
        "characters and with BPE at several vocabulary sizes for equal time; table in "
        "docs/BENCHMARKS.md). Sampled in training (top-k 20, temperature 0.8):\n\n"
        f"```\n{samples}\n```\n\nFrom the exported `generate` signature, in a fresh "
        f"process:\n\n```\n{served_text}\n```\n"
    )
    distilled = context.rows["distill"]["metrics"]
    plot_student_teacher(distilled, context.teacher, os.path.join(figures, "student.png"))
    sections.append(
        "## Student versus teacher\n\n"
        + md_table(
            ["", "blocks", "parameters", "test acc", "examples/s"],
            [
                [
                    f"teacher ({context.teacher})",
                    distilled["student_layers"] * 2,
                    f"{distilled['teacher_parameters'] / 1e6:.2f} M",
                    f"{distilled['teacher_test_accuracy']:.3f}",
                    f"{distilled['teacher_examples_per_second']:,.0f}",
                ],
                [
                    "student",
                    distilled["student_layers"],
                    f"{distilled['parameters'] / 1e6:.2f} M",
                    f"{distilled['test_accuracy']:.3f}",
                    f"{distilled['examples_per_second']:,.0f}",
                ],
            ],  # fmt: skip
        )
        + f"\n\nThe student keeps {distilled['accuracy_kept']:.0%} of the teacher's accuracy "
        f"at {distilled['speedup']:.2f}x its speed.\n\n![student](figures/student.png)\n"
    )
    sections.append(seq2seq_section(context, figures))
    sections.append(serving_section(context))
    sections.append(
        "## Stage times\n\n"
        + md_table(
            ["stage", "seconds"],
            [[n, f"{s:.0f}"] for n, s in context.stage_seconds.items()],
        )
        + "\n\n(Stages done by an earlier run show that run's time.)\n"
    )
    text = "\n".join(sections)
    report_path = os.path.join(folder, "report.md")
    html_path = os.path.join(folder, "report.html")
    for path, content in ((report_path, text), (html_path, markdown_to_html(text, folder))):
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            file.write(content)
        os.replace(path + ".tmp", path)
    pngs = [os.path.join(figures, n) for n in sorted(os.listdir(figures)) if n.endswith(".png")]
    print(f"[main] report: {os.path.abspath(report_path)}", flush=True)
    return {"outputs": [report_path, html_path, *pngs], "report": report_path, "html": html_path}
