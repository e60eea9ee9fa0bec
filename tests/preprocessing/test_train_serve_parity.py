"""Train/serve parity by test: for 2,000 varied strings, what the training pipeline feeds the
model equals, bit for bit, what the exported SavedModel computes from the same raw strings in a
process that imports only TensorFlow; and the served logits equal the in-memory model's.

The strings (seeded): empty, whitespace only, accents, emoji, CJK, control characters, literal
`[CLS]` / `[MASK]` / `[SEP]`, invalid UTF-8, and texts longer than the run's sequence length.
The export is made with the run's preprocessor (saved and loaded as a run folder does). The
counts are printed (`pytest -s`) as one `[parity]` JSON line.
"""

import json
import os
import pathlib
import random
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.data.pipelines import classification_dataset
from keras_transformer.models import BertBackbone, BertClassifier
from keras_transformer.preprocessing import (
    ClassifierPreprocessor,
    load_preprocessor,
    save_preprocessor,
)
from keras_transformer.serving import export
from keras_transformer.text import WordPieceTokenizer

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "text"))
from text_samples import CONTROLS, EMOJI, SCRIPTS, sample_vocabulary, varied_strings  # noqa: E402

SEQUENCE_LENGTH = 24  # The run's; the model allows 64.
COUNT = 2000
# Served batch sizes, in turn: widths differ from batch to batch.
BATCH_SIZES = (1, 7, 64, 250)

RUNNER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    path, strings_path, sizes, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    strings = [bytes.fromhex(h) for h in json.load(open(strings_path))]
    loaded = tf.saved_model.load(path)
    preprocess = loaded.signatures["preprocess"]
    classify = loaded.signatures["serving_default"]
    arrays, start, index = {}, 0, 0
    while start < len(strings):
        batch = tf.constant(strings[start : start + sizes[index % len(sizes)]], tf.string)
        x = preprocess(text=batch)
        for name in ("token_ids", "segment_ids", "padding_mask"):
            arrays[f"{name}_{index}"] = x[name].numpy()
        arrays[f"logits_{index}"] = classify(text=batch)["logits"].numpy()
        start += len(batch)
        index += 1
    np.savez(out, **arrays)
    modules = [m for m in ("keras_transformer", "tensorflow_text", "keras_hub") if m in sys.modules]
    print(json.dumps({"batches": index, "modules": modules}))
    """
)


def parity_strings(count=COUNT, seed=13):
    """`count` seeded strings: the tokenizer sample plus the cases parity must hold on."""
    rng = random.Random(seed)
    words = ["the", "movie", "was", "great", "terrible", "plot", "naïve", "café", "東京"]
    special = [
        "",
        " ",
        "\t\n  \u3000",
        "[CLS]",
        "[MASK]",
        "the [MASK] was [CLS] great [SEP]",
        "[PAD][UNK]",
        "\x00\x07 control \x1f\x7f",
        "".join(EMOJI),
        "".join(SCRIPTS),
    ]
    strings = special + [b"\xff\xfe invalid \xc3 utf-8".decode("utf-8", "surrogateescape")]
    for _ in range(300):  # Over-long: up to ~4x the sequence length.
        strings.append(" ".join(rng.choice(words) for _ in range(rng.randrange(20, 100))))
    literal = ["[CLS]", "[MASK]", "[SEP]", "[PAD]", "[mask]"]
    for _ in range(100):
        pool = words + CONTROLS + EMOJI + literal
        pieces = [rng.choice(pool) for _ in range(rng.randrange(1, 12))]
        strings.append(rng.choice(["", " ", "\t"]).join(pieces))
    strings += varied_strings(count - len(strings), seed=seed)
    return strings[:count]


def to_bytes(text):
    return text.encode("utf-8", "surrogateescape")


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    strings = parity_strings()
    encoded = [to_bytes(s) for s in strings]
    tokenizer = WordPieceTokenizer(sample_vocabulary(strings))
    keras.utils.set_random_seed(3)
    backbone = BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=64,
        dropout=0.0,
    )
    model = BertClassifier(backbone, num_classes=3)
    # The run: its preprocessor feeds training and evaluation, and is saved in its folder.
    run_preprocessor = ClassifierPreprocessor(tokenizer, SEQUENCE_LENGTH)
    save_preprocessor(run_preprocessor, str(folder / "run" / "preprocessor.json"))
    examples = tf.data.Dataset.from_tensor_slices((encoded, [0] * len(encoded)))
    batches = classification_dataset(examples, run_preprocessor, None, 256)
    fed = {name: [] for name in ("token_ids", "segment_ids", "padding_mask")}
    for x, _ in batches:
        for name in fed:
            fed[name].append(x[name].numpy())
    fed = {name: np.concatenate(parts) for name, parts in fed.items()}
    logits = model.predict(batches.map(lambda x, y: x), verbose=0)
    # The export, from the run folder's preprocessor.
    restored = load_preprocessor(str(folder / "run" / "preprocessor.json"))
    result = export(model, preprocessor=restored, path=folder, name="parity", warmup=False)
    strings_path = folder / "strings.json"
    strings_path.write_text(json.dumps([b.hex() for b in encoded]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    out = folder / "served.npz"
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            result.path,
            str(strings_path),
            json.dumps(BATCH_SIZES),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(folder),
        timeout=600,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    served = np.load(out)
    batches = [
        {name: served[f"{name}_{i}"] for name in (*fed, "logits")} for i in range(report["batches"])
    ]
    return strings, tokenizer, fed, logits, batches, report


def test_served_inputs_equal_the_training_pipeline_bit_for_bit(parity):
    strings, tokenizer, fed, _, batches, report = parity
    assert report["modules"] == []  # The server process imported only TensorFlow.
    start = 0
    for batch in batches:
        size, width = batch["token_ids"].shape
        rows = slice(start, start + size)
        for name in ("token_ids", "segment_ids", "padding_mask"):
            assert batch[name].dtype == np.int32
            np.testing.assert_array_equal(batch[name], fed[name][rows, :width].astype(np.int32))
        # Beyond the served width, the training rows hold only padding.
        assert not fed["padding_mask"][rows, width:].any()
        assert (fed["token_ids"][rows, width:] == tokenizer.token_to_id("[PAD]")).all()
        assert width == max(int(fed["padding_mask"][rows].sum(axis=1).max()), 2)
        start += size
    assert start == len(strings)


def test_served_logits_equal_the_in_memory_model_for_every_string(parity):
    strings, tokenizer, fed, logits, batches, _ = parity
    served = np.concatenate([batch["logits"] for batch in batches])
    assert served.shape == (len(strings), 3)
    np.testing.assert_allclose(served, logits, atol=1e-5, rtol=0)
    lengths = [len(ids) + 2 for ids in tokenizer([to_bytes(s) for s in strings]).to_list()]
    counts = {
        "strings": len(strings),
        "empty": sum(s == "" for s in strings),
        "whitespace_only": sum(s != "" and not s.strip() for s in strings),
        "longer_than_sequence_length": sum(n > SEQUENCE_LENGTH for n in lengths),
        "sequence_length": SEQUENCE_LENGTH,
        "rows_filling_sequence_length": int(
            (fed["padding_mask"].sum(axis=1) == SEQUENCE_LENGTH).sum()
        ),
        "with_control_characters": sum(any(c in s for c in CONTROLS + ["\x00"]) for s in strings),
        "with_emoji": sum(any(e in s for e in EMOJI) for s in strings),
        "with_cjk": sum(any("\u4e00" <= c <= "\u9fff" for c in s) for s in strings),
        "with_literal_special_tokens": sum(
            any(t in s for t in ("[CLS]", "[SEP]", "[MASK]")) for s in strings
        ),
        "served_batches": len(batches),
        "max_abs_logit_difference": float(np.abs(served - logits).max()),
    }
    print("[parity] " + json.dumps(counts))
    assert counts["longer_than_sequence_length"] >= 300 and counts["empty"] >= 1
    assert counts["whitespace_only"] >= 1 and counts["with_literal_special_tokens"] >= 30
