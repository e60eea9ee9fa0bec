"""GPT-2 checkpoints with their byte-level BPE tokenizer, against `transformers`.

The reference: a ByteLevel BPE trained by Hugging Face `tokenizers` on Shakespeare lines
(`<|endoftext|>` special) and a small random `GPT2LMHeadModel`, saved together by
`save_pretrained` (model and `GPT2TokenizerFast`). `from_huggingface` must give the ids of
`transformers.AutoTokenizer`; the exported `generate` the greedy text of
`model.generate(tokenizer(prompt).input_ids)` (no start token; a prompt longer than the
context keeps its last n_positions - max_new_tokens tokens); `to_huggingface` a folder that
`transformers` loads with equal ids and logits.
"""

import json
import logging
import shutil

import numpy as np
import pytest
import tensorflow as tf
from hf_helpers import require

from keras_transformer.data import shakespeare
from keras_transformer.models import GPTBackbone, GPTCausalLM
from keras_transformer.pretrained import from_huggingface, to_huggingface
from keras_transformer.pretrained.byte_pair_tokenizer import load_byte_pair_tokenizer
from keras_transformer.text import BytePairTokenizer, WordPieceTokenizer
from workflows.__main__ import main

torch = require("torch")
transformers = require("transformers")
tokenizers = require("tokenizers")
logging.getLogger("transformers").setLevel(logging.ERROR)

END = "<|endoftext|>"
N_POSITIONS = 64
MAX_NEW_TOKENS = 12
PROMPTS = [
    "ROMEO:",
    "To be, or not to be, that is the question:",
    " What light through yonder window breaks?",
    "KING HENRY.\nOnce more unto the breach,\tdear friends",
    "Café, naïve 😀 日本",
    f"an end{END}and a beginning",
    "HAMLET. " + "Words, words, words. " * 20,  # More tokens than the context holds.
]
EDGE_CASES = [
    "",
    " ",
    "   ",
    "a  b",
    "trailing  ",
    "\n\n",
    "it's you're we'll they've I'm he'd don't",
    "'s 're",
    "1234567890 and 3.14",
    "!!! ?!?! ...",
    "café naïve résumé",
    "😀 👍🏽 🇫🇷",
    "中文字符 한국어 Привет",
    "\x00\x01\x7f",
    END,
    f"{END}{END}x",
    "<|endoftext|",
]


def shakespeare_lines(split, characters):
    """The first `characters` of a split of the Shakespeare corpus, as its lines."""
    text = "\n\n".join(scene.text for scene in shakespeare.read_scenes(split))
    return text[:characters].split("\n")


def randomize(model, seed=0):
    """Every parameter random (layer norms around 1): greedy picks are far from ties."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.2
            norm_weight = ".ln_" in name and name.endswith("weight")
            parameter.copy_(noise + 1.0 if norm_weight else noise)
    model.tie_weights()
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A GPT-2 folder written by `transformers`: (folder, the reference tokenizer and model)."""
    trained = tokenizers.ByteLevelBPETokenizer()
    trained.train_from_iterator(
        shakespeare_lines("train", 200_000),
        vocab_size=600,
        min_frequency=2,
        special_tokens=[END],
        show_progress=False,
    )
    tokenizer = transformers.GPT2TokenizerFast(
        tokenizer_object=trained._tokenizer, bos_token=END, eos_token=END, unk_token=END
    )
    end_id = tokenizer.convert_tokens_to_ids(END)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=N_POSITIONS,
        bos_token_id=end_id,
        eos_token_id=end_id,
    )
    folder = tmp_path_factory.mktemp("gpt2")
    randomize(transformers.GPT2LMHeadModel(config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # What a transformers user loads from the folder.
    reference_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    reference_model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    return folder, reference_tokenizer, reference_model


def reference_ids(tokenizer, texts):
    return [tokenizer(text)["input_ids"] for text in texts]


def varied_texts():
    held_out = [line for line in shakespeare_lines("validation", 30_000) if line][:150]
    return held_out + EDGE_CASES + PROMPTS


def test_imported_tokenizer_gives_the_ids_of_transformers(checkpoint):
    folder, reference_tokenizer, _ = checkpoint
    loaded = from_huggingface(folder)
    tokenizer = loaded.tokenizer
    assert isinstance(tokenizer, BytePairTokenizer)
    assert tokenizer.special_tokens == [END] and not tokenizer.add_prefix_space
    assert loaded.end_token == END  # config.json / generation_config.json's eos_token_id
    texts = varied_texts()
    assert tokenizer(texts).to_list() == reference_ids(reference_tokenizer, texts)
    preprocessor = loaded.make_preprocessor()
    assert preprocessor.start_token_id is None  # transformers prepends nothing
    assert preprocessor.end_token_id == reference_tokenizer.eos_token_id


def copy_model_files(source, target):
    target.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(source / name, target / name)
    return target


def test_vocab_json_merges_txt_added_tokens_and_prefix_space(checkpoint, tmp_path):
    """vocab.json + merges.txt (no tokenizer.json) with tokenizer_config.json's
    add_prefix_space and an added special token past the vocabulary."""
    folder, reference_tokenizer, _ = checkpoint
    fast = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    target = copy_model_files(folder, tmp_path / "slow")
    fast.model.save(str(target))  # vocab.json, merges.txt
    settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    pad_id = len(reference_tokenizer)
    settings["add_prefix_space"] = True
    settings["pad_token"] = "<|pad|>"
    settings["added_tokens_decoder"] = {
        str(pad_id): {"content": "<|pad|>", "special": True, "normalized": False},
        **settings.get("added_tokens_decoder", {}),
    }
    (target / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    expected = transformers.AutoTokenizer.from_pretrained(target)
    assert expected.convert_tokens_to_ids("<|pad|>") == pad_id
    ours = load_byte_pair_tokenizer(target)
    assert set(ours.special_tokens) == {END, "<|pad|>"} and ours.add_prefix_space
    texts = varied_texts() + ["x<|pad|>y", "<|pad|> <|endoftext|>"]
    assert ours(texts).to_list() == reference_ids(expected, texts)
    # tokenizer_config.json decides add_prefix_space over tokenizer.json, as in transformers.
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    data["pre_tokenizer"]["add_prefix_space"] = True
    fast_only = copy_model_files(folder, tmp_path / "fast")
    (fast_only / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    shutil.copy(folder / "tokenizer_config.json", fast_only)
    expected = transformers.AutoTokenizer.from_pretrained(fast_only)
    ours = load_byte_pair_tokenizer(fast_only)
    assert not ours.add_prefix_space
    assert ours(texts).to_list() == reference_ids(expected, texts)


def test_a_folder_without_tokenizer_files_warns(checkpoint, tmp_path, caplog):
    target = copy_model_files(checkpoint[0], tmp_path / "model_only")
    with caplog.at_level(logging.WARNING, logger="keras_transformer.pretrained.huggingface"):
        loaded = from_huggingface(target)
    assert loaded.tokenizer is None and loaded.end_token is None
    assert "vocab.json + merges.txt" in caplog.text and "`.tokenizer` is None" in caplog.text
    with pytest.raises(ValueError, match="no tokenizer here"):
        loaded.make_preprocessor()


def test_malformed_tokenizer_files_fail_naming_file_and_line(checkpoint, tmp_path):
    folder = checkpoint[0]
    fast = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    target = copy_model_files(folder, tmp_path / "bad")
    fast.model.save(str(target))
    merges = (target / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges[2] = "Ġt zz"
    (target / "merges.txt").write_text("\n".join(merges), encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges.txt line 3: the token 'zz'"):
        from_huggingface(target)
    vocab = (target / "vocab.json").read_text(encoding="utf-8")
    (target / "vocab.json").write_text(vocab.replace('"e":', '"e":"x", "e2":', 1), "utf-8")
    with pytest.raises(ValueError, match=r"vocab.json line \d+: the id of 'e' must be"):
        from_huggingface(target)
    (target / "vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match="has merges.txt but no vocab.json"):
        from_huggingface(target)


def command(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def transformers_greedy(model, tokenizer, prompt):
    """What a transformers user gets: greedy `generate` on the prompt's ids (its last
    n_positions - max_new_tokens), the new tokens decoded."""
    ids = tokenizer(prompt)["input_ids"][-(N_POSITIONS - MAX_NEW_TOKENS) :]
    with torch.no_grad():
        output = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    new = output[0, len(ids) :].tolist()
    new = [i for i in new if i != tokenizer.eos_token_id]
    return new, tokenizer.decode(new, skip_special_tokens=True)


def test_exported_generate_gives_the_greedy_text_of_transformers(checkpoint, tmp_path, capsys):
    folder, reference_tokenizer, reference_model = checkpoint
    code, stdout, stderr = command(
        capsys,
        "export",
        "--huggingface",
        folder,
        "--output-dir",
        tmp_path,
        "--name",
        "gpt2",
        "--max-new-tokens",
        MAX_NEW_TOKENS,
    )
    assert code == 0, stderr
    result = json.loads(stdout[stdout.index("{") :])
    assert "generate" in result["signatures"] and result["path"] == str(tmp_path / "gpt2" / "1")
    assert len(reference_tokenizer(PROMPTS[-1])["input_ids"]) > N_POSITIONS
    generate = tf.saved_model.load(result["path"]).signatures["generate"]
    served = generate(
        prompts=tf.constant(PROMPTS),
        max_new_tokens=tf.constant(MAX_NEW_TOKENS),
        temperature=tf.constant(0.0),
        top_k=tf.constant(0),
        top_p=tf.constant(1.0),
        seed=tf.constant(0),
        num_beams=tf.constant(1),
        length_penalty=tf.constant(1.0),
    )
    for row, prompt in enumerate(PROMPTS):
        ids, text = transformers_greedy(reference_model, reference_tokenizer, prompt)
        mask = served["padding_mask"].numpy()[row] == 1
        assert served["token_ids"].numpy()[row][mask].tolist() == ids, prompt
        assert served["generated_text"].numpy()[row].decode("utf-8", "replace") == text, prompt


def test_the_python_export_frames_prompts_as_the_command_line_does(checkpoint):
    from keras_transformer.serving.export import serving_module

    loaded = from_huggingface(checkpoint[0])
    module = serving_module(loaded)
    expected = loaded.make_preprocessor()
    assert module.preprocessor.start_token_id is None  # transformers adds no <|endoftext|>
    assert module.preprocessor.end_token_id == expected.end_token_id is not None


def test_export_of_a_bad_huggingface_path_exits_2(checkpoint, tmp_path, capsys):
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    for path, message in (
        (tmp_path / "missing", "Checkpoint folder not found"),
        (no_config, "config.json not found"),
    ):
        code, _, stderr = command(
            capsys, "export", "--huggingface", path, "--output-dir", tmp_path / "out"
        )
        assert code == 2
        assert f"error: --huggingface {str(path)!r}: " in stderr and message in stderr
        assert "Traceback" not in stderr
    code, _, stderr = command(capsys, "export", "--huggingface", checkpoint[0], "--run", tmp_path)
    assert code == 2 and "not --run and --huggingface" in stderr
    assert not (tmp_path / "out").exists()


def test_to_huggingface_round_trip_in_transformers(checkpoint, tmp_path):
    folder, reference_tokenizer, _ = checkpoint
    loaded = from_huggingface(folder)
    written = to_huggingface(loaded, path=tmp_path / "ours")
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "special_tokens_map.json"):
        assert (written / name).is_file(), name
    settings = json.loads((written / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert settings["tokenizer_class"] == "GPT2Tokenizer"
    assert settings["model_max_length"] == N_POSITIONS
    assert settings["bos_token"] == settings["eos_token"] == settings["unk_token"] == END
    tokenizer = transformers.AutoTokenizer.from_pretrained(written)
    texts = varied_texts()
    ids = loaded.tokenizer(texts).to_list()
    assert ids == reference_ids(tokenizer, texts) == reference_ids(reference_tokenizer, texts)
    assert tokenizer.eos_token_id == reference_tokenizer.eos_token_id
    model = transformers.AutoModelForCausalLM.from_pretrained(written).eval()
    assert model.config.eos_token_id == reference_tokenizer.eos_token_id
    rows = ids[:6]  # Shakespeare lines of different lengths: a padded batch
    width = max(len(r) for r in rows)
    token_ids = np.array([r + [0] * (width - len(r)) for r in rows], "int32")
    mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], "int32")
    keep = mask.astype(bool)
    ours = np.asarray(loaded.model({"token_ids": token_ids, "padding_mask": mask}))
    with torch.no_grad():
        theirs = model(
            input_ids=torch.tensor(token_ids).long(), attention_mask=torch.tensor(mask).long()
        ).logits.numpy()
    assert keep.sum() > 20 and not keep.all()
    assert float(np.abs(ours - theirs)[keep].max()) < 1e-4
    # A tokenizer of ours (two special tokens, add_prefix_space) loads with the same ids.
    vocabulary = loaded.tokenizer.get_vocabulary() + ["<|pad|>"]
    own = BytePairTokenizer(
        vocabulary, loaded.tokenizer.merges, special_tokens=[END, "<|pad|>"], add_prefix_space=True
    )
    small = GPTCausalLM(
        GPTBackbone(
            vocabulary_size=len(vocabulary),
            num_layers=1,
            num_heads=2,
            hidden_dim=8,
            intermediate_dim=16,
            max_sequence_length=16,
        )
    )
    written = to_huggingface(small, own, tmp_path / "own")
    texts += ["x<|pad|>y <|endoftext|>"]
    expected = reference_ids(transformers.AutoTokenizer.from_pretrained(written), texts)
    assert own(texts).to_list() == expected
    assert from_huggingface(written).tokenizer(texts).to_list() == expected
    with pytest.raises(ValueError, match="byte-level BPE tokenizer; a WordPieceTokenizer"):
        to_huggingface(small, WordPieceTokenizer(["[UNK]", "a"]), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
