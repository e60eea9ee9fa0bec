"""Unicode data tables for in-graph text normalization, built from Python's `unicodedata`.

keras-hub's tokenizers normalize text with ICU through tensorflow-text (`normalize_utf8(text,
"NFD")` to strip accents, `case_fold_utf8` (NFKC_Casefold) to lower-case). Core TensorFlow has no
Unicode normalization op, so `keras_transformer.text.normalization` rebuilds both from lookup
tables and a little graph code. This module computes those tables once per process, in pure
Python, from the Unicode database that ships with the interpreter (Unicode 14.0 on Python 3.11).

Characters that Unicode 14.0 leaves unassigned pass through unchanged; ICU, which follows a newer
Unicode, may normalize a few of them (about 150 code points added in Unicode 15 and 16).
"""

import functools
import unicodedata
from dataclasses import dataclass

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 14.0). NFKC_Casefold removes
# these characters; `unicodedata` has no accessor for the property.
DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

_MAX_CODE_POINT = 0x10FFFF


@dataclass(frozen=True)
class UnicodeTables:
    """Tables behind in-graph NFD and NFKC_Casefold.

    Attributes:
        nfd: dict. Code point to its full canonical decomposition (a tuple of code points), for
            every code point whose NFD differs from itself (precomposed letters, Hangul syllables).
        casefold: dict. Code point to the canonical decomposition (NFD) of its NFKC_Casefold
            mapping, wherever that differs from the code point itself (an empty tuple removes
            it). Canonical composition afterwards gives the NFC result.
        combining_class: dict. Code point to its nonzero canonical combining class.
        composition: dict. `(first, second)` code points to their primary composite, the pairs
            that canonical composition (NFC) joins, Hangul included.
        casefold_trigger_ranges: tuple of `(low, high)` code point ranges. A word needs the
            full NFKC_Casefold path only if it holds one of these characters (a non-ASCII
            character that maps, combines or composes).
        spacing_mark_ranges: tuple of `(low, high)` ranges: combining characters that are not
            nonspacing marks (Mn), which accent stripping keeps and NFD may reorder.
    """

    nfd: dict
    casefold: dict
    combining_class: dict
    composition: dict
    casefold_trigger_ranges: tuple
    spacing_mark_ranges: tuple


def _is_default_ignorable(code_point):
    return any(low <= code_point <= high for low, high in DEFAULT_IGNORABLE_RANGES)


def _nfkc_casefold(text):
    """NFKC_Casefold of one character: casefold and NFKC to a fixed point, ignorables dropped."""
    text = "".join(c for c in text if not _is_default_ignorable(ord(c)))
    while True:
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        folded = "".join(c for c in folded if not _is_default_ignorable(ord(c)))
        if folded == text:
            return folded
        text = folded


def _to_ranges(code_points):
    """Sorted code points to a tuple of inclusive `(low, high)` ranges."""
    ranges = []
    for code_point in sorted(code_points):
        if ranges and ranges[-1][1] == code_point - 1:
            ranges[-1][1] = code_point
        else:
            ranges.append([code_point, code_point])
    return tuple((low, high) for low, high in ranges)


def _add_hangul_compositions(composition):
    """Add the algorithmic Hangul pairs (L + V -> LV, LV + T -> LVT) to `composition`."""
    for syllable in range(0xAC00, 0xD7A4):
        index = syllable - 0xAC00
        trailing = index % 28
        if trailing == 0:
            leading, vowel = 0x1100 + index // 588, 0x1161 + (index % 588) // 28
            composition[(leading, vowel)] = syllable
        else:
            composition[(syllable - trailing, 0x11A7 + trailing)] = syllable


def _assigned_code_points():
    for code_point in range(_MAX_CODE_POINT + 1):
        if 0xD800 <= code_point <= 0xDFFF:
            continue  # Surrogates never occur in valid UTF-8.
        category = unicodedata.category(chr(code_point))
        if category in ("Cn", "Co"):
            continue  # Unassigned and private use: no mappings.
        yield code_point


@functools.lru_cache(maxsize=1)
def get_unicode_tables():
    """Build (once per process) and return the `UnicodeTables`.

    Returns:
        UnicodeTables. Takes about a second to build the first time.

    Example:
    >>> tables = get_unicode_tables()
    >>> tables.nfd[0xE9]  # "é" -> "e" + COMBINING ACUTE ACCENT
    (101, 769)
    """
    nfd, casefold, combining_class, composition = {}, {}, {}, {}
    for code_point in _assigned_code_points():
        char = chr(code_point)
        decomposed = unicodedata.normalize("NFD", char)
        if decomposed != char:
            nfd[code_point] = tuple(ord(c) for c in decomposed)
            if len(decomposed) >= 2:
                # Primary composites: the canonical pairs that NFC joins back.
                raw = unicodedata.decomposition(char).split()
                if len(raw) == 2 and not raw[0].startswith("<"):
                    first, second = (int(part, 16) for part in raw)
                    if unicodedata.normalize("NFC", chr(first) + chr(second)) == char:
                        composition[(first, second)] = code_point
        ccc = unicodedata.combining(char)
        if ccc:
            combining_class[code_point] = ccc
        # Decomposed, so that canonical reordering and composition can run on the result.
        folded = unicodedata.normalize("NFD", _nfkc_casefold(char))
        if folded != char:
            casefold[code_point] = tuple(ord(c) for c in folded)
    for low, high in DEFAULT_IGNORABLE_RANGES:
        # Unassigned code points in these ranges are default ignorable too: removed.
        casefold.update({code_point: () for code_point in range(low, high + 1)})
    _add_hangul_compositions(composition)
    seconds = {second for _, second in composition}
    # Combining characters that are not Mn survive accent stripping, so NFD must reorder them.
    spacing_marks = {c for c in combining_class if unicodedata.category(chr(c)) != "Mn"}
    casefold_triggers = {c for c in set(casefold) | set(combining_class) | seconds if c >= 0x80}
    return UnicodeTables(
        nfd=nfd,
        casefold=casefold,
        combining_class=combining_class,
        composition=composition,
        casefold_trigger_ranges=_to_ranges(casefold_triggers),
        spacing_mark_ranges=_to_ranges(spacing_marks),
    )


def ranges_to_regex_class(ranges):
    """Code point ranges to an RE2 character class, e.g. `[\\x{C0}-\\x{C5}\\x{C7}]`.

    Args:
        ranges: iterable of `(low, high)` inclusive code point ranges.

    Returns:
        str. An RE2 character class matching exactly those code points.

    Example:
    >>> ranges_to_regex_class([(0xC0, 0xC5), (0xC7, 0xC7)])
    '[\\\\x{c0}-\\\\x{c5}\\\\x{c7}]'
    """
    parts = []
    for low, high in ranges:
        if low == high:
            parts.append(f"\\x{{{low:x}}}")
        else:
            parts.append(f"\\x{{{low:x}}}-\\x{{{high:x}}}")
    return "[" + "".join(parts) + "]"
