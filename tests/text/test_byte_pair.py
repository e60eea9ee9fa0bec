"""BytePairTokenizer: the ids of Hugging Face `tokenizers` on the same files, and its contract."""

import json
import random
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tokenizers
from byte_pair_samples import parity_strings, reference_ids, training_lines
from tokenizers import decoders, models, pre_tokenizers

from keras_transformer.text import BytePairTokenizer, train_byte_pair_vocabulary
from keras_transformer.text.byte_pair_files import BYTE_SYMBOLS, bytes_to_symbols
from keras_transformer.text.io import load_tokenizer, save_tokenizer

SPECIAL = "<|endoftext|>"


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory):
    """A 2,000-token ByteLevel BPE trained by `tokenizers` on Shakespeare, saved as files."""
    folder = tmp_path_factory.mktemp("hf_bpe")
    trained = tokenizers.ByteLevelBPETokenizer(add_prefix_space=False)
    trained.train_from_iterator(
        training_lines(),
        vocab_size=2000,
        min_frequency=2,
        special_tokens=[SPECIAL],
        show_progress=False,
    )
    trained.save_model(str(folder))
    trained.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def hf(hf_files):
    return tokenizers.Tokenizer.from_file(str(hf_files / "tokenizer.json"))


@pytest.fixture(scope="module")
def ours(hf_files):
    return BytePairTokenizer(
        str(hf_files / "vocab.json"), str(hf_files / "merges.txt"), special_tokens=[SPECIAL]
    )


@pytest.fixture(scope="module")
def strings():
    return parity_strings()


def _in_tf_data(tokenizer, strings, batch_size=256):
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(strings, tf.string))
    batches = dataset.batch(batch_size).map(tokenizer)
    return [row for batch in batches for row in _to_list(batch)]


def _to_list(ids):
    return ids.to_list() if isinstance(ids, tf.RaggedTensor) else ids.numpy().tolist()


def _mismatches(strings, got, expected):
    return [(s, g, e) for s, g, e in zip(strings, got, expected, strict=True) if g != e]


def test_ids_equal_hugging_face_on_varied_strings(ours, hf, strings):
    total, flat = 0, []
    for group, texts in strings.items():
        expected = [reference_ids(hf, s, [SPECIAL]) for s in texts]
        got = _in_tf_data(ours, texts)
        flat.extend(i for row in got for i in row)
        bad = _mismatches(texts, got, expected)
        assert not bad, f"{group}: {len(bad)} of {len(texts)} differ, first: {bad[:2]!r:.2000}"
        total += len(texts)
        # The detokenized ids are the input bytes, exactly.
        dataset = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(got, dtype=tf.int32))
        back = [s for b in dataset.batch(256).map(ours.detokenize) for s in b.numpy().tolist()]
        assert back == texts, group
    print(f"\nids identical to tokenizers on {total} strings", file=sys.stderr)
    assert total >= 5000
    # The sample reaches the special token and most of the vocabulary.
    assert ours.token_to_id(SPECIAL) in flat
    assert len(set(flat)) > 1500


def test_pre_tokenizer_classes_equal_hugging_face_on_every_code_point(ours, hf):
    # Letters, numbers, whitespace and other symbols as Oniguruma (Unicode 16.0) sees them,
    # including those Unicode 16.0 added, which TensorFlow's RE2 tables lack.
    code_points = [c for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF]
    code_points += list(range(0xE0000, 0xE0200)) + [0xF0000, 0x10FFFD, 0x10FFFF]
    texts = [f"a{chr(c)}a{chr(c)}{chr(c)}1 {chr(c)}!{chr(c)} x" for c in code_points]
    expected = [[word for word, _ in hf.pre_tokenizer.pre_tokenize_str(text)] for text in texts]
    words = ours.split_words(tf.constant([t.encode() for t in texts])).to_list()
    got = [[bytes_to_symbols(w) for w in row] for row in words]
    bad = [(hex(c), g, e) for c, g, e in zip(code_points, got, expected, strict=True) if g != e]
    assert not bad, f"{len(bad)} code points split differently, first: {bad[:5]}"


def test_merge_order_edge_cases_equal_hugging_face():
    # Random merges in a random order, some listed twice: a merge may need a token that a
    # later merge makes, and a merge may create a pair of lower rank than itself (where
    # merging every occurrence at once would be wrong).
    rng = random.Random(7)
    vocab = list(BYTE_SYMBOLS)
    merges = []
    while len(merges) < 300:
        a, b = rng.choice(vocab[-40:] + list("abcĠ")), rng.choice(vocab[-40:] + list("abc"))
        if len(a + b) <= 6 and (a, b) not in merges:
            merges.append((a, b))
            if a + b not in vocab:
                vocab.append(a + b)
    rng.shuffle(merges)
    merges += rng.sample(merges, 20)
    reference = tokenizers.Tokenizer(models.BPE({t: i for i, t in enumerate(vocab)}, merges))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ours = BytePairTokenizer(vocab, [f"{a} {b}" for a, b in merges])
    texts = [
        "".join(rng.choice("aabbc ") for _ in range(rng.randrange(0, 40))) for _ in range(3000)
    ]
    texts += ["a" * n for n in range(1, 30)] + ["ab" * n for n in range(1, 30)]
    expected = [e.ids for e in reference.encode_batch(texts)]
    bad = _mismatches(texts, _in_tf_data(ours, texts), expected)
    assert not bad, f"{len(bad)} differ, first: {bad[:3]}"


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_special_tokens_and_prefix_space_equal_hugging_face(hf_files, add_prefix_space):
    specials = [SPECIAL, "[A B]", "<x>", "<x>y", "é!"]
    reference = tokenizers.Tokenizer(
        models.BPE.from_file(str(hf_files / "vocab.json"), str(hf_files / "merges.txt"))
    )
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    reference.decoder = decoders.ByteLevel()
    reference.add_special_tokens(specials[1:])
    reference.add_special_tokens([SPECIAL])
    vocabulary = [reference.id_to_token(i) for i in range(reference.get_vocab_size())]
    ours = BytePairTokenizer(
        vocabulary,
        str(hf_files / "merges.txt"),
        special_tokens=specials,
        add_prefix_space=add_prefix_space,
    )
    rng = random.Random(3)
    pieces = specials + ["a", " ", "  ", "\n", "the", " king", "x", "y", "é", "!", "'s", "1"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 9))) for _ in range(1500)]
    texts += ["", " ", "<x><x>", "<x>y<x>", "a[A B]b", " [A B] ", "[A B][A B]", "é!é!"]
    expected = [e.ids for e in reference.encode_batch(texts)]
    got = _in_tf_data(ours, texts)
    bad = _mismatches(texts, got, expected)
    assert not bad, f"{len(bad)} differ, first: {bad[:3]}"
    back = [s.decode() for s in ours.detokenize(tf.ragged.constant(got)).numpy().tolist()]
    if add_prefix_space:  # Each non-empty piece between special tokens got its space.
        split = "(" + "|".join(re.escape(t) for t in sorted(specials, key=len)[::-1]) + ")"
        texts = [
            "".join(
                p if i % 2 or not p or p.startswith(" ") else " " + p
                for i, p in enumerate(re.split(split, text))
            )
            for text in texts
        ]
    assert back == texts


def test_our_trainer_gives_files_hugging_face_reads_the_same(tmp_path, strings, hf_files):
    lines = training_lines()
    vocabulary, merges = train_byte_pair_vocabulary(
        lines[:3000], 700, special_tokens=[SPECIAL], verbose=False
    )
    assert len(vocabulary) == 700 and vocabulary[0] == SPECIAL
    ours = BytePairTokenizer(vocabulary, merges, special_tokens=[SPECIAL])
    vocab_path, merges_path = ours.save_files(tmp_path)
    reference = tokenizers.ByteLevelBPETokenizer(vocab_path, merges_path, add_prefix_space=False)
    reference.add_special_tokens([SPECIAL])
    texts = [
        s for group in ("shakespeare lines", "movie reviews", "edge cases") for s in strings[group]
    ]
    expected = [reference_ids(reference._tokenizer, s, [SPECIAL]) for s in texts]
    bad = _mismatches(texts, _in_tf_data(ours, texts), expected)
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {bad[:2]!r:.1000}"
    # Ties go as in tokenizers: on the same text its trainer learns the same merges.
    assert (vocabulary, merges) == _hugging_face_training(lines[:3000], 700)


def _hugging_face_training(lines, vocabulary_size):
    trained = tokenizers.ByteLevelBPETokenizer(add_prefix_space=False)
    trained.train_from_iterator(
        lines,
        vocab_size=vocabulary_size,
        min_frequency=2,
        special_tokens=[SPECIAL],
        show_progress=False,
    )
    vocab = trained.get_vocab()
    model = json.loads(trained._tokenizer.to_str())["model"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    return sorted(vocab, key=vocab.get), merges


def test_trainer_learns_from_a_dataset_and_stops_at_min_frequency():
    texts = ["the cat", "the hat", "a bat"]
    vocabulary, merges = train_byte_pair_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts), 1000, verbose=False
    )
    # "a t" (3 times), "h e", "t he" (2 times); every other pair occurs once.
    assert merges == ["a t", "h e", "t he"]
    assert vocabulary[256:] == ["at", "he", "the"]
    tokenizer = BytePairTokenizer(vocabulary, merges)
    assert tokenizer(["the bat"]).to_list() == [
        [vocabulary.index("the"), vocabulary.index("Ġ"), vocabulary.index("b"), 256]
    ]
    with pytest.raises(ValueError, match="at least 257"):
        train_byte_pair_vocabulary(texts, 100, special_tokens=[SPECIAL], verbose=False)
    with pytest.raises(ValueError, match="not one string"):
        train_byte_pair_vocabulary("the cat", 300, verbose=False)


def test_hand_computed_merges_and_detokenize():
    vocab = list(BYTE_SYMBOLS) + ["Ġt", "he", "Ġthe", "ll"]
    merges = ["Ġ t", "h e", "Ġt he", "l l"]
    tokenizer = BytePairTokenizer(vocab, merges)
    ids = tokenizer([" the hello", "", "  the"]).to_list()
    h, e, o, space = (vocab.index(c) for c in "heoĠ")
    assert ids == [[258, space, 257, 259, o], [], [space, 258]]
    assert tokenizer.detokenize(ids).numpy().tolist() == [b" the hello", b"", b"  the"]
    # Without merges (and so without a cached word) every byte is its own token.
    bytes_only = BytePairTokenizer(list(BYTE_SYMBOLS), [])
    assert bytes_only(tf.constant([b"h\xc3\xa9\xff"])).to_list() == [[104, 0xC3, 0xA9, 0xFF]]
    assert bytes_only.detokenize([104, 0xC3, 0xA9, 0xFF]).numpy() == b"h\xc3\xa9\xff"


def test_scalar_batch_dense_and_tf_data(ours, strings):
    texts = strings["movie reviews"][:300]
    eager = ours(tf.constant(texts)).to_list()
    assert eager == _in_tf_data(ours, texts)
    assert ours(texts[5].decode()).numpy().tolist() == eager[5]
    assert ours([t.decode() for t in texts[:3]]).to_list() == eager[:3]
    dense = BytePairTokenizer(
        ours.get_vocabulary(), ours.merges, sequence_length=12, special_tokens=[SPECIAL]
    )
    values = _in_tf_data(dense, texts)
    assert all(row == (ids + [0] * 12)[:12] for row, ids in zip(values, eager, strict=True))
    assert dense(texts[5].decode()).numpy().tolist() == (eager[5] + [0] * 12)[:12]
    assert ours([]).to_list() == []
    # Inside a Keras functional model, symbolically.
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, dense(inputs))
    np.testing.assert_array_equal(model(tf.constant(texts[:4])), dense(tf.constant(texts[:4])))


def test_config_save_tokenizer_and_tokenizer_json_round_trips(ours, hf_files, tmp_path, strings):
    texts = strings["shakespeare lines"][:200] + strings["edge cases"]
    expected = ours(tf.constant(texts)).to_list()
    config = ours.get_config()
    assert config["merges"] == ours.merges and config["special_tokens"] == [SPECIAL]
    assert BytePairTokenizer.from_config(config)(tf.constant(texts)).to_list() == expected
    path = save_tokenizer(ours, str(tmp_path / "tokenizer.json"))
    assert load_tokenizer(path)(tf.constant(texts)).to_list() == expected
    # The tokenizer.json of tokenizers, and ours read back by tokenizers.
    from_hf = BytePairTokenizer.from_tokenizer_json(str(hf_files / "tokenizer.json"))
    assert from_hf.special_tokens == [SPECIAL]
    assert from_hf.get_vocabulary() == ours.get_vocabulary()
    assert from_hf(tf.constant(texts)).to_list() == expected
    written = ours.save_tokenizer_json(str(tmp_path / "hf" / "tokenizer.json"))
    reloaded = tokenizers.Tokenizer.from_file(written)
    valid = [t.decode() for t in texts]
    assert [e.ids for e in reloaded.encode_batch(valid)] == expected
    again = BytePairTokenizer.from_tokenizer_json(written).get_config()
    for key in ("vocabulary", "merges", "special_tokens", "add_prefix_space"):
        assert again[key] == config[key], key


def test_clear_errors(ours):
    with pytest.raises(ValueError, match="dtype=int32"):
        ours(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        ours(tf.constant([["a"], ["b"]]))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.token_to_id("[CLS]")
    with pytest.raises(ValueError, match="special token '<s>' is not in"):
        BytePairTokenizer(ours.get_vocabulary(), ours.merges, special_tokens=["<s>"])
    with pytest.raises(ValueError, match="sequence_length"):
        BytePairTokenizer(ours.get_vocabulary(), ours.merges, sequence_length=0)
    with pytest.raises(ValueError, match=r"merges\[1\].*'zz'.*not in the vocabulary"):
        BytePairTokenizer(list(BYTE_SYMBOLS) + ["ab"], ["a b", "zz a"])
