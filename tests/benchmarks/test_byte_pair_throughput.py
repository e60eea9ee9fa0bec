"""benchmarks.byte_pair_throughput: the parity gate, the published text, a small real run."""

import pytest

from benchmarks import byte_pair_throughput as bpt

TEXTS = ["a b", "c", "d e f"]
REFERENCE = [[1, 2], [3], [4, 5, 6]]


def ids_with(**changes):
    ids = {name: [list(row) for row in REFERENCE] for name in bpt.CONTENDERS}
    ids.update(changes)
    return ids


def test_mismatch_counts_name_each_pair():
    ids = ids_with(**{"keras-hub": [[1, 2], [9], [4, 5]]})
    assert bpt.mismatch_counts(ids) == {
        ("ours", "tokenizers, Python"): 0,
        ("keras-hub", "tokenizers, Python"): 2,
        ("ours", "keras-hub"): 2,
        ("tokenizers, tf.data", "tokenizers, Python"): 0,
    }
    bpt.require_parity("strings", TEXTS, ids)  # keras-hub may differ: no error


@pytest.mark.parametrize("name", ["ours", "tokenizers, tf.data"])
def test_require_parity_stops_when_ours_or_the_tf_data_path_differs(name):
    ids = ids_with(**{name: [[1, 2], [3], [4, 5, 7]]})
    with pytest.raises(bpt.ParityError, match=rf"{name} differs .* on 1 of 3 strings.*'d e f'"):
        bpt.require_parity("strings", TEXTS, ids)


def run_description(**changes):
    run = {
        "command": "python -m benchmarks.byte_pair_throughput --profile",
        "machine": "AMD EPYC, 2 cores",
        "loads": ("0.50 0.40 0.30", "1.00 0.90 0.80"),
        "vocabulary": "learned here",
        "vocabulary_size": 8000,
        "merges": 7743,
        "batch_size": 256,
        "repeats": 5,
        "corpora": {"movie reviews": (10070, 33.9), "Shakespeare lines": (20230, 9.4)},
    }
    run.update(changes)
    return run


SPEEDS = {
    "movie reviews": {
        "ours": 10000.0,
        "keras-hub": 4000.0,
        "tokenizers, tf.data": 20000.0,
        "tokenizers, Python": 40000.0,
    },
    "Shakespeare lines": {
        "ours": 30000.0,
        "keras-hub": 10000.0,
        "tokenizers, tf.data": 60000.0,
        "tokenizers, Python": 120000.0,
    },
}
STARTUPS = {
    corpus: {"ours": 0.5, "keras-hub": 1.25, "tokenizers, tf.data": 0.1} for corpus in SPEEDS
}
PARITY = {
    "movie reviews": {("ours", "tokenizers, Python"): 0, ("keras-hub", "tokenizers, Python"): 3,
                      ("ours", "keras-hub"): 3},
    "Shakespeare lines": {("ours", "tokenizers, Python"): 0,
                          ("keras-hub", "tokenizers, Python"): 1, ("ours", "keras-hub"): 1},
}  # fmt: skip


def table_row(text, first_cell, table=0):
    """The cells of the row starting with `first_cell` in the `table`-th table that has one."""
    lines = [line for line in text.splitlines() if line.startswith(f"| {first_cell} ")]
    return [cell.strip() for cell in lines[table].strip("|").split("|")]


def test_result_text_gives_speeds_ratios_parity_and_the_target():
    text = bpt.result_text(run_description(), SPEEDS, STARTUPS, PARITY)
    assert text.startswith(
        "`python -m benchmarks.byte_pair_throughput --profile`: AMD EPYC, 2 cores; load average "
        "(1, 5, 15 min) 0.50 0.40 0.30 at the start, 1.00 0.90 0.80 at the end."
    )
    assert (
        "Ids compared first on all 30,300 benchmark strings: ours vs tokenizers differ on 0, "
        "keras-hub vs tokenizers on 4, ours vs keras-hub on 4." in text
    )
    # sentences, tokens/sentence, 4 speeds, ours / keras-hub, / tokenizers tf.data, / Python.
    assert table_row(text, "movie reviews")[1:] == [
        "10,070", "33.9", "10,000", "4,000", "20,000", "40,000", "2.50", "0.50", "0.25"
    ]  # fmt: skip
    assert table_row(text, "Shakespeare lines")[7:] == ["3.00", "0.50", "0.25"]
    assert "Target ours / keras-hub ≥ 1.00: met on every corpus." in text
    assert "Where our time goes" not in text  # no profile given
    assert table_row(text, "movie reviews", table=1) == ["movie reviews", "0.50", "1.25", "0.10"]


def test_result_text_names_the_corpus_below_target():
    slow = {**SPEEDS, "movie reviews": {**SPEEDS["movie reviews"], "ours": 3000.0}}
    text = bpt.result_text(run_description(), slow, STARTUPS, PARITY)
    assert "Target ours / keras-hub ≥ 1.00: not met on movie reviews " in text
    assert table_row(text, "movie reviews")[7] == "0.75"


def profile_result(**ms):
    scopes = {scope: 100.0 for scope in bpt.SCOPES}
    return {
        "ms": {"tokenize": 9.5, "pre-tokenize": 4.0, "cache": 1.0, "merges": 5.0,
               "detokenize": 0.5, **ms},
        "us": {**scopes, "other": 50.0, "detokenize": 700.0},
        "ops": {},
        "top_ops": [("GatherV2", 1234.0), ("UnicodeTranscode", 567.0)],
        "words": 22.1,
        "cached": 0.68,
        "missed": 1812.0,
    }  # fmt: skip


def test_profile_rows_split_the_stages_timed_apart():
    rows = {name: (ms, share, us) for name, ms, share, us in bpt.profile_rows(profile_result())}
    assert rows["tokenize, one graph"] == (9.5, None, 750.0)  # every scope and "other"
    assert rows["pre-tokenization"] == (4.0, 0.4, 400.0)  # 4 of the 4 + 1 + 5 ms timed apart
    assert rows["- GPT-2 regex split"] == (None, None, 100.0)
    assert rows["- UTF-8 check (and bytes restored)"] == (None, None, 200.0)
    assert rows["cache lookup and id assembly"] == (1.0, 0.1, 200.0)
    assert rows["merge while_loop (uncached words)"] == (5.0, 0.5, 100.0)
    assert rows["detokenize (a separate call)"] == (0.5, None, 700.0)


def test_result_text_with_a_profile():
    profiles = {"movie reviews": profile_result(), "Shakespeare lines": profile_result()}
    text = bpt.result_text(run_description(), SPEEDS, STARTUPS, PARITY, profiles)
    assert table_row(text, "pre-tokenization")[1:] == ["4.00 (40%)", "400"] * 2
    assert table_row(text, "merge while_loop (uncached words)")[1:3] == ["5.00 (50%)", "100"]
    assert (
        "movie reviews: 22.1 words per sentence, 68% of them cached (vocabulary tokens); 1,812 "
        "words per batch go through the merge loop. Costliest op types (traced us per batch): "
        "GatherV2 1,234, UnicodeTranscode 567." in text
    )


def test_command_line_names_the_flags_that_change_the_run():
    args = bpt.parse_args(["--profile"])
    assert bpt.command_line(args) == "python -m benchmarks.byte_pair_throughput --profile"
    args = bpt.parse_args(["--quick", "--repeats", "9"])
    assert (args.vocabulary_size, args.repeats) == (2000, 3)
    assert bpt.command_line(args) == "python -m benchmarks.byte_pair_throughput --quick"
    args = bpt.parse_args(["--repeats", "7"])
    assert bpt.command_line(args) == "python -m benchmarks.byte_pair_throughput --repeats 7"


def test_vocabulary_and_merges_go_together(capsys):
    with pytest.raises(SystemExit):
        bpt.parse_args(["--vocabulary", "vocab.json"])
    assert "--vocabulary and --merges go together" in capsys.readouterr().err


def test_main_refuses_a_page_without_markers_before_measuring(tmp_path, monkeypatch, capsys):
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text("no markers\n")
    monkeypatch.setattr(bpt, "load_corpora", lambda **k: pytest.fail("measured anyway"))
    with pytest.raises(SystemExit) as exit_info:
        bpt.main(["--docs", str(docs)])
    assert exit_info.value.code == 2
    assert "has no block 'byte_pair_throughput'" in capsys.readouterr().err
    assert docs.read_text() == "no markers\n"


@pytest.mark.slow
def test_a_small_real_run_agrees_times_and_profiles():
    # A 400-token vocabulary and 300 strings per corpus: the real code paths end to end.
    lines = bpt.shakespeare_lines("train")[:3000]
    from keras_transformer.text import train_byte_pair_vocabulary

    vocabulary, merges = train_byte_pair_vocabulary(
        lines, 400, special_tokens=[bpt.SPECIAL], verbose=False
    )
    corpora = bpt.load_corpora(limit=300)
    tokenizers_by_name = {
        "ours": bpt.build_ours(vocabulary, merges),
        "keras-hub": bpt.build_keras_hub(vocabulary, merges),
        "tokenizers": bpt.build_hugging_face(vocabulary, merges),
    }
    texts = corpora["movie reviews"]
    ids = {
        "ours": bpt.dataset_ids(tokenizers_by_name["ours"], texts, 64),
        "tokenizers, tf.data": bpt.dataset_ids(
            bpt.hugging_face_map(tokenizers_by_name["tokenizers"]), texts, 64
        ),
        "tokenizers, Python": bpt.hugging_face_ids(tokenizers_by_name["tokenizers"], texts, 64),
    }
    assert sum(map(len, ids["ours"])) > len(texts)  # real tokens, not empty rows
    bpt.require_parity("movie reviews", texts, ids)  # ours and the tf.data path equal HF's

    speeds, startups = bpt.measure(tokenizers_by_name, corpora, 64, repeats=1)
    for corpus in corpora:
        assert set(speeds[corpus]) == set(bpt.CONTENDERS)
        assert all(speed > 0 for speed in speeds[corpus].values())
        assert set(startups[corpus]) == {"ours", "keras-hub", "tokenizers, tf.data"}

    # The profiled graph holds the eager layer's cache (else profile_ours raises) and each
    # stage is timed.
    result = bpt.profile_ours(tokenizers_by_name["ours"], texts, 64, batches=2, rounds=1)
    assert all(result["ms"][stage] > 0 for stage in ("tokenize", "pre-tokenize", "cache", "merges"))
    assert 0 < result["cached"] < 1
    assert result["us"]["merges"] > 0 and result["us"]["split"] > 0
