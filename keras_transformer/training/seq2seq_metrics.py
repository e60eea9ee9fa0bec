"""Metrics of generated sequences against references: edit distance, WER, PER, exact match.

The grapheme-to-phoneme (G2P) conventions, which suit any task with a short output per input:

- A sequence is a `str` of space-separated tokens (`"HH AH0 L OW1"`, split on whitespace) or
  a sequence of tokens (`["HH", "AH0", "L", "OW1"]`; for characters, `list(text)`). Two outputs
  are equal if their tokens are equal, so runs of spaces do not matter.
- `references[i]` lists every acceptable output for input `i` (a word's pronunciations), at
  least one; a prediction is right if it equals any of them.
- Word error rate: the fraction of inputs whose prediction equals none of its references.
  `exact_match` is its complement (word accuracy).
- Phoneme error rate: the edit distance from each prediction to its closest reference, summed
  over the inputs, divided by the summed lengths of those closest references (ties: the
  first listed): the corpus-level (micro) rate, total errors over total reference tokens as
  speech recognition counts them, not the mean of per-word rates (a long word weighs more
  than a short one). Insertions count, so the rate can exceed 1.

Edit distance is Levenshtein's: the fewest insertions, deletions and substitutions (each
cost 1). In pure Python, after stripping the common prefix and suffix: a 13,000-word test
split scores in well under a second.

    word_error_rate(["HH EH0 L OW1"], [["HH AH0 L OW1", "HH EH0 L OW1"]])  # 0.0
"""

import numpy as np


def _tokens(sequence, name):
    if isinstance(sequence, str):
        return tuple(sequence.split())
    if isinstance(sequence, bytes | bytearray):
        raise TypeError(
            f"{name} is bytes ({bytes(sequence[:40])!r}); decode it to a str first (for "
            f"example `value.decode('utf-8')`)."
        )
    try:
        return tuple(sequence)
    except TypeError:
        raise TypeError(
            f"{name} must be a str of space-separated tokens or a sequence of tokens; "
            f"received {type(sequence).__name__}: {sequence!r}."
        ) from None


def _distance(a, b):
    """Levenshtein distance of two tuples of tokens."""
    start, shortest = 0, min(len(a), len(b))
    while start < shortest and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def edit_distance(a, b):
    """Levenshtein distance between two token sequences.

    Args:
        a: str or sequence. A `str` is split on whitespace into tokens; any other sequence
            is taken as its tokens (use `list(text)` for characters).
        b: str or sequence. The same.

    Returns:
        The fewest insertions, deletions and substitutions of tokens that turn `a` into `b`,
        an `int`.

    Example:
    >>> edit_distance("HH AH0 L OW1", "HH EH0 L OW1")
    1
    >>> edit_distance(list("kitten"), list("sitting"))
    3
    """
    return _distance(_tokens(a, "a"), _tokens(b, "b"))


def _check(predictions, references):
    """Tokenize and validate; return (list of prediction tuples, list of tuples of tuples)."""
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length; received "
            f"{len(predictions)} predictions and {len(references)} references."
        )
    if not predictions:
        raise ValueError("No predictions: a rate over zero inputs is undefined.")
    tokenized, listed = [], []
    for i, (prediction, acceptable) in enumerate(zip(predictions, references, strict=True)):
        tokenized.append(_tokens(prediction, f"predictions[{i}]"))
        if isinstance(acceptable, str | bytes):
            raise TypeError(
                f"references[{i}] is a single {type(acceptable).__name__} ({acceptable!r}); "
                f"it must list the acceptable outputs: wrap it as [{acceptable!r}]."
            )
        acceptable = [_tokens(r, f"references[{i}][{j}]") for j, r in enumerate(acceptable)]
        if not acceptable:
            raise ValueError(f"references[{i}] is empty; list at least one acceptable output.")
        listed.append(acceptable)
    return tokenized, listed


def _right(predictions, references):
    return np.array([p in set(r) for p, r in zip(predictions, references, strict=True)], bool)


def exact_match(predictions, references):
    """The fraction of predictions equal to one of their references (word accuracy).

    Args:
        predictions: list of str or token sequences. One output per input.
        references: list of lists. `references[i]` lists the acceptable outputs of input `i`
            (str or token sequences), at least one.

    Returns:
        A `float` in [0, 1]; `1 - word_error_rate(predictions, references)`.

    Raises:
        ValueError: no predictions, lengths differ, or an input lists no reference.
        TypeError: `references[i]` is a bare str (wrap it in a list) or a value is bytes.
    """
    return float(np.mean(_right(*_check(predictions, references))))


def word_error_rate(predictions, references):
    """The fraction of inputs whose prediction equals none of its references.

    For G2P on a pronouncing dictionary, a word is right if the predicted pronunciation is
    any of the word's listed pronunciations.

    Args:
        predictions: list of str or token sequences. One output per input.
        references: list of lists. `references[i]` lists the acceptable outputs of input `i`
            (str or token sequences), at least one.

    Returns:
        A `float` in [0, 1].

    Raises:
        ValueError: no predictions, lengths differ, or an input lists no reference.
        TypeError: `references[i]` is a bare str (wrap it in a list) or a value is bytes.

    Example:
    >>> word_error_rate(["HH EH0 L OW1", "AH0"], [["HH AH0 L OW1", "HH EH0 L OW1"], ["EY1"]])
    0.5
    """
    return 1.0 - float(np.mean(_right(*_check(predictions, references))))


def closest_references(predictions, references):
    """Each prediction's edit distance to its closest reference, and that reference's length.

    Args:
        predictions: list of str or token sequences. One output per input.
        references: list of lists. `references[i]` lists the acceptable outputs of input `i`
            (str or token sequences), at least one.

    Returns:
        A tuple `(distances, lengths)` of int64 arrays of shape (N,): the smallest edit
        distance from prediction `i` to one of its references, and the length of that
        reference (the first listed among equally close ones). A distance of 0 means right.

    Raises:
        ValueError: no predictions, lengths differ, or an input lists no reference.
        TypeError: `references[i]` is a bare str (wrap it in a list) or a value is bytes.
    """
    predictions, references = _check(predictions, references)
    distances = np.empty(len(predictions), np.int64)
    lengths = np.empty(len(predictions), np.int64)
    for i, (prediction, acceptable) in enumerate(zip(predictions, references, strict=True)):
        best, length = None, 0
        for reference in acceptable:
            if prediction == reference:
                best, length = 0, len(reference)
                break
            distance = _distance(prediction, reference)
            if best is None or distance < best:
                best, length = distance, len(reference)
        distances[i], lengths[i] = best, length
    return distances, lengths


def phoneme_error_rate(predictions, references):
    """Edit distance to the closest reference, summed over inputs, over the summed lengths.

    `sum_i min_r d(prediction_i, r) / sum_i len(r*_i)`, `r*_i` the closest reference of input
    `i` (the first listed among ties): the corpus-level (micro) token error rate.

    Args:
        predictions: list of str or token sequences. One output per input.
        references: list of lists. `references[i]` lists the acceptable outputs of input `i`
            (str or token sequences), at least one.

    Returns:
        A `float` >= 0 (above 1 when predictions insert more tokens than the references
        hold).

    Raises:
        ValueError: no predictions, lengths differ, an input lists no reference, or every
            closest reference is empty (the rate is undefined).
        TypeError: `references[i]` is a bare str (wrap it in a list) or a value is bytes.

    Example:
    >>> phoneme_error_rate(["HH AH0 L OW1", "B AW1"], [["HH AH0 L OW1"], ["B AW1 T"]])
    0.14285714285714285
    """
    distances, lengths = closest_references(predictions, references)
    total = int(lengths.sum())
    if total == 0:
        raise ValueError(
            "Every closest reference is empty: the phoneme error rate divides by their total "
            "length, 0. Use exact_match or edit distances for empty targets."
        )
    return int(distances.sum()) / total
