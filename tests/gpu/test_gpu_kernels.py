"""Every op has a GPU kernel: the training step of each family (the step Keras `fit` runs, as
the workflows compile it), our loop's train function under a 2-replica `MirroredStrategy`, and
each export signature are traced (not run) and every op, library functions included, must have
a registered GPU (or any-device) kernel, except the named host-side ops of `HOST_SIDE_OPS`
(string and tokenizer ops, text signatures only). A positive control proves a CPU-only op is
caught, with its name and where it was created. Run with `-s` for the table of op counts."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.graph_checks import (
    HOST_SIDE_OPS,
    NoGpuKernelError,
    assert_gpu_ready,
    graph_ops,
    has_gpu_kernel,
    keras_fit_step,
    ops_without_gpu_kernel,
)
from keras_transformer.models import (
    BertBackbone,
    BertClassifier,
    BertMaskedLM,
    GPTBackbone,
    GPTCausalLM,
    Seq2SeqBackbone,
    Seq2SeqTransformer,
)
from keras_transformer.preprocessing import Seq2SeqPreprocessor
from keras_transformer.serving import serving_module
from keras_transformer.text import (
    SPECIAL_TOKENS,
    BytePairTokenizer,
    CharacterTokenizer,
    WordPieceTokenizer,
    train_byte_pair_vocabulary,
)
from workflows import classify, distill, finetune, seq2seq, transfer
from workflows.training import make_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
B, T, V, P = 4, 8, 50, 3  # batch, sequence length, vocabulary, masked positions
# One block: every op type a block makes is in it, more blocks only repeat them (and double the
# tracing time).
TINY = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=T)
# Fewer ops than this means the trace missed the model (a step has thousands).
MIN_TRAINING_OPS = 1000
MIN_SIGNATURE_OPS = 100
COUNTS = {}  # name -> ops checked, printed at the end of the module


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    yield
    width = max(map(len, COUNTS), default=0)
    print("\n\nops checked for a GPU kernel (library functions included)")
    for name, count in COUNTS.items():
        print(f"  {name:<{width}}  {count:>6}")


def check(name, function, minimum, allow=HOST_SIDE_OPS):
    count = assert_gpu_ready(function, allow=allow, name=name)
    assert count > minimum, f"{name}: only {count} ops traced (expected > {minimum})"
    COUNTS[name] = count
    return count


def bert_batch(rng, with_mask_positions=False):
    """Two batches of BERT inputs."""
    x = {
        "token_ids": rng.integers(1, V, (2 * B, T)).astype("int32"),
        "segment_ids": np.zeros((2 * B, T), "int32"),
        "padding_mask": np.ones((2 * B, T), "int32"),
    }
    if with_mask_positions:
        x["mask_positions"] = rng.integers(0, T, (2 * B, P)).astype("int32")
    return x


def dataset(*parts):
    return tf.data.Dataset.from_tensor_slices(tuple(parts)).batch(B, drop_remainder=True)


def optimizer():
    """The workflows' optimizer: AdamW, warm-up, cosine decay, global-norm clipping."""
    return make_optimizer(1e-3, total_steps=100, warmup_steps=10, weight_decay=0.01, clip_norm=1.0)


def classifier(trainable_backbone, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = BertBackbone(vocabulary_size=V, **TINY)
    model = BertClassifier(backbone, num_classes=3)
    if not trainable_backbone:
        backbone.trainable = False
    return model


def classifier_data(rng):
    return dataset(bert_batch(rng), rng.integers(0, 3, (2 * B,)).astype("int32"))


# --- the check itself -----------------------------------------------------------------------


def split_words(text):
    return tf.strings.split(text).to_tensor()  # StringSplitV2: a CPU-only kernel


def test_a_cpu_only_op_is_caught_with_its_name_and_where():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def words(text):
        return tf.strings.length(split_words(text))

    offenders = ops_without_gpu_kernel(words, allow=())
    assert "StringSplitV2" in {op.type for op in offenders}
    with pytest.raises(NoGpuKernelError) as caught:
        assert_gpu_ready(words, allow=(), name="words")
    message = str(caught.value)
    assert "StringSplitV2 x1 (kernels: CPU)" in message
    assert "test_gpu_kernels.py:" in message and "(split_words)" in message
    assert "of words" in message
    assert assert_gpu_ready(words) == len(graph_ops(words))  # host-side ops: allowed


class HashedStrings(keras.layers.Layer):
    """Adds nothing, through two CPU-only ops (AsString, StringToHashBucketFast)."""

    def call(self, x):
        buckets = tf.strings.to_hash_bucket_fast(tf.strings.as_string(x), 7)
        return x + tf.cast(buckets, x.dtype) * 0.0


def test_a_cpu_only_op_in_a_fit_step_is_caught():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(HashedStrings()(inputs)))
    model.compile(optimizer="adam", loss="mse")
    step = keras_fit_step(model, dataset(np.ones((2 * B, 4), "float32"), np.ones((2 * B, 2))))
    with pytest.raises(NoGpuKernelError) as caught:
        assert_gpu_ready(step, name="the fit step")
    lines = str(caught.value).splitlines()
    line = HashedStrings.call.__code__.co_firstlineno + 1  # the line that makes both ops
    assert lines[0].startswith("2 of the ") and "ops of the fit step (2 op types)" in lines[0]
    assert sorted(lines[1:3]) == [
        f"  {op} x1 (kernels: CPU) at tests/gpu/test_gpu_kernels.py:{line} (call)"
        for op in ("AsString", "StringToHashBucketFast")
    ]


def test_ops_inside_nested_functions_are_found():
    @tf.function
    def inner(x):
        return tf.strings.split(x)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.bool)])
    def outer(text, flag):
        return tf.cond(flag, lambda: tf.size(inner(text).flat_values), lambda: 0)

    found = {op.type: op for op in graph_ops(outer)}
    assert "StatelessIf" in found and "PartitionedCall" in found  # the cond, the call
    split = found["StringSplitV2"]  # in `inner`, called from the cond's branch
    assert split.name.startswith("__inference_inner_")
    assert split.where.startswith("tests/gpu/test_gpu_kernels.py:") and "(inner)" in split.where
    assert [op.name for op in ops_without_gpu_kernel(outer, allow=())] == [split.name]


def test_kernel_registry_reads_devices():
    assert has_gpu_kernel("MatMul")
    assert has_gpu_kernel("BroadcastGradientArgs")  # DEFAULT: runs on any device
    assert not has_gpu_kernel("StringSplitV2") and not has_gpu_kernel("RaggedGather")
    assert not has_gpu_kernel("NoSuchOp")


# --- training steps as Keras fit runs them -------------------------------------------------


def test_bert_masked_lm_step():
    rng = np.random.default_rng(0)
    model = BertMaskedLM(BertBackbone(vocabulary_size=V, **TINY))
    model.compile(optimizer=optimizer())
    x = bert_batch(rng, True)
    y = rng.integers(1, V, (2 * B, P)).astype("int32")
    check(
        "masked LM (fit)",
        keras_fit_step(model, dataset(x, y, np.ones((2 * B, P)))),
        MIN_TRAINING_OPS,
    )


def test_gpt_causal_lm_step():
    rng = np.random.default_rng(1)
    model = GPTCausalLM(GPTBackbone(vocabulary_size=V, **TINY))
    model.compile(optimizer=optimizer())
    ids = rng.integers(1, V, (2 * B, T + 1)).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": np.ones((2 * B, T), "int32")}
    data = dataset(x, ids[:, 1:], np.ones((2 * B, T), "float32"))
    check("causal LM (fit)", keras_fit_step(model, data), MIN_TRAINING_OPS)


def test_classifier_transfer_step():
    model = classifier(trainable_backbone=False)
    classify.compile_classifier(model, transfer.Config(), steps_per_epoch=10)
    step = keras_fit_step(model, classifier_data(np.random.default_rng(2)))
    check("classifier transfer (fit)", step, 200)


def test_classifier_finetune_step():
    model = classifier(trainable_backbone=True)
    finetune.set_trainable_blocks(model.backbone, 0)
    classify.compile_classifier(model, finetune.Config(), steps_per_epoch=10)
    step = keras_fit_step(model, classifier_data(np.random.default_rng(3)))
    check("classifier fine-tune (fit)", step, MIN_TRAINING_OPS)


def test_distillation_step():
    config = distill.Config(init_from="unused", cosine_weight=0.5)
    teacher = classifier(trainable_backbone=True, seed=4)
    student = distill.build_student(teacher, config)
    distiller = distill.Distiller(
        teacher, student, config.alpha, config.temperature, config.cosine_weight
    )
    distiller.compile(
        optimizer=classify.classifier_optimizer(config, 10),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    step = keras_fit_step(distiller, classifier_data(np.random.default_rng(4)))
    check("distillation (fit)", step, MIN_TRAINING_OPS)


def seq2seq_model(seed=5):
    keras.utils.set_random_seed(seed)
    return Seq2SeqTransformer(Seq2SeqBackbone(vocabulary_size=V, **TINY))


def seq2seq_data(rng, one_hot):
    x = {
        "encoder_token_ids": rng.integers(1, V, (2 * B, T)).astype("int32"),
        "encoder_padding_mask": np.ones((2 * B, T), "int32"),
        "decoder_token_ids": rng.integers(1, V, (2 * B, T)).astype("int32"),
        "decoder_padding_mask": np.ones((2 * B, T), "int32"),
    }
    y = rng.integers(1, V, (2 * B, T)).astype("int32")
    data = dataset(x, y, np.ones((2 * B, T), "float32"))
    return data.map(lambda x, y, w: (x, tf.one_hot(y, V), w)) if one_hot else data


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_seq2seq_step(label_smoothing):
    model = seq2seq_model()
    seq2seq.compile_model(model, seq2seq.Config(label_smoothing=label_smoothing))
    data = seq2seq_data(np.random.default_rng(6), one_hot=bool(label_smoothing))
    name = "seq2seq (fit)" + (" label smoothing" if label_smoothing else "")
    check(name, keras_fit_step(model, data), MIN_TRAINING_OPS)


# --- our training loop, 2 replicas -----------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    import numpy as np
    import tensorflow as tf
    from keras_transformer.distribute import split_cpu
    from keras_transformer.graph_checks import assert_gpu_ready
    from keras_transformer.models import GPTBackbone, GPTCausalLM
    from keras_transformer.training.data import distribute_dataset
    from keras_transformer.training.steps import make_train_function
    from workflows.training import make_optimizer

    strategy = tf.distribute.MirroredStrategy(split_cpu(2))
    tiny = dict(TINY)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, V, (2 * B, T + 1)).astype("int32")
    mask = np.ones((2 * B, T), "int32")
    cases = {
        "causal LM": (
            lambda: GPTCausalLM(GPTBackbone(vocabulary_size=V, **tiny)),
            ({"token_ids": ids[:, :-1], "padding_mask": mask}, ids[:, 1:]),
        ),
    }
    counts = {}
    for name, (build, data) in cases.items():
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(B, drop_remainder=True)
        with strategy.scope():
            model = build()
            model.compile(optimizer=make_optimizer(1e-3, 100, 10, 0.01, 1.0))
            model._symbolic_build(data_batch=dataset.element_spec)  # as training.fit builds
        train_function = make_train_function(model, strategy, sync_stop=True)
        iterator = iter(distribute_dataset(dataset, strategy))
        concrete = train_function.get_concrete_function(iterator, tf.constant(False))
        counts[name] = assert_gpu_ready(concrete, name=f"training.fit {name} step")
    print(json.dumps(counts))
    """
)


@pytest.fixture(scope="module", autouse=True)
def mirrored_run():
    """The 2-replica trace, started in a fresh process (the CPU must be split before TensorFlow
    starts) when the module starts, so it runs while the other tests trace."""
    settings = f"B, T, V, TINY = {B}, {T}, {V}, {TINY!r}\n"
    process = subprocess.Popen(
        [sys.executable, "-c", settings + MIRRORED_SCRIPT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_our_loop_step_on_two_replicas(mirrored_run):
    """`training.steps.make_train_function` (multi-worker stop flags, replica-summed gradients)
    under `MirroredStrategy` over 2 logical CPUs."""
    stdout, stderr = mirrored_run.communicate(timeout=300)
    assert mirrored_run.returncode == 0, stderr[-3000:]
    counts = json.loads(stdout.strip().splitlines()[-1])
    assert set(counts) == {"causal LM"}
    for name, count in counts.items():
        assert count > MIN_TRAINING_OPS, f"{name}: only {count} ops traced"
        COUNTS[f"training.fit {name} (2 replicas)"] = count


# --- export signatures --------------------------------------------------------------------------

WORDS = ["the", "movie", "was", "great", "terrible", "an", "it"]


def word_pieces():
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocabulary = list(SPECIAL_TOKENS) + WORDS + letters + ["##" + c for c in letters]
    return WordPieceTokenizer(vocabulary + list(".,!?'"))


def signatures(module):
    """`{name: tf.function}` of a serving module, each function once (aliases dropped)."""
    unique = {}
    for name, function in module.signatures().items():
        if all(function is not seen for seen in unique.values()):
            unique[name] = function
    return unique


def bert(seed):
    keras.utils.set_random_seed(seed)
    return BertBackbone(vocabulary_size=word_pieces().vocabulary_size(), **TINY)


@pytest.fixture(scope="module")
def exports():
    """`{kind: {signature: tf.function}}`: the signatures `export` saves, for each model kind."""
    characters = CharacterTokenizer.from_text(["To be, or not to be: that is the question."])
    dates = CharacterTokenizer.from_text(["12 may 2020", "2020-05-12"])
    keras.utils.set_random_seed(10)
    lm = GPTCausalLM(GPTBackbone(vocabulary_size=characters.vocabulary_size(), **TINY))
    texts = ["To be, or not to be: that is the question.", "Whether 'tis nobler, café?"] * 4
    byte_pairs = BytePairTokenizer(
        *train_byte_pair_vocabulary(texts, 300, special_tokens=["<|endoftext|>"], verbose=False),
        special_tokens=["<|endoftext|>"],
    )
    keras.utils.set_random_seed(12)
    bpe_lm = GPTCausalLM(GPTBackbone(vocabulary_size=byte_pairs.vocabulary_size(), **TINY))
    keras.utils.set_random_seed(11)
    translator = Seq2SeqTransformer(
        Seq2SeqBackbone(vocabulary_size=dates.vocabulary_size(), **TINY)
    )
    modules = {
        "classifier": serving_module(
            BertClassifier(bert(7), num_classes=3), word_pieces(), class_names=list("abc")
        ),
        "encoder": serving_module(bert(8), word_pieces(), pooling="mean"),
        "masked LM": serving_module(BertMaskedLM(bert(9)), word_pieces(), top_k=3),
        "causal LM": serving_module(lm, characters, max_new_tokens=4),
        "causal LM, BPE": serving_module(bpe_lm, byte_pairs, max_new_tokens=4),
        "seq2seq": serving_module(
            translator, preprocessor=Seq2SeqPreprocessor(dates, T, T), max_new_tokens=4
        ),
    }
    return {kind: signatures(module) for kind, module in modules.items()}


@pytest.mark.parametrize(
    "kind", ["classifier", "encoder", "masked LM", "causal LM", "causal LM, BPE", "seq2seq"]
)
def test_export_signatures(exports, kind):
    functions = exports[kind]
    assert "from_token_ids" in functions and len(functions) >= 2
    for name, function in functions.items():
        # The model's own signature takes ids: not even host-side string ops belong there.
        allow = () if name == "from_token_ids" else HOST_SIDE_OPS
        check(f"export {kind}: {name}", function, MIN_SIGNATURE_OPS, allow=allow)


def test_every_allowed_op_is_met_in_a_text_signature(exports):
    """The allow-list stays minimal: each entry is an op some export really holds."""
    met = {
        op.type
        for functions in exports.values()
        for function in functions.values()
        for op in ops_without_gpu_kernel(function, allow=())
    }
    assert sorted(set(HOST_SIDE_OPS) - met) == []
