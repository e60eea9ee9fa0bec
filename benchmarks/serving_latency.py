"""Serving speed: our SavedModels vs keras-hub's, side by side in one run, at the "mini" size.

1. Raw-text classifier latency (ms per request, batch 1 and batch 32): our exported
   `BertClassifier` (`serving_default`: strings in, core-TF tokenizer inside) vs keras-hub's
   `BertTextClassifier` with its `BertTextClassifierPreprocessor` exported as a raw-string
   SavedModel (`keras.export.ExportArchive`; its tokenizer is tensorflow-text). Both: 4 layers,
   256 wide, vocabulary 30,522 (BERT uncased), 2 classes. They are compared at equal padding,
   so that both models run on inputs of the same width:
   - "both padded to the batch's longest text": ours is the export as it is (truncation at
     512, each batch padded to its longest text); keras-hub's preprocessor pads to 512 (its
     default `sequence_length`) and its export then cuts the batch to its longest row.
   - "both padded to 128": keras-hub's preprocessor at `sequence_length=128` (its own fixed
     padding); ours exported with `max_sequence_length=128` and `pad_to_longest = False` (its
     preprocessor's full-width output), so every batch is 128 wide.
   The mean padded width of the timed batches is printed beside each time.
2. Generation speed (new tokens per second, greedy, 64 new tokens after 16-token prompts,
   batch 1 and 8): our exported `GPTCausalLM` (`from_token_ids` signature of the loaded
   SavedModel: the in-graph decoding loop with its KV cache, as TF Serving runs it), plain
   ("ours", the default export) and XLA-compiled ("ours + XLA", `export(...,
   jit_compile=True)`; stock TF Serving runs it with `--xla_cpu_compilation_enabled=true`),
   vs keras-hub `GPT2CausalLM.generate` (preprocessor=None, token ids in), plain and XLA
   (`compile(jit_compile=True)`). Same size: 4 layers, 256 wide, vocabulary 30,522. XLA
   compiles at each side's first call, the untimed warm-up.

Calls alternate between the contenders so that load from other processes hits all alike; the
script prints medians and ratios (> 1: ours faster).

    python benchmarks/serving_latency.py            # about 6 minutes on 2 cores
    python benchmarks/serving_latency.py --quick    # fewer repeats
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import interleaved, machine_description  # noqa: E402

SIZE = {"num_layers": 4, "num_heads": 4, "hidden_dim": 256, "intermediate_dim": 1024}
VOCABULARY_SIZE = 30522


def load_vocabulary_and_texts():
    """BERT's uncased vocabulary (from the MiniLM wheel) and movie-review sentences."""
    from keras_transformer.data import load_movie_sentiment
    from keras_transformer.data.sources import pretrained_minilm_dir
    from keras_transformer.text import load_vocabulary

    folder = pretrained_minilm_dir() / "model"
    vocabulary = load_vocabulary(str(folder / "vocab.txt"))
    texts = load_movie_sentiment("test").texts
    return vocabulary, list(texts)


# ------------------------------------------------------------------------------------------
# Classifier latency.

# The two ways of padding the classifier rows compare at: `{key: what both sides do}`.
PADDINGS = {
    "longest": "both padded to the batch's longest text",
    "128": "both padded to 128",
}


def our_classifier(vocabulary):
    from keras_transformer.models import BertBackbone, BertClassifier

    keras.utils.set_random_seed(0)
    backbone = BertBackbone(vocabulary_size=len(vocabulary), max_sequence_length=512, **SIZE)
    return BertClassifier(backbone, num_classes=2)


def export_ours_classifier(vocabulary, folder, padding):
    """Our raw-text classifier SavedModel; returns `(ExportResult or path, module)`.

    `"longest"`: our export exactly as `keras_transformer.serving.export` writes it
    (truncation at 512, each batch padded to its longest text). `"128"`: the same module with
    `max_sequence_length=128` and `pad_to_longest = False` (the preprocessor's output is not
    cut to the batch's longest row), so every batch is 128 wide.
    """
    from keras_transformer.serving import export, serving_module
    from keras_transformer.text import WordPieceTokenizer

    model, tokenizer = our_classifier(vocabulary), WordPieceTokenizer(vocabulary)
    if padding == "longest":
        result = export(model, tokenizer, folder, name="ours", warmup=False)
        return result, serving_module(model, tokenizer)
    module = serving_module(model, tokenizer, max_sequence_length=int(padding))
    module.pad_to_longest = False  # read when `serve_text` is traced (at save)
    path = os.path.join(folder, f"ours_{padding}")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve_text})
    return path, module


def export_keras_hub_classifier(vocabulary, folder, padding):
    """keras-hub's `BertTextClassifier` with its preprocessor as a raw-string SavedModel.

    `"longest"`: the preprocessor at `sequence_length=512` (its default), then each batch cut
    to its longest row (the widest padding mask), as our export does. `"128"`: the
    preprocessor at `sequence_length=128`, uncut (keras-hub's own fixed padding).
    Returns `(path, preprocess)`: `preprocess(text)` gives the model inputs the export feeds.
    """
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), max_sequence_length=512, **SIZE
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    sequence_length = 512 if padding == "longest" else int(padding)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    classifier = keras_hub.models.BertTextClassifier(backbone, 2, preprocessor=preprocessor)

    def preprocess(text):
        x = preprocessor(text)  # token_ids, segment_ids, padding_mask: (B, sequence_length)
        if padding == "longest":
            width = tf.reduce_max(tf.reduce_sum(tf.cast(x["padding_mask"], tf.int32), axis=1))
            x = {name: value[:, :width] for name, value in x.items()}
        return x

    archive = keras.export.ExportArchive()
    archive.track(classifier)

    def serve(text):
        logits = classifier(preprocess(text), training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    archive.add_endpoint(
        "serving_default", serve, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    path = os.path.join(folder, f"keras_hub_{padding}")
    archive.write_out(path, verbose=False)
    return path, preprocess


def benchmark_classifier(repeats):
    """Raw-text classifier latency, ours vs keras-hub's, at equal padding, batch 1 and 32.

    For each padding of `PADDINGS`, both SavedModels take the same strings and run the same
    model size on inputs of the same width: `"longest"`, each batch padded to its longest
    text (our export as it is; keras-hub's cut to the longest row); `"128"`, every batch
    padded (and truncated) to 128 tokens (keras-hub's preprocessor at 128; ours with
    `pad_to_longest = False`). The four are timed in alternating rounds.

    Returns:
        dict: `latency` `{batch size: {padding: {"ours"|"keras-hub": median seconds}}}`;
        `widths` the same with the mean padded width of the timed batches; `export` our
        `ExportResult`; `mean_length`, `p99_length` of the texts in tokens.
    """
    import tensorflow_text  # noqa: F401 - keras-hub's SavedModel needs its ops to load.

    vocabulary, texts = load_vocabulary_and_texts()
    folder = tempfile.mkdtemp()
    print("classifier: exporting ours and keras-hub's, at each padding...", flush=True)
    paths, preprocess = {}, {}
    for padding in PADDINGS:
        ours, module = export_ours_classifier(vocabulary, folder, padding)
        if padding == "longest":
            export_result = ours
        paths[padding, "ours"] = getattr(ours, "path", ours)
        preprocess[padding, "ours"] = lambda text, module=module: module.pack(text)[1]
        paths[padding, "keras-hub"], hub_preprocess = export_keras_hub_classifier(
            vocabulary, folder, padding
        )
        preprocess[padding, "keras-hub"] = lambda text, f=hub_preprocess: f(text)["padding_mask"]
    functions = {
        key: tf.saved_model.load(path).signatures["serving_default"] for key, path in paths.items()
    }
    input_name = {key: next(iter(f.structured_input_signature[1])) for key, f in functions.items()}
    rng = np.random.default_rng(0)
    latency, widths = {}, {}
    for batch_size in (1, 32):
        batches = [
            tf.constant([texts[i] for i in rng.choice(len(texts), batch_size)]) for _ in range(16)
        ]
        cursor = {key: 0 for key in functions}

        def call(key, batches=batches, cursor=cursor):
            batch = batches[cursor[key] % len(batches)]
            cursor[key] += 1
            return functions[key](**{input_name[key]: batch})

        contenders = {key: (lambda key=key: call(key)) for key in functions}
        print(f"classifier: timing batch {batch_size}...", flush=True)
        seconds = interleaved(contenders, repeats if batch_size == 1 else max(repeats // 3, 2))
        latency[batch_size], widths[batch_size] = {}, {}
        for padding, side in functions:
            mean_width = np.mean([preprocess[padding, side](b).shape[1] for b in batches])
            latency[batch_size].setdefault(padding, {})[side] = seconds[padding, side]
            widths[batch_size].setdefault(padding, {})[side] = float(mean_width)
    lengths = [len(ids) + 2 for ids in _tokenize(vocabulary, texts[:2000])]
    return {
        "latency": latency,
        "widths": widths,
        "export": export_result,
        "mean_length": float(np.mean(lengths)),
        "p99_length": float(np.percentile(lengths, 99)),
    }


def _tokenize(vocabulary, texts):
    from keras_transformer.text import WordPieceTokenizer

    return WordPieceTokenizer(vocabulary)(tf.constant(texts)).to_list()


# ------------------------------------------------------------------------------------------
# Generation speed.

PROMPT_LENGTH = 16
NEW_TOKENS = 64


def export_ours_lm(folder, jit_compile=False):
    """Our mini GPT exported (`jit_compile`: its decoding XLA-compiled), loaded back: the
    `from_token_ids` signature of the SavedModel, as TF Serving would run it."""
    from keras_transformer.models import GPTBackbone, GPTCausalLM
    from keras_transformer.serving import export

    keras.utils.set_random_seed(0)
    backbone = GPTBackbone(
        vocabulary_size=VOCABULARY_SIZE, max_sequence_length=256, dropout=0.0, **SIZE
    )
    result = export(
        GPTCausalLM(backbone),
        None,
        folder,
        name="ours_xla" if jit_compile else "ours",
        max_new_tokens=NEW_TOKENS,
        warmup=False,
        jit_compile=jit_compile,
    )
    return tf.saved_model.load(result.path).signatures["from_token_ids"]


def keras_hub_lm(jit_compile):
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY_SIZE, max_sequence_length=256, dropout=0.0, **SIZE
    )
    model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    model.compile(sampler="greedy", jit_compile=jit_compile)
    return model


def benchmark_generation(repeats, with_xla=True):
    """Greedy tokens/s at batch 1 and 8, all contenders timed in alternating rounds.

    Returns:
        `{batch size: {name: new tokens per second}}`, names `"ours"`, `"keras-hub"` and with
        `with_xla` also `"ours + XLA"` and `"keras-hub + XLA"`. The XLA export's tokens are
        checked equal to the plain export's; keras-hub's model has other weights, so only
        its output shape is checked.
    """
    folder = tempfile.mkdtemp()
    print("generation: exporting ours, building keras-hub's...", flush=True)
    ours = {"ours": export_ours_lm(folder)}
    hub = {"keras-hub": keras_hub_lm(False)}
    if with_xla:
        ours["ours + XLA"] = export_ours_lm(folder, jit_compile=True)
        hub["keras-hub + XLA"] = keras_hub_lm(True)
    rng = np.random.default_rng(0)
    results = {}
    for batch_size in (1, 8):
        prompt = rng.integers(1000, VOCABULARY_SIZE, (batch_size, PROMPT_LENGTH)).astype("int32")
        prompt_mask = np.ones_like(prompt)
        buffer = np.pad(prompt, ((0, 0), (0, NEW_TOKENS)))
        buffer_mask = np.pad(prompt_mask, ((0, 0), (0, NEW_TOKENS))).astype(bool)
        contenders = {}
        for name, function in ours.items():
            contenders[name] = lambda f=function, ids=prompt, mask=prompt_mask: f(
                token_ids=tf.constant(ids),
                padding_mask=tf.constant(mask),
                max_new_tokens=tf.constant(NEW_TOKENS),
                temperature=tf.constant(0.0),
                top_k=tf.constant(0),
                top_p=tf.constant(1.0),
                seed=tf.constant(0),
                num_beams=tf.constant(1),
                length_penalty=tf.constant(1.0),
            )["token_ids"].numpy()
        for name, model in hub.items():
            contenders[name] = lambda m=model, ids=buffer, mask=buffer_mask: m.generate(
                {"token_ids": ids, "padding_mask": mask}, stop_token_ids=None
            )
        print(
            f"generation: batch {batch_size}, warm-up (XLA compiles here) and timing...", flush=True
        )
        check = {name: contenders[name]() for name in contenders}
        seconds = interleaved(contenders, repeats)
        results[batch_size] = {
            name: batch_size * NEW_TOKENS / value for name, value in seconds.items()
        }
        shapes = {
            name: np.asarray(out["token_ids"] if isinstance(out, dict) else out).shape
            for name, out in check.items()
        }
        assert len(set(shapes.values())) == 1, shapes
        for name in ours:
            np.testing.assert_array_equal(check[name], check["ours"], err_msg=name)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA variants")
    parser.add_argument("--only", choices=("classifier", "generation"), default=None)
    args = parser.parse_args()
    print(machine_description())
    repeats = 10 if args.quick else 40
    if args.only in (None, "classifier"):
        result = benchmark_classifier(repeats)
        latency, widths, ours = result["latency"], result["widths"], result["export"]
        print(
            f"\nRaw-text classifier SavedModel, mini (4x256, V=30,522), movie-review sentences "
            f"(mean {result['mean_length']:.0f} tokens, p99 {result['p99_length']:.0f}); median "
            "ms per request (mean padded width T):"
        )
        print(f"{'':52s}{'batch 1':>16s}{'batch 32':>16s}")
        for padding, title in PADDINGS.items():
            for side in ("ours", "keras-hub"):
                cells = "".join(
                    f"{latency[b][padding][side] * 1e3:9.1f} (T {widths[b][padding][side]:3.0f})"
                    for b in (1, 32)
                )
                print(f"{side + ', ' + title:52s}{cells}")
        for padding, title in PADDINGS.items():
            ratios = ", ".join(
                f"batch {b} {latency[b][padding]['keras-hub'] / latency[b][padding]['ours']:.2f}x"
                for b in (1, 32)
            )
            print(f"{title}: keras-hub / ours = {ratios}")
        print(
            f"export size: variables/ {ours.variables_bytes / 1e6:.1f} MB for "
            f"{ours.weights_bytes / 1e6:.1f} MB of weights = {ours.size_ratio:.3f}x"
        )
    if args.only in (None, "generation"):
        speed = benchmark_generation(max(repeats // 4, 3), with_xla=not args.no_xla)
        print(
            f"\nGreedy generation, mini GPT (4x256, V=30,522), {PROMPT_LENGTH}-token prompts, "
            f"{NEW_TOKENS} new tokens; new tokens per second:"
        )
        print(f"{'':26s}{'batch 1':>10s}{'batch 8':>10s}")
        for name in speed[1]:
            print(f"{name:26s}{speed[1][name]:10.0f}{speed[8][name]:10.0f}")
        for batch_size in (1, 8):
            row = speed[batch_size]
            line = f"batch {batch_size}: ours / keras-hub = {row['ours'] / row['keras-hub']:.2f}x"
            if "ours + XLA" in row:
                ratio = row["ours + XLA"] / row["keras-hub + XLA"]
                line += f", ours + XLA / keras-hub + XLA = {ratio:.2f}x"
            print(line)


if __name__ == "__main__":
    main()
