"""The example requests and responses of docs/SERVING.md, produced by running the exports.

Exports tiny models with fixed random weights (a classifier, a masked LM, a character-level
causal LM; so their labels and texts mean nothing) and the real pretrained MiniLM encoder,
runs each example request through a TF1 `Session` by tensor names, as TF Serving's C++ loader
does (inputs left out of a request take the signature's defaults), and formats request and
answer as TF Serving's REST JSON (`rest_request`, `rest_response`); floats rounded to 4 digits.
Also runs `saved_model_cli show` on the classifier. The results go into the
`serving_examples` and `saved_model_cli` blocks of docs/SERVING.md (`--no-publish`: print only).

    python -m benchmarks.serving_examples                 # about a minute
    python -m benchmarks.serving_examples --skip-minilm --no-publish
"""

import argparse
import json
import os
import string
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.publish import add_arguments, check_or_exit, publishing, replace_block  # noqa: E402

SERVING_PAGE = "docs/SERVING.md"
BLOCKS = ("serving_examples", "saved_model_cli", "export_sizes")
WORDS = ["the", "movie", "was", "great", "terrible", "paris", "capital", "of", "france", "is"]
CHARACTER_CORPUS = ["ROMEO: But soft, what light through yonder window breaks?", "To be, or not."]


def round_floats(value, digits=4):
    """Every float in a JSON-able structure rounded to `digits` decimals."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [round_floats(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    return value


def shorten(value, keep=4):
    """Long lists cut for the page: a flat list keeps `keep` values and `"..."`; a nested one
    becomes one string naming its shape."""
    if isinstance(value, dict):
        return {k: shorten(v, keep) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [shorten(v, keep) for v in value]
    array = np.asarray(value, dtype=object) if isinstance(value, list) else None
    if array is None or array.size <= 2 * keep:
        return value
    if array.ndim == 1:
        return [*value[:keep], "..."]
    return [f"... {' x '.join(str(d) for d in array.shape)} values ..."]


def feed_value(value):
    """A request value as the numpy array fed to the Session (strings as UTF-8 bytes)."""
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
    if array.dtype.kind in "iu":
        return array.astype(np.int32)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    return array


def run_in_session(path, requests):
    """`[{output: numpy array}]`: each `(signature, inputs)` run through a TF1 Session."""
    import tensorflow as tf

    answers = []
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        for signature, inputs in requests:
            definition = meta_graph.signature_def[signature]
            feeds = {definition.inputs[k].name: feed_value(v) for k, v in inputs.items()}
            fetches = {k: v.name for k, v in definition.outputs.items()}
            answers.append(session.run(fetches, feeds))
    return answers


def export_models(folder, with_minilm):
    """`{kind: (version path, tokenizer)}` of the example exports."""
    import keras

    from keras_transformer.models import (
        BertBackbone,
        BertClassifier,
        BertMaskedLM,
        GPTBackbone,
        GPTCausalLM,
    )
    from keras_transformer.serving import export
    from keras_transformer.text import SPECIAL_TOKENS, CharacterTokenizer, WordPieceTokenizer

    letters = list(string.ascii_lowercase + string.digits)
    vocabulary = [*SPECIAL_TOKENS, *WORDS, *letters, *("##" + c for c in letters)]
    vocabulary += list(string.punctuation)
    word_pieces = WordPieceTokenizer(vocabulary)
    characters = CharacterTokenizer.from_text(CHARACTER_CORPUS)
    bert = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128}

    def backbone(seed):
        keras.utils.set_random_seed(seed)
        return BertBackbone(
            vocabulary_size=len(vocabulary), max_sequence_length=32, dropout=0.0, **bert
        )

    keras.utils.set_random_seed(3)
    lm = GPTCausalLM(
        GPTBackbone(
            vocabulary_size=characters.vocabulary_size(),
            max_sequence_length=48,
            dropout=0.0,
            **bert,
        )
    )
    exports = {
        "classifier": (
            export(
                BertClassifier(backbone(1), num_classes=2),
                word_pieces,
                folder,
                name="classifier",
                class_names=["negative", "positive"],
            ),
            word_pieces,
        ),
        "masked_lm": (
            export(BertMaskedLM(backbone(2)), word_pieces, folder, name="masked_lm", top_k=3),
            word_pieces,
        ),
        "causal_lm": (
            export(lm, characters, folder, name="causal_lm", max_new_tokens=8),
            characters,
        ),
    }
    if with_minilm:
        from keras_transformer.pretrained import load_minilm

        exports["minilm"] = (export(load_minilm(), path=folder, name="minilm"), None)
    # (SavedModel path, tokenizer, ExportResult) per kind.
    return {kind: (result.path, tokenizer, result) for kind, (result, tokenizer) in exports.items()}


def examples(exports):
    """`[(title, kind, signature, inputs, form)]`: the requests the page shows."""
    import tensorflow as tf

    words = exports["classifier"][1]
    cls_id, sep_id = words.token_to_id("[CLS]"), words.token_to_id("[SEP]")
    ids = [cls_id, *words(tf.constant("The movie was great!")).numpy().tolist(), sep_id]
    characters = exports["causal_lm"][1]
    eos_id = characters.token_to_id("[EOS]")
    prompt_ids = [eos_id, *characters(tf.constant("ROMEO:")).numpy().tolist()]
    listed = [
        ("Classifier, row form", "classifier", "serving_default",
         {"text": ["The movie was great!", "Terrible."]}, "instances"),
        ("Classifier, columnar form", "classifier", "serving_default",
         {"text": ["The movie was great!", "Terrible."]}, "inputs"),
        ("Classifier, token ids (`[CLS] the movie was great ! [SEP]`)", "classifier",
         "from_token_ids", {"token_ids": [ids], "padding_mask": [[1] * len(ids)]}, "inputs"),
        ("Masked LM", "masked_lm", "fill_mask",
         {"text": ["Paris is the [MASK] of France."]}, "instances"),
        ("Causal LM, greedy with the default `max_new_tokens` (8 in this export)", "causal_lm",
         "generate", {"prompts": ["ROMEO:", "But soft"]}, "instances"),
        ("Causal LM, sampling settings in the columnar form", "causal_lm", "generate",
         {"prompts": ["ROMEO:"], "max_new_tokens": 5, "temperature": 0.8, "top_k": 10,
          "seed": 1}, "inputs"),
        ("Causal LM, token ids (`[EOS] R O M E O :`)", "causal_lm", "from_token_ids",
         {"token_ids": [prompt_ids], "padding_mask": [[1] * len(prompt_ids)],
          "max_new_tokens": 4}, "inputs"),
    ]  # fmt: skip
    if "minilm" in exports:
        listed.append(
            ("MiniLM (`--pretrained minilm`), sentence embedding (384 values, L2-normalized; "
             "cut here)", "minilm", "embed", {"text": ["Hi!"]}, "instances")
        )  # fmt: skip
    return listed


def examples_markdown(exports):
    """The `serving_examples` block: each request and the answer the Session gave."""
    from keras_transformer.serving import rest_request, rest_response

    listed = examples(exports)
    by_kind = {}
    for index, (_, kind, signature, inputs, _) in enumerate(listed):
        by_kind.setdefault(kind, []).append((index, (signature, inputs)))
    answers = {}
    for kind, items in by_kind.items():
        outputs = run_in_session(exports[kind][0], [request for _, request in items])
        answers.update({index: out for (index, _), out in zip(items, outputs, strict=True)})
    parts = []
    for index, (title, kind, signature, inputs, form) in enumerate(listed):
        request = rest_request(inputs, None if signature == "serving_default" else signature, form)
        response = round_floats(rest_response(answers[index], form))
        if kind == "minilm":
            response = shorten(response)
        parts += [
            f"{title}:",
            "```json",
            json.dumps(request, ensure_ascii=False),
            "```",
            "```json",
            json.dumps(response, ensure_ascii=False),
            "```",
        ]
    return "\n".join(parts)


def saved_model_cli_markdown(path):
    """The `saved_model_cli` block: `show` of the classifier's `serving_default`."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = [cli, "show", "--dir", path, "--tag_set", "serve", "--signature_def",
               "serving_default"]  # fmt: skip
    shown = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3"}
    ).stdout.strip()  # fmt: skip
    return "\n".join(
        [
            "`saved_model_cli show --dir saved_models/classifier/1 --tag_set serve "
            "--signature_def serving_default` (the example classifier):",
            "```",
            shown,
            "```",
        ]
    )


def export_sizes_markdown(exports):
    """One line per export: the bytes of `variables/` against the weights' own bytes."""
    lines = []
    for name, (_, _, result) in exports.items():
        lines.append(
            f"- {name}: `variables/` {result.variables_bytes / 1e6:,.1f} MB for "
            f"{result.weights_bytes / 1e6:,.1f} MB of weights ({result.size_ratio:.4f}x)"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-minilm", action="store_true", help="leave out the MiniLM example")
    add_arguments(parser, docs=SERVING_PAGE)
    args = parser.parse_args(argv)
    if publishing(args):
        check_or_exit([(args.docs, block) for block in BLOCKS])
    with tempfile.TemporaryDirectory() as folder:
        exports = export_models(folder, with_minilm=not args.skip_minilm)
        blocks = {
            "serving_examples": examples_markdown(exports),
            "saved_model_cli": saved_model_cli_markdown(exports["classifier"][0]),
            "export_sizes": export_sizes_markdown(exports),
        }
    for text in blocks.values():
        print(text + "\n")
    if publishing(args):
        for name, text in blocks.items():
            replace_block(args.docs, name, text, source="python -m benchmarks.serving_examples")
        print(f"Written to the {', '.join(BLOCKS)} blocks of {args.docs}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
