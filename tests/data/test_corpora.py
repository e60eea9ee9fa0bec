import pytest

from keras_transformer.data import corpora


def test_text_corpus_file_and_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_text("second\n")
    (tmp_path / "one.TXT").write_text("first\n")
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "notes.md").write_text("not read")
    assert corpora.text_corpus(tmp_path) == ["second\n", "first\n"]  # Sorted by path.
    assert corpora.text_corpus(tmp_path / "notes.md") == ["not read"]
    assert corpora.text_corpus(tmp_path, extensions=(".md",)) == ["not read"]


def test_text_corpus_empty_inputs(tmp_path):
    with pytest.raises(ValueError, match="holds no file ending in"):
        corpora.text_corpus(tmp_path)
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(ValueError, match="are empty"):
        corpora.text_corpus(tmp_path)
    with pytest.raises(ValueError, match="a.txt is empty"):
        corpora.text_corpus(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        corpora.text_corpus(tmp_path / "nowhere")


def test_invalid_utf8_is_replaced_with_a_warning(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\xef\xbb\xbfna\xefve \xff\xfe caf\xc3\xa9\n")
    with pytest.warns(UnicodeWarning, match=r"mixed.txt .* 3 invalid byte sequence"):
        (text,) = corpora.text_corpus(path)
    # The BOM is dropped, valid UTF-8 is kept, each bad sequence becomes U+FFFD.
    assert text == "na\ufffdve \ufffd\ufffd café\n"


def test_labeled_csv_and_tsv(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('review,stars\n"Good, really",10\nBad,2\n,2\nFine,10\n')
    with pytest.warns(UserWarning, match="skipped 1 row"):
        data = corpora.labeled_csv(path, text_column="review", label_column="stars")
    assert data.texts == ["Good, really", "Bad", "Fine"]
    assert data.label_names == ("2", "10")  # Numeric order, not string order.
    assert data.labels == [1, 0, 1]
    tsv = tmp_path / "data.tsv"
    tsv.write_text("text\tlabel\nyes\tpos\nno\tneg\n")
    data = corpora.labeled_csv(tsv, label_names=["neg", "pos"])
    assert (data.texts, data.labels) == (["yes", "no"], [1, 0])
    texts, labels = next(iter(data.as_dataset().batch(2)))
    assert labels.numpy().tolist() == [1, 0]


def test_labeled_csv_errors(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("sentence,label\nhello,1\n")
    with pytest.raises(ValueError, match=r"data.csv has no column 'text'.*'sentence', 'label'"):
        corpora.labeled_csv(path)
    path.write_text("text,label\nhello,\n")
    with pytest.raises(ValueError, match="data.csv, line 2: the label column 'label' is empty"):
        corpora.labeled_csv(path)
    path.write_text("text,label\nhello,maybe\n")
    with pytest.raises(ValueError, match=r"labels \['maybe'\] are not in label_names"):
        corpora.labeled_csv(path, label_names=["no", "yes"])
    path.write_text("")
    with pytest.raises(ValueError, match="data.csv is empty"):
        corpora.labeled_csv(path)
    path.write_text("text,label\n")
    with pytest.raises(ValueError, match="no row with text"):
        corpora.labeled_csv(path)
    with pytest.raises(ValueError, match=r"delimiter of .*data.json"):
        corpora.labeled_csv(tmp_path / "data.json")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        corpora.labeled_csv(tmp_path / "absent.csv")
