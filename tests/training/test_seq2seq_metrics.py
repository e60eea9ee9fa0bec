import functools
import random

import numpy as np
import pytest

from keras_transformer.training.seq2seq_metrics import (
    closest_references,
    edit_distance,
    exact_match,
    phoneme_error_rate,
    word_error_rate,
)


def brute_force_distance(a, b):
    """Levenshtein distance straight from its recursive definition (no row trick, no trimming)."""
    a, b = tuple(a), tuple(b)

    @functools.cache
    def d(i, j):  # Distance between a[:i] and b[:j].
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def random_sequences(count, seed, alphabet="ABC", max_length=7):
    rng = random.Random(seed)
    return [rng.choices(alphabet, k=rng.randint(0, max_length)) for _ in range(count)]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (list("kitten"), list("sitting"), 3),
        (list("flaw"), list("lawn"), 2),
        ("HH AH0 L OW1", "HH EH0 L OW1", 1),  # One substitution.
        ("HH AH0 L OW1", "HH L OW1", 1),  # One deletion.
        ("B AW1", "B AW1 T", 1),  # One insertion.
        ("A B C", "C B A", 2),
        ("", "K AE1 T", 3),
        ("K AE1 T", [], 3),
        ("", "", 0),
        ("HH  AH0   L OW1 ", ["HH", "AH0", "L", "OW1"], 0),  # Whitespace runs do not count.
    ],
)
def test_edit_distance_hand_computed(a, b, expected):
    assert edit_distance(a, b) == expected
    assert edit_distance(b, a) == expected


def test_edit_distance_equals_brute_force():
    sequences = random_sequences(300, seed=0)
    for a, b in zip(sequences[::2], sequences[1::2], strict=True):
        assert edit_distance(a, b) == brute_force_distance(a, b), (a, b)
    longer = random_sequences(40, seed=1, alphabet="ABCDEFGH", max_length=14)
    for a, b in zip(longer[::2], longer[1::2], strict=True):
        assert edit_distance(a, b) == brute_force_distance(a, b), (a, b)


def test_edit_distance_is_a_metric():
    sequences = random_sequences(60, seed=2)
    for a, b, c in zip(sequences[0::3], sequences[1::3], sequences[2::3], strict=True):
        assert edit_distance(a, c) <= edit_distance(a, b) + edit_distance(b, c)
        assert edit_distance(a, b) >= abs(len(a) - len(b))
        assert (edit_distance(a, b) == 0) == (a == b)


HELLO = ["HH AH0 L OW1", "HH EH0 L OW1"]


def test_any_listed_pronunciation_is_right():
    predictions = ["HH EH0 L OW1", "EY1", "B AW1"]
    references = [HELLO, ["AH0", "EY1"], ["B AW1 T"]]
    assert word_error_rate(predictions, references) == pytest.approx(1 / 3)
    assert exact_match(predictions, references) == pytest.approx(2 / 3)
    # Distances 0, 0, 1 over closest-reference lengths 4, 1, 3.
    assert phoneme_error_rate(predictions, references) == pytest.approx(1 / 8)
    distances, lengths = closest_references(predictions, references)
    assert distances.tolist() == [0, 0, 1] and lengths.tolist() == [4, 1, 3]
    # Against only the first listed pronunciations, the first two words would be wrong too.
    first_only = [[r[0]] for r in references]
    assert word_error_rate(predictions, first_only) == 1.0


def test_phoneme_error_rate_uses_the_closest_reference():
    # d("A B C D E", "A B") = 3; d(..., "A B C D E F") = 1: the second is closest.
    assert phoneme_error_rate(["A B C D E"], [["A B", "A B C D E F"]]) == pytest.approx(1 / 6)
    # A tie (distance 2 to both): the first listed gives the length.
    assert phoneme_error_rate(["A B C D"], [["A B", "A B C D E F"]]) == pytest.approx(2 / 2)
    assert phoneme_error_rate(["A B C D"], [["A B C D E F", "A B"]]) == pytest.approx(2 / 6)


def test_phoneme_error_rate_is_summed_over_words_then_divided():
    # Errors 3 + 1 over lengths 4 + 1: 0.8 (the mean of the per-word rates would be 0.875).
    assert phoneme_error_rate(["A", "X"], [["A B C D"], ["Y"]]) == pytest.approx(0.8)
    # Insertions count: the rate can exceed 1.
    assert phoneme_error_rate(["A B C D E F"], [["A"]]) == pytest.approx(5.0)


def test_empty_predictions_are_wrong():
    predictions = ["", [], "HH AH0 L OW1"]
    references = [HELLO, [["B", "AW1", "T"]], HELLO]
    assert word_error_rate(predictions, references) == pytest.approx(2 / 3)
    # An empty prediction costs the whole closest reference: 4 + 3 errors over 4 + 3 + 4.
    assert phoneme_error_rate(predictions, references) == pytest.approx(7 / 11)


def test_token_sequences_and_strings_agree():
    as_strings = ["HH EH0 L OW1", "K AE1 T"]
    as_tokens = [s.split() for s in as_strings]
    references = [HELLO, ["K AE1 T S"]]
    token_references = [[tuple(r.split()) for r in listed] for listed in references]
    assert word_error_rate(as_tokens, token_references) == word_error_rate(as_strings, references)
    assert phoneme_error_rate(as_tokens, token_references) == pytest.approx(1 / 8)
    # Characters: pass the list of characters.
    assert exact_match([list("2021-03-05")], [[list("2021-03-05")]]) == 1.0


def test_rates_equal_brute_force_on_random_data():
    rng = random.Random(3)
    predictions = random_sequences(200, seed=4)
    references = [random_sequences(rng.randint(1, 3), seed=100 + i) for i in range(200)]
    for i in range(0, 200, 5):  # Some predictions are right, against a later reference.
        predictions[i] = list(references[i][-1])
    wrong, errors, length = 0, 0, 0
    for prediction, listed in zip(predictions, references, strict=True):
        distances = [brute_force_distance(prediction, r) for r in listed]
        best = int(np.argmin(distances))  # The first of the closest.
        wrong += distances[best] > 0
        errors += distances[best]
        length += len(listed[best])
    assert word_error_rate(predictions, references) == pytest.approx(wrong / 200)
    assert exact_match(predictions, references) == pytest.approx(1 - wrong / 200)
    assert phoneme_error_rate(predictions, references) == pytest.approx(errors / length)


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="No predictions"):
        word_error_rate([], [])
    with pytest.raises(ValueError, match="2 predictions and 1 references"):
        exact_match(["A", "B"], [["A"]])
    with pytest.raises(TypeError, match=r"references\[0\] is a single str .*wrap it"):
        word_error_rate(["HH AH0 L OW1"], ["HH AH0 L OW1"])
    with pytest.raises(ValueError, match=r"references\[1\] is empty"):
        phoneme_error_rate(["A", "B"], [["A"], []])
    with pytest.raises(TypeError, match=r"predictions\[0\] is bytes.*decode"):
        word_error_rate([b"HH AH0"], [["HH AH0"]])
    with pytest.raises(TypeError, match=r"references\[0\]\[0\] must be a str"):
        word_error_rate(["A"], [[3]])
    with pytest.raises(ValueError, match="Every closest reference is empty"):
        phoneme_error_rate([""], [[""]])
