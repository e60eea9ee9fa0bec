"""`pretrain --tokens bpe`: GPT pretraining on byte-level BPE tokens, learned or given.

A tiny GPT trains a few steps on a 50,000-character slice of the Shakespeare corpus (its
validation split: quick to load). The run's tokenizer gives text back exactly, a resumed run
learns the same merges, given Hugging Face files keep their ids, bad flag combinations exit 2
with one line, and `export --run` serves text.
"""

import json
import os
from pathlib import Path

import pytest
import tensorflow as tf
from test_pretrain import CrashAfter, checkpointed_epochs, tiny

from keras_transformer import data as kt_data
from keras_transformer.preprocessing import load_preprocessor
from keras_transformer.text import BytePairTokenizer
from keras_transformer.text.io import load_tokenizer
from keras_transformer.text.vocabulary import GPT2_END_TOKEN
from workflows import pretrain
from workflows.__main__ import main

CHARACTERS = 50_000
# Lines past the training text: accents, emoji, CJK, tabs and runs of spaces.
ODD_LINES = ["Café à la crème", "🙂 ROMEO  🙂", "漢字 かな", "\tTo be,   or not\t", " ", ""]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    text = ""
    for scene in kt_data.load_shakespeare("validation"):
        text += scene.text + "\n"
        if len(text) >= CHARACTERS:
            break
    assert len(text) >= CHARACTERS, "the Shakespeare validation split is shorter than expected"
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text(text[:CHARACTERS], encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def validation_lines(corpus_file):
    _, validation = pretrain.load_corpus(corpus_file)
    lines = [line for text in validation for line in text.splitlines()]
    assert len(lines) > 50
    return lines


RUN_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "preprocessor.json")


@pytest.fixture(scope="module")
def bpe_run(corpus_file, tmp_path_factory):
    """A 30-step BPE run that crashes after step 12 (checkpointed at 10) and is resumed.

    Returns `(result, files)`: files, the run's tokenizer files as the crashed run left them.
    """
    from workflows import training

    folder = tmp_path_factory.mktemp("bpe") / "run"
    config = tiny(corpus_file, folder, tokens="bpe", vocabulary_size=400)

    def crashing_fit(*args, callbacks=(), **kwargs):
        return training.fit(*args, callbacks=[*callbacks, CrashAfter(12)], **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain, "fit", crashing_fit)
        with pytest.raises(RuntimeError, match="simulated crash"):
            pretrain.run(config)
    assert checkpointed_epochs(folder / "backup") == 1
    files = {name: json_or_text(folder / name) for name in RUN_FILES}
    return pretrain.run(config), files


def json_or_text(path):
    """A run file's content; a serialized layer without the names Keras numbers per process."""
    text = path.read_text(encoding="utf-8")
    return without_names(json.loads(text)) if path.name.endswith(".json") else text


def without_names(data):
    if isinstance(data, dict):
        return {key: without_names(value) for key, value in data.items() if key != "name"}
    if isinstance(data, list):
        return [without_names(value) for value in data]
    return data


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def test_a_bpe_run_learns_merges_trains_and_samples_text(bpe_run):
    result, _ = bpe_run
    run_dir = result.run_dir
    losses = read_json(os.path.join(run_dir, "train_loss.json"))  # steps 1-30, resumed at 11
    assert losses["step"] == list(range(1, 31))
    assert max(losses["loss"][-5:]) < min(losses["loss"][:5]) - 0.3
    tokenizer = load_tokenizer(os.path.join(run_dir, "tokenizer.json"))
    assert isinstance(tokenizer, BytePairTokenizer)
    assert tokenizer.vocabulary_size() == 400 and tokenizer.special_tokens == [GPT2_END_TOKEN]
    # The run's preprocessor ends texts with <|endoftext|> and starts prompts with it.
    preprocessor = load_preprocessor(os.path.join(run_dir, "preprocessor.json"))
    end_id = tokenizer.token_to_id(GPT2_END_TOKEN)
    assert preprocessor.end_token_id == end_id and preprocessor.start_token_id == end_id
    assert preprocessor.tokenizer.vocabulary == tokenizer.vocabulary
    assert preprocessor.tokenizer.merges == tokenizer.merges
    # vocab.json + merges.txt for Hugging Face tools: `tokenizers` reads the same ids.
    from tokenizers import ByteLevelBPETokenizer

    hugging_face = ByteLevelBPETokenizer(
        os.path.join(run_dir, "vocab.json"), os.path.join(run_dir, "merges.txt")
    )
    hugging_face.add_special_tokens([GPT2_END_TOKEN])
    texts = ["To be, or not to be", f"ROMEO: 'tis{GPT2_END_TOKEN}JULIET:", "Café 🙂"]
    assert tokenizer(texts).to_list() == [hugging_face.encode(s).ids for s in texts]
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    assert metrics["tokens"] == "bpe" and metrics["vocabulary_size"] == 400
    (sample,) = result.samples
    assert isinstance(sample, str) and sample.startswith("To be") and len(sample) > len("To be")
    with open(os.path.join(run_dir, "samples.txt"), encoding="utf-8") as file:
        assert file.read() == sample + "\n"
    saved = read_json(os.path.join(run_dir, "config.json"))
    assert saved["tokens"] == "bpe" and saved["vocabulary_size"] == 400 and "mask_rate" not in saved


def test_the_run_tokenizer_gives_validation_text_back_exactly(bpe_run, validation_lines):
    tokenizer = load_tokenizer(os.path.join(bpe_run[0].run_dir, "tokenizer.json"))
    lines = validation_lines + ODD_LINES + [GPT2_END_TOKEN.join(validation_lines[:3])]
    ids = tokenizer(lines)
    assert [text.decode("utf-8") for text in tokenizer.detokenize(ids).numpy()] == lines
    # Merges were learned: fewer tokens than UTF-8 bytes.
    assert int(tf.size(ids.flat_values)) < 0.7 * sum(len(line.encode()) for line in lines)


def test_export_run_serves_text_that_is_its_token_ids(bpe_run, tmp_path, capsys):
    run_dir = bpe_run[0].run_dir
    code = main(
        ["export", "--run", run_dir, "--output-dir", str(tmp_path), "--name", "gpt"]
        + ["--max-new-tokens", "8"]
    )
    assert code == 0, capsys.readouterr().err
    generate = tf.saved_model.load(str(tmp_path / "gpt" / "1")).signatures["generate"]
    served = generate(
        prompts=tf.constant(["ROMEO:", "To be, or not"]),
        max_new_tokens=tf.constant(8),
        temperature=tf.constant(0.0),
        top_k=tf.constant(0),
        top_p=tf.constant(1.0),
        seed=tf.constant(0),
        num_beams=tf.constant(1),
        length_penalty=tf.constant(1.0),
    )
    tokenizer = load_tokenizer(os.path.join(run_dir, "tokenizer.json"))
    ids = tf.ragged.boolean_mask(served["token_ids"], served["padding_mask"] == 1)
    texts = served["generated_text"].numpy().tolist()
    assert texts == tokenizer.detokenize(ids).numpy().tolist()
    assert all(len(text) > 0 for text in texts)


def test_a_resumed_bpe_run_learns_the_same_merges(bpe_run):
    result, crashed = bpe_run
    run_dir = Path(result.run_dir)
    assert result.steps == 30
    assert len(read_json(run_dir / "history.json")["val_loss"]) == 2  # the epochs left
    assert {name: json_or_text(run_dir / name) for name in RUN_FILES} == crashed


@pytest.fixture(scope="module")
def hugging_face_files(corpus_file, tmp_path_factory):
    """GPT-2-style files trained by Hugging Face `tokenizers`: vocab.json + merges.txt with
    <|endoftext|>, and a tokenizer.json without it."""
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path_factory.mktemp("hf")
    with open(corpus_file, encoding="utf-8") as file:
        text = file.read()[:20_000]  # not what the run's training split would learn
    with_end = ByteLevelBPETokenizer()
    with_end.train_from_iterator(
        [text], vocab_size=350, special_tokens=[GPT2_END_TOKEN], show_progress=False
    )
    with_end.save_model(str(folder))
    without_end = ByteLevelBPETokenizer()
    without_end.train_from_iterator([text], vocab_size=300, show_progress=False)
    without_end.save(str(folder / "tokenizer.json"))
    return folder, with_end, without_end


def quick(corpus, output_dir, **kwargs):
    return tiny(corpus, output_dir, steps=1, eval_interval=1, eval_batches=1, **kwargs)


def test_given_vocab_json_and_merges_txt_are_used_as_they_are(
    corpus_file, hugging_face_files, validation_lines, tmp_path, capsys
):
    folder, with_end, _ = hugging_face_files
    lines = validation_lines + ODD_LINES
    config = quick(
        corpus_file,
        tmp_path / "run",
        tokens="bpe",
        vocabulary=str(folder / "vocab.json"),
        merges=str(folder / "merges.txt"),
        num_samples=0,
    )
    result = pretrain.run(config)
    preprocessor = load_preprocessor(os.path.join(result.run_dir, "preprocessor.json"))
    assert preprocessor.tokenizer(lines).to_list() == [with_end.encode(s).ids for s in lines]
    end_id = with_end.token_to_id(GPT2_END_TOKEN)
    assert preprocessor.end_token_id == end_id and preprocessor.start_token_id == end_id
    assert read_json(os.path.join(result.run_dir, "vocab.json")) == read_json(folder / "vocab.json")
    assert merge_lines(os.path.join(result.run_dir, "merges.txt")) == merge_lines(
        folder / "merges.txt"
    )
    assert "vocabulary_size" not in read_json(os.path.join(result.run_dir, "config.json"))
    assert result.metrics["vocabulary_size"] == with_end.get_vocab_size()
    assert "has no <|endoftext|>" not in capsys.readouterr().out


def merge_lines(path):
    with open(path, encoding="utf-8") as file:
        return [line for line in file.read().splitlines() if not line.startswith("#version")]


def test_a_given_tokenizer_json_without_end_token_makes_a_stream_without_one(
    corpus_file, hugging_face_files, validation_lines, tmp_path, capsys
):
    folder, _, without_end = hugging_face_files
    config = pretrain.Config(
        objective="causal", tokens="bpe", vocabulary=str(folder / "tokenizer.json")
    )
    pretrain.check_config(config)
    tokenizer = pretrain.build_tokenizer(config, ["unused: the file gives the merges"])
    assert "has no <|endoftext|> special token" in capsys.readouterr().out
    lines = validation_lines + ODD_LINES
    assert tokenizer(lines).to_list() == [without_end.encode(s).ids for s in lines]
    preprocessor = pretrain.make_preprocessor(config, tokenizer)
    assert preprocessor.end_token_id is None and preprocessor.start_token_id is None
    texts = validation_lines[:3]
    joined = [i for text in texts for i in without_end.encode(text).ids]
    assert preprocessor.stream(texts).numpy().tolist() == joined  # no separator


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tokens", "char", "--merges", "{merges}"], "--merges is a byte-level BPE"),
        (["--tokens", "char", "--vocabulary", "{vocab_json}"], "--tokens char takes its"),
        (["--tokens", "bpe", "--vocabulary", "{vocab_txt}"], "is not JSON"),
        (["--tokens", "bpe", "--vocabulary", "{vocab_json}"], "give its merges.txt"),
        (["--tokens", "bpe", "--merges", "{merges}"], "needs the vocab.json"),
        (
            ["--tokens", "bpe", "--vocabulary", "{tokenizer_json}", "--merges", "{merges}"],
            "holds its merges",
        ),
        (["--tokens", "bpe", "--vocabulary", "{missing}", "--merges", "{merges}"], "not exist"),
        (
            ["--tokens", "bpe", "--vocabulary", "{vocab_json}", "--merges", "{missing}"],
            "not exist",
        ),
        (["--tokens", "wordpiece", "--vocabulary", "{vocab_json}"], "use --tokens bpe"),
        (["--tokens", "bpe", "--objective", "masked"], "[CLS]/[SEP]/[MASK]"),
        (["--tokens", "bpe", "--vocabulary-size", "256"], "at least 257"),
    ],
)
def test_bad_token_flags_exit_2_with_one_line(flags, message, hugging_face_files, tmp_path, capsys):
    folder = hugging_face_files[0]
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nthe\n", encoding="utf-8")
    paths = {
        "merges": folder / "merges.txt",
        "vocab_json": folder / "vocab.json",
        "tokenizer_json": folder / "tokenizer.json",
        "vocab_txt": tmp_path / "vocab.txt",
        "missing": tmp_path / "missing.json",
    }
    argv = ["pretrain", "--output-dir", str(tmp_path / "run")]
    argv += [flag.format(**paths) for flag in flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_unused_settings_follow_the_token_kind():
    assert "merges" in pretrain.Config(tokens="char").unused_settings()
    assert "merges" in pretrain.Config(tokens="wordpiece").unused_settings()
    learned = pretrain.Config(tokens="bpe").unused_settings()
    assert "merges" not in learned and "vocabulary_size" not in learned
    given = pretrain.Config(tokens="bpe", vocabulary="v.json", merges="m.txt").unused_settings()
    assert "vocabulary_size" in given and "merges" not in given
