"""In-graph Unicode normalization from core TensorFlow ops: NFD accent stripping and NFKC_Casefold.

These reproduce what keras-hub's WordPiece pre-tokenizer gets from tensorflow-text (ICU):
`normalize_utf8(text, "NFD")` followed by removing `\\p{Mn}`, and `case_fold_utf8`. Both are
table driven: a per-code-point mapping (a `tf.lookup.StaticHashTable` into a ragged table of
replacement code points), the canonical reordering of combining marks (a stable sort), and
canonical composition (a `tf.while_loop` over character positions, vectorized over words).

Only text that needs it takes the slow path: a regex gate sends ASCII and other unaffected strings
straight through, so English text pays for one RE2 scan.
"""

import functools
import unicodedata

import numpy as np
import tensorflow as tf

from keras_transformer.text.string_ops import join_rows, split_characters
from keras_transformer.text.unicode_tables import (
    _to_ranges,
    get_unicode_tables,
    ranges_to_regex_class,
)

# The string table's default: no character maps to it.
_UNMAPPED = "\x00"
# Bits for a code point (U+10FFFF < 2**21) in a composition-pair key.
_CODE_POINT_BITS = 21


class _CodePointMap(tf.Module):
    """Maps each code point to a (possibly empty) sequence of code points.

    Args:
        mapping: dict. Code point to a tuple of code points; code points absent from the dict map
            to themselves.
        name: str. The module name.
    """

    def __init__(self, mapping, name=None):
        super().__init__(name=name)
        keys = sorted(mapping)
        rows = [mapping[key] for key in keys]
        lengths = [len(row) for row in rows]
        starts = [0]
        for length in lengths[:-1]:
            starts.append(starts[-1] + length)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.range(len(keys), dtype=tf.int64)
            ),
            default_value=-1,
        )
        # NumPy, not tensors: each call embeds them as constants of its own graph, so a
        # `tf.cond` branch that maps code points does not take them in as inputs.
        self._starts = np.array(starts, np.int64)
        self._lengths = np.array(lengths, np.int64)
        self._values = np.array([c for row in rows for c in row] or [0], np.int32)

    def __call__(self, code_points):
        """Apply the mapping.

        Args:
            code_points: int32 `tf.RaggedTensor` of shape (N, (C)).

        Returns:
            int32 `tf.RaggedTensor` of shape (N, (C')): each code point replaced by its mapping.
        """
        flat = code_points.flat_values  # (F,)
        index = self._table.lookup(tf.cast(flat, tf.int64))
        mapped = index >= 0
        safe_index = tf.maximum(index, 0)
        lengths = tf.where(mapped, tf.gather(self._lengths, safe_index), 1)  # (F,)
        # Dense index arithmetic: ragged broadcasting ops are slow inside tf.data.
        owner = tf.repeat(tf.range(tf.size(flat, out_type=tf.int64)), lengths)  # (F',)
        ends = tf.cumsum(lengths)
        within = tf.range(tf.size(owner, out_type=tf.int64)) - tf.gather(ends - lengths, owner)
        source = tf.gather(tf.gather(self._starts, safe_index), owner) + within
        new_flat = tf.where(
            tf.gather(mapped, owner), tf.gather(self._values, source), tf.gather(flat, owner)
        )
        new_splits = tf.gather(tf.concat([[0], ends], axis=0), code_points.row_splits)
        return tf.RaggedTensor.from_row_splits(new_flat, new_splits, validate=False)


class CharacterMap(tf.Module):
    """Replaces characters of strings by strings, from a table; other characters are kept.

    Args:
        mapping: dict. Code point to its replacement (str, possibly empty).
        name: str. The module name.
    """

    def __init__(self, mapping, name=None):
        super().__init__(name=name)
        keys = sorted(mapping) or [ord(_UNMAPPED)]  # A table cannot be empty.
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([chr(k) for k in keys]),
                tf.constant([mapping.get(k, _UNMAPPED) for k in keys]),
            ),
            default_value=_UNMAPPED,
        )

    def __call__(self, text):
        """Map every character of `text`, a string tensor of shape (N,) in valid UTF-8."""
        chars, row_splits = split_characters(text)  # (C,), (N + 1,)
        mapped = self._table.lookup(chars)
        return join_rows(tf.where(tf.equal(mapped, _UNMAPPED), chars, mapped), row_splits)


class UnicodeNormalizer(tf.Module):
    """NFD accent stripping and NFKC_Casefold lower-casing, built from core TensorFlow ops.

    The tables come from Python's `unicodedata` (see `unicode_tables`); the module holds them as
    `tf.lookup.StaticHashTable`s and constants, so a `tf.function` that uses it can be saved in a
    SavedModel and served without tensorflow-text. Invalid UTF-8 must be replaced beforehand
    (`tf.strings.unicode_transcode(..., errors="replace")`).

    Example:
    >>> normalizer = UnicodeNormalizer()
    >>> normalizer.strip_accents(tf.constant(["Café"]))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'Cafe'], dtype=object)>
    >>> normalizer.case_fold(tf.constant(["Straße"]))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'strasse'], dtype=object)>
    """

    def __init__(self, name=None):
        super().__init__(name=name)
        tables = get_unicode_tables()
        self._nfd = _CodePointMap(tables.nfd, name="nfd")
        self._casefold = _CodePointMap(tables.casefold, name="casefold")
        ccc_keys = sorted(tables.combining_class)
        self._combining_class = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(ccc_keys, tf.int64),
                tf.constant([tables.combining_class[k] for k in ccc_keys], tf.int64),
            ),
            default_value=0,
        )
        pairs = sorted(tables.composition)
        self._composition = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([(a << _CODE_POINT_BITS) | b for a, b in pairs], tf.int64),
                tf.constant([tables.composition[p] for p in pairs], tf.int64),
            ),
            default_value=-1,
        )
        self._nfd_strings = CharacterMap(
            {k: "".join(map(chr, v)) for k, v in tables.nfd.items()}, name="nfd_strings"
        )
        self._spacing_mark_class = ranges_to_regex_class(tables.spacing_mark_ranges)
        self._casefold_gate = ranges_to_regex_class(tables.casefold_trigger_ranges)

    def strip_accents(self, text, gated=True):
        """Remove accents the way keras-hub does: NFD, then delete every `\\p{Mn}` character.

        NFD comes from a per-character string table. Its canonical reordering of combining
        marks only matters, once the nonspacing marks are gone, between two spacing marks
        (combining class > 0 but not Mn, about 25 rare characters): strings holding one take
        the exact code point path.

        Args:
            text: string `tf.Tensor` of shape (N,), valid UTF-8.
            gated: bool. If False, every string takes the exact code point path: the same
                result without a `tf.cond` (a smaller graph where strings are few).

        Returns:
            string `tf.Tensor` of shape (N,).
        """
        if not gated:
            return tf.strings.regex_replace(self._nfd_exact(text), r"\p{Mn}", "")
        decomposed = self._nfd_strings(text)
        reorder = tf.strings.regex_full_match(text, ".*" + self._spacing_mark_class + ".*")
        exact = apply_where(reorder, text, self._nfd_exact)
        decomposed = tf.where(reorder, exact, decomposed)
        return tf.strings.regex_replace(decomposed, r"\p{Mn}", "")

    def case_fold(self, text, gated=True):
        """NFKC_Casefold, as ICU's `case_fold_utf8` in tensorflow-text.

        Args:
            text: string `tf.Tensor` of shape (N,), valid UTF-8.
            gated: bool. If False, every string takes the code point path: the same result
                without a `tf.cond`.

        Returns:
            string `tf.Tensor` of shape (N,).
        """
        text = tf.strings.lower(text)  # ASCII only: the fast path for most words.
        if not gated:
            return self._case_fold_all(text)
        needs = tf.strings.regex_full_match(text, ".*" + self._casefold_gate + ".*")
        return apply_where(needs, text, self._case_fold_all)

    def _nfd_exact(self, text):
        code_points = tf.strings.unicode_decode(text, "UTF-8")
        code_points = self._canonical_reorder(self._nfd(code_points))
        return tf.strings.unicode_encode(code_points, "UTF-8")

    def _case_fold_all(self, text):
        code_points = tf.strings.unicode_decode(text, "UTF-8")
        code_points = self._canonical_reorder(self._casefold(code_points))
        code_points = self._canonical_compose(code_points)
        return tf.strings.unicode_encode(code_points, "UTF-8")

    def _canonical_reorder(self, code_points):
        """Stable sort of each run of combining marks by combining class (NFD's reordering)."""
        flat = code_points.flat_values
        ccc = self._combining_class.lookup(tf.cast(flat, tf.int64))
        position = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(
            code_points.row_starts(), code_points.value_rowids()
        )
        starts_group = tf.logical_or(tf.equal(ccc, 0), tf.equal(position, 0))
        group = tf.cumsum(tf.cast(starts_group, tf.int64))
        order = tf.argsort(group * 256 + ccc, stable=True)
        return code_points.with_flat_values(tf.gather(flat, order))

    def _canonical_compose(self, code_points):
        """Canonical composition (the second half of NFC), vectorized over rows.

        Follows the reference algorithm of UAX #15: each character composes with the last
        starter unless a character in between blocks it.
        """
        lengths = tf.cast(code_points.row_lengths(), tf.int32)  # (N,)
        dense = code_points.to_tensor(default_value=0)
        dense = tf.pad(dense, [[0, 0], [0, 1]])  # (N, L + 1): at least one column.
        ccc = tf.cast(self._combining_class.lookup(tf.cast(dense, tf.int64)), tf.int32)
        num_rows = tf.shape(dense)[0]
        max_length = tf.shape(dense)[1]
        rows = tf.range(num_rows)
        last_class = tf.where(ccc[:, 0] > 0, 256, 0)
        starter_pos = tf.zeros([num_rows], tf.int32)
        comp_pos = tf.minimum(lengths, 1)

        def body(i, out, starter_pos, comp_pos, last_class):
            ch = dense[:, i]
            ch_class = ccc[:, i]
            active = i < lengths
            starter = tf.gather(out, starter_pos, batch_dims=1)
            key = tf.cast(starter, tf.int64) * (1 << _CODE_POINT_BITS) + tf.cast(ch, tf.int64)
            composite = tf.cast(self._composition.lookup(key), tf.int32)
            compose = (
                active & (composite >= 0) & ((last_class < ch_class) | tf.equal(last_class, 0))
            )
            append = active & ~compose
            target = tf.where(compose, starter_pos, comp_pos)
            target = tf.minimum(target, max_length - 1)
            current = tf.gather(out, target, batch_dims=1)
            value = tf.where(compose, composite, tf.where(append, ch, current))
            out = tf.tensor_scatter_nd_update(out, tf.stack([rows, target], axis=1), value)
            starter_pos = tf.where(append & tf.equal(ch_class, 0), comp_pos, starter_pos)
            last_class = tf.where(append, ch_class, last_class)
            comp_pos = comp_pos + tf.cast(append, tf.int32)
            return i + 1, out, starter_pos, comp_pos, last_class

        _, out, _, comp_pos, _ = tf.while_loop(
            lambda i, *_: i < max_length,
            body,
            (tf.constant(1), dense, starter_pos, comp_pos, last_class),
        )
        return tf.RaggedTensor.from_tensor(out, lengths=comp_pos)


def apply_where(needs, text, fn):
    """Apply `fn` only to the elements of a 1-D tensor where `needs` is true.

    The rest pass through untouched, and if no element needs it `fn` does not run at all, so a
    slow path costs nothing on batches that do not need it.

    Args:
        needs: bool tensor of shape (N,).
        text: tensor of shape (N,).
        fn: callable mapping a (K,) tensor to a (K,) tensor of the same dtype.

    Returns:
        A tensor of shape (N,).
    """
    indices = tf.cast(tf.where(needs)[:, 0], tf.int32)

    def apply():
        changed = fn(tf.gather(text, indices))
        return tf.tensor_scatter_nd_update(text, tf.expand_dims(indices, 1), changed)

    return tf.cond(tf.size(indices) > 0, apply, lambda: text)


# ASCII whitespace: what `tf.strings.split` (and so a tokenizer's word split) splits on.
_ASCII_WHITESPACE = frozenset(" \t\n\x0b\x0c\r")


def _is_other_whitespace(code_point):
    """Control (`\\p{Cc}`, not ASCII whitespace) and format (`\\p{Cf}`) characters."""
    if code_point <= 0x08 or 0x0E <= code_point <= 0x1F or 0x7F <= code_point <= 0x9F:
        return True
    return unicodedata.category(chr(code_point)) == "Cf"


@functools.lru_cache(maxsize=16)
def word_character_map(strip_accents, lowercase, kept_ranges):
    """The per-character form of a word tokenizer's normalization, where it is exact.

    The tokenizers normalize a string in steps: control and format characters become spaces;
    if `strip_accents`, each character is decomposed (NFD) and nonspacing marks are removed
    (`UnicodeNormalizer.strip_accents`); the text is split into words on ASCII whitespace and
    around kept characters (punctuation, CJK); if `lowercase`, each word is case folded
    (`UnicodeNormalizer.case_fold`). For most characters the whole chain acts on each
    character alone, so a string made only of them is normalized by one table lookup per
    character, before splitting. A character is left out ("not covered") when that is not
    exact: accent stripping reorders spacing marks; case folding composes or reorders across
    characters (a result that starts with a combining mark or the second half of a canonical
    composition); a result that splits into other words than the character did; and characters
    unassigned in this Python's Unicode (a newer Unicode elsewhere may know them), private use
    aside. U+FFFD is left out too, so that strings with invalid UTF-8 take the exact path.

    Args:
        strip_accents: bool.
        lowercase: bool. ASCII letters are expected to be lower-cased beforehand.
        kept_ranges: tuple of `(low, high)` code point ranges that are words on their own
            besides `\\p{P}` (ASCII symbols, CJK ideographs).

    Returns:
        `(mapping, covered)`: `{code point: str}` for the characters whose result differs from
        themselves, and the covered characters as a tuple of `(low, high)` ranges.
    """
    tables = get_unicode_tables()
    seconds = {second for _, second in tables.composition}
    spacing_marks = _range_set(tables.spacing_mark_ranges)
    triggers = _range_set(tables.casefold_trigger_ranges)
    kept = _range_set(kept_ranges)

    def kind(char):
        if char in _ASCII_WHITESPACE:
            return "space"
        if ord(char) in kept or unicodedata.category(char).startswith("P"):
            return "kept"
        return "word"

    def case_fold(word):  # `UnicodeNormalizer.case_fold` on one word; and its first code point.
        word = "".join(c.lower() if c.isascii() else c for c in word)
        if not any(ord(c) in triggers for c in word):
            return word, word[:1]
        mapped = "".join(chr(m) for c in word for m in tables.casefold.get(ord(c), (ord(c),)))
        return unicodedata.normalize("NFC", mapped), mapped[:1]

    def normalize(code_point):  # The result, or None if not covered.
        char = chr(code_point)
        if _is_other_whitespace(code_point):
            return " "
        if strip_accents:
            if code_point in spacing_marks:
                return None
            decomposed = map(chr, tables.nfd.get(code_point, (code_point,)))
            char = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
        kinds = set(map(kind, char))
        if not lowercase or kinds <= {"space"}:
            return char
        folded, head = case_fold(char)
        if kinds == {"kept"} and len(char) == 1:
            return folded if len(folded) == 1 and kind(folded) == "kept" else None
        if kinds != {"word"} or set(map(kind, folded)) - {"word"}:
            return None
        if head and (tables.combining_class.get(ord(head)) or ord(head) in seconds):
            return None
        return folded

    special = set(tables.nfd) | set(tables.casefold) | set(tables.combining_class) | seconds | kept
    mapping, covered = {}, []
    for code_point in range(0x110000):
        if 0xD800 <= code_point <= 0xDFFF or code_point == 0xFFFD:
            continue
        if code_point < 0x80 and not _is_other_whitespace(code_point):
            covered.append(code_point)  # ASCII, lower-cased beforehand.
            continue
        category = unicodedata.category(chr(code_point))
        if category == "Cn":
            continue
        if code_point in special or category in ("Cc", "Cf") or category[0] in "PM":
            result = normalize(code_point)
            if result is None:
                continue
            if result != chr(code_point):
                mapping[code_point] = result
        covered.append(code_point)
    return mapping, _to_ranges(covered)


def _range_set(ranges):
    return {code_point for low, high in ranges for code_point in range(low, high + 1)}
