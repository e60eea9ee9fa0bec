"""The graph of byte-level BPE in core TensorFlow ops: GPT-2's pre-tokenization and the merges.

Pre-tokenization is GPT-2's regex, as Hugging Face `tokenizers` runs it (Oniguruma):

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

RE2, TensorFlow's regex engine, has the same leftmost-first semantics but no look-ahead. The
look-ahead only matters in a run of whitespace followed by a non-space: there the regex stops
one character short, so that the last whitespace character starts the next word (`"  a"` is
`" "`, `" a"`). So a first pass marks that boundary (a 0xFF byte, which no valid UTF-8 holds)
before the last whitespace character of every such run, and a second pass, the regex without
its look-ahead, marks the start of every word; splitting on the marks gives the words.

The character classes are those of `tokenizers` 0.23 (Unicode 16.0): `\\s` is Unicode
White_Space (not RE2's ASCII `\\s`), and the letters and digits added in Unicode 16.0, which
TensorFlow's RE2 tables lack, are listed explicitly.

BPE then merges each word's byte symbols by rank, exactly as `tokenizers` does: it repeatedly
merges the adjacent pair of lowest rank (the leftmost one if it occurs more than once). Here
all words of a batch advance together in one bounded `tf.while_loop`; in each step a word
merges every (non-overlapping) occurrence of its lowest-rank pair at once when that cannot
change the result (no pair the merges create ranks lower), and only the leftmost one otherwise.
"""

import tensorflow as tf

from keras_transformer.text.string_ops import row_ids

MARK = b"\xff"  # Never in valid UTF-8, never matched by an RE2 character class.
REPLACEMENT_CHARACTER = 0xFFFD

# Unicode White_Space, Oniguruma's `\s` (RE2's `\s` is [\t\n\f\r ] only).
_SPACE = (
    r"\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
)
# Letters (L) and numbers (N) new in Unicode 16.0: letters and numbers to `tokenizers`,
# unassigned (other symbols) to the RE2 of TensorFlow 2.21.
_NEW_LETTERS = (
    r"\x{1C89}-\x{1C8A}\x{A7CB}-\x{A7CD}\x{A7DA}-\x{A7DC}\x{105C0}-\x{105F3}\x{10D4A}-\x{10D65}"
    r"\x{10D6F}-\x{10D85}\x{10EC2}-\x{10EC4}\x{11380}-\x{11389}\x{1138B}\x{1138E}"
    r"\x{11390}-\x{113B5}\x{113B7}\x{113D1}\x{113D3}\x{11BC0}-\x{11BE0}\x{13460}-\x{143FA}"
    r"\x{16100}-\x{1611D}\x{16D40}-\x{16D6C}\x{18CFF}\x{1E5D0}-\x{1E5ED}\x{1E5F0}"
    r"\x{2EBF0}-\x{2EE5D}"
)
_NEW_NUMBERS = (
    r"\x{10D40}-\x{10D49}\x{116D0}-\x{116E3}\x{11BF0}-\x{11BF9}\x{16130}-\x{16139}"
    r"\x{16D70}-\x{16D79}\x{1CCF0}-\x{1CCF9}\x{1E5F1}-\x{1E5FA}"
)
SPACE = f"[{_SPACE}]"
NOT_SPACE = f"[^{_SPACE}]"
LETTER = rf"[\p{{L}}{_NEW_LETTERS}]"
NUMBER = rf"[\p{{N}}{_NEW_NUMBERS}]"
OTHER = rf"[^{_SPACE}\p{{L}}{_NEW_LETTERS}\p{{N}}{_NEW_NUMBERS}]"
CONTRACTIONS = "'s|'t|'re|'ve|'m|'ll|'d"
# GPT-2's regex without the look-ahead (`\s+(?!\S)|\s+` becomes `\s+`, see above).
WORD_REGEX = f"{CONTRACTIONS}| ?{LETTER}+| ?{NUMBER}+| ?{OTHER}+|{SPACE}+"
# The last whitespace character of a run followed by a non-space (pass one).
RUN_END_REGEX = f"({SPACE})({NOT_SPACE})"

INF_RANK = 2**31 - 1  # tf.math.unsorted_segment_min's value for a segment without pairs.


def re2_quote(text):
    """Escape `text` for RE2 (as RE2's QuoteMeta): a literal pattern."""
    out = []
    for char in text:
        if char == "\x00":
            out.append(r"\x00")
        elif char.isascii() and not (char.isalnum() or char == "_"):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def special_tokens_regex(special_tokens):
    """One alternation of the special tokens, longest first (leftmost-longest, as tokenizers)."""
    ordered = sorted(set(special_tokens), key=lambda t: (-len(t.encode()), t))
    return "|".join(re2_quote(t) for t in ordered)


def split_on_mark(text, drop_empty=True):
    """Split strings on `MARK` bytes.

    Args:
        text: string tensor of shape (B,).
        drop_empty: bool. Drop empty pieces.

    Returns:
        A tuple `(pieces, piece_row, row_splits)`: string (P,), int32 (P,), int32 (B + 1,).
    """
    indices, pieces, _ = tf.raw_ops.StringSplitV2(input=text, sep=MARK)
    piece_row = tf.cast(indices[:, 0], tf.int32)
    if drop_empty:
        keep = tf.strings.length(pieces) > 0
        pieces = tf.boolean_mask(pieces, keep)
        piece_row = tf.boolean_mask(piece_row, keep)
    counts = tf.raw_ops.DenseBincount(
        input=piece_row, size=tf.size(text), weights=tf.zeros([0], tf.int32)
    )
    return pieces, piece_row, tf.concat([[0], tf.cumsum(counts)], axis=0)


def split_words(text, special_regex=None, special_table=None, add_prefix_space=False):
    """GPT-2's pre-tokenization of a batch of byte strings into words (bytes).

    Special tokens are split out first and are one word each; with `add_prefix_space`, every
    non-empty piece between them that does not start with a space gets one (as `tokenizers`).
    Text that is not valid UTF-8 is split as if each ill-formed sequence were U+FFFD (an
    "other" symbol), but the words keep the original bytes.

    Args:
        text: string tensor of shape (B,).
        special_regex: str or None. `special_tokens_regex(...)`, or None without special tokens.
        special_table: a `tf.lookup` table from special token to a non-negative value (-1 for
            other strings), or None.
        add_prefix_space: bool.

    Returns:
        A tuple `(words, row_splits)`: string (N,) and int32 (B + 1,).
    """
    any_invalid = None  # Whether some text is not valid UTF-8, once known.
    if special_regex:
        with tf.name_scope("special_tokens"):
            # Split the valid UTF-8 form (raw text may hold MARK bytes), then give the pieces
            # of invalid rows their own bytes back.
            proxy, invalid = _valid_utf8(text)
            any_invalid = tf.reduce_any(invalid)
            marked = tf.strings.regex_replace(proxy, f"({special_regex})", MARK + rb"\1" + MARK)
            pieces, piece_row, piece_splits = split_on_mark(marked)
            pieces = tf.cond(
                any_invalid,
                lambda: _restore_bytes(pieces, piece_row, text, invalid),
                lambda: pieces,
            )
    else:
        pieces, piece_splits = text, tf.range(tf.size(text) + 1)
    if add_prefix_space:
        needs = (tf.strings.length(pieces) > 0) & (tf.strings.substr(pieces, 0, 1) != " ")
        if special_regex:
            needs &= special_table.lookup(pieces) < 0
        pieces = tf.strings.join([tf.where(needs, " ", ""), pieces])
    with tf.name_scope("utf8"):
        if any_invalid is None:
            proxy, invalid = _valid_utf8(pieces)
        else:
            # Pieces cut from valid UTF-8 at whole characters are valid: check them again
            # only if some text was not.
            proxy, invalid = tf.cond(
                any_invalid,
                lambda: _valid_utf8(pieces),
                lambda: (pieces, tf.zeros(tf.shape(pieces), tf.bool)),
            )
    with tf.name_scope("split"):
        prefix = f"{special_regex}|" if special_regex else ""
        if special_regex:
            marked = tf.strings.regex_replace(
                proxy, f"({special_regex})|{RUN_END_REGEX}", rb"\1" + MARK + rb"\2\3"
            )
        else:
            marked = tf.strings.regex_replace(proxy, RUN_END_REGEX, MARK + rb"\1\2")
        marked = tf.strings.regex_replace(marked, prefix + WORD_REGEX, MARK + rb"\0")
        words, word_piece, piece_word_splits = split_on_mark(marked)
    with tf.name_scope("restore_bytes"):
        words = tf.cond(
            tf.reduce_any(invalid),
            lambda: _restore_bytes(words, word_piece, pieces, invalid),
            lambda: words,
        )
    return words, tf.gather(piece_word_splits, piece_splits)


def _valid_utf8(text):
    """`text` with each ill-formed UTF-8 sequence replaced by U+FFFD, and where that changed it."""
    proxy = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER
    )
    return proxy, tf.not_equal(proxy, text)


def _restore_bytes(words, word_piece, pieces, invalid):
    """Give the words of pieces that were not valid UTF-8 their original bytes back.

    The words were cut, in order and without gaps, from the pieces with each ill-formed
    sequence replaced by U+FFFD; a word's characters are the same characters of the original
    piece, so its original bytes run from the byte offset of its first character to that of
    the character after its last.

    Args:
        words: string (N,). Cut from the valid UTF-8 form of `pieces`.
        word_piece: int32 (N,). The piece of each word, ascending.
        pieces: string (P,). The original bytes.
        invalid: bool (P,). The pieces that are not valid UTF-8 (the others pass through).
    """
    invalid_index = tf.cast(tf.where(invalid)[:, 0], tf.int32)  # (I,)
    originals = tf.gather(pieces, invalid_index)
    char_splits, _, offsets = tf.raw_ops.UnicodeDecodeWithOffsets(
        input=originals,
        input_encoding="UTF-8",
        errors="replace",
        replacement_char=REPLACEMENT_CHARACTER,
        Tsplits=tf.int64,  # The kernel needs int64 here (int32 aborts the process).
    )
    char_splits = tf.cast(char_splits, tf.int32)
    # Offsets of each piece followed by its length: piece i's entries start at splits[i] + i.
    num_chars = char_splits[1:] - char_splits[:-1]
    starts = char_splits[:-1] + tf.range(tf.size(invalid_index))
    char_position = tf.range(tf.size(offsets)) + row_ids(char_splits, tf.size(offsets))
    bounds = tf.dynamic_stitch(
        [char_position, starts + num_chars],
        [tf.cast(offsets, tf.int32), tf.strings.length(originals)],
    )
    # The words of those pieces, and their first character within the piece.
    rank_of_piece = tf.cumsum(tf.cast(invalid, tf.int32)) - 1
    selected = tf.cast(tf.where(tf.gather(invalid, word_piece))[:, 0], tf.int32)  # (Q,)
    piece = tf.gather(rank_of_piece, tf.gather(word_piece, selected))
    length = tf.strings.length(tf.gather(words, selected), unit="UTF8_CHAR")
    before = tf.cumsum(length, exclusive=True)
    first = before - tf.gather(
        tf.math.unsorted_segment_min(before, piece, tf.size(invalid_index)), piece
    )
    base = tf.gather(starts, piece) + first
    begin = tf.gather(bounds, base)
    end = tf.gather(bounds, base + length)
    restored = tf.strings.substr(tf.gather(originals, piece), begin, end - begin)
    return tf.tensor_scatter_nd_update(words, selected[:, None], restored)


# --------------------------------------------------------------------------------------------
# Merges.


def _shift_right(values, fill):
    """`values` moved one place right: out[i] = values[i - 1], out[0] = fill."""
    return tf.concat([[fill], values], axis=0)[: tf.size(values)]


def _scatter_true(indices, size):
    """A bool (size,) tensor, true at `indices` (int32 (C,))."""
    return tf.scatter_nd(indices[:, None], tf.ones_like(indices, tf.bool), [size])


def merge_words(words, byte_ids, pair_ranks, merged_ids, vocabulary_size):
    """Byte-level BPE of a flat batch of words, exactly as Hugging Face `tokenizers`.

    All words advance together in a `tf.while_loop`. The loop keeps, for each symbol, the rank
    of the pair it starts (`INF_RANK` at a word's end), and looks up only the pairs a step
    creates. In a step, each word merges its lowest-rank pair: every occurrence at once,
    except that of overlapping ones (`"a a a"`) only the first merges now and the next in a
    later step, as `tokenizers` orders them; and if one of the pairs those merges create ranks
    lower, `tokenizers` would merge that pair before the next occurrence, so the word merges
    only its leftmost occurrence. A word with no pair left leaves the loop, so each step either
    merges in every word or drops it: at most as many steps as bytes.

    Args:
        words: string tensor (M,) of non-empty words (bytes).
        byte_ids: int32 tensor (256,). The id of each byte's symbol.
        pair_ranks: `tf.lookup` table from `left * vocabulary_size + right` (int64) to the
            merge's rank (int32), `INF_RANK` for pairs that do not merge.
        merged_ids: int32 tensor (R,). The id of the token each rank makes.
        vocabulary_size: int.

    Returns:
        A tuple `(ids, counts)`: int32 (T,), the ids of all words in order, and int32 (M,), the
        number of ids of each word.
    """
    num_words = tf.size(words)
    char_splits, codes = tf.raw_ops.UnicodeDecode(
        input=words, input_encoding="ISO-8859-1", errors="replace", Tsplits=tf.int32
    )  # Latin-1: one code point per byte, equal to the byte.
    symbols = tf.gather(byte_ids, codes)  # (K,)
    # The word of each symbol (RaggedTensorToSparse is cheaper than a cumulative sum here).
    indices, _, _ = tf.raw_ops.RaggedTensorToSparse(
        rt_nested_splits=[char_splits], rt_dense_values=codes
    )
    word = tf.cast(indices[:, 0], tf.int32)  # (K,)

    def rank_of(left, right):
        keys = tf.cast(left, tf.int64) * vocabulary_size + tf.cast(right, tf.int64)
        return pair_ranks.lookup(keys)

    same = tf.equal(word[:-1], word[1:])
    rank = tf.concat(
        [tf.where(same, rank_of(symbols[:-1], symbols[1:]), INF_RANK), [INF_RANK]], axis=0
    )  # (K,): the rank of the pair (k, k + 1).

    def step(i, symbols, word, rank, out_symbols, out_words):
        n = tf.size(symbols)
        lowest = tf.gather(tf.math.unsorted_segment_min(rank, word, num_words), word)  # (n,)
        # Words without a pair to merge are done: their symbols leave the loop.
        done = tf.equal(lowest, INF_RANK)
        is_lowest = tf.equal(rank, lowest) & ~done
        # Overlapping occurrences ("a a a") merge left to right: of a run of consecutive
        # candidates only the first merges in this step (the next one no longer exists, and
        # the rest merge in the steps after, as tokenizers would merge them).
        chosen = is_lowest & ~_shift_right(is_lowest, False)
        # The chosen merges (C,) and the pairs they create with their neighbours: on the left
        # (symbol p - 1, or the merge at p - 2), on the right (symbol p + 2, as it is when
        # tokenizers makes the merge at p).
        at = tf.cast(tf.where(chosen)[:, 0], tf.int32)  # (C,)
        at_word = tf.gather(word, at)
        at_rank = tf.gather(rank, at)
        merged = tf.gather(merged_ids, at_rank)
        before = tf.maximum(at - 1, 0)
        after = tf.minimum(at + 2, n - 1)
        has_left = (at >= 1) & tf.equal(tf.gather(word, before), at_word)
        has_right = (at + 2 < n) & tf.equal(tf.gather(word, after), at_word)
        merged_before = (at >= 2) & tf.gather(chosen, tf.maximum(at - 2, 0))
        left_symbol = tf.where(merged_before, merged, tf.gather(symbols, before))
        left_rank = tf.where(has_left, rank_of(left_symbol, merged), INF_RANK)
        right_rank = tf.where(has_right, rank_of(merged, tf.gather(symbols, after)), INF_RANK)
        unsafe = (left_rank < at_rank) | (right_rank < at_rank)
        word_unsafe = tf.math.unsorted_segment_max(tf.cast(unsafe, tf.int32), at_word, num_words)
        leftmost = tf.equal(
            at, tf.gather(tf.math.unsorted_segment_min(at, at_word, num_words), at_word)
        )
        kept = tf.cast(
            tf.where(tf.equal(tf.gather(word_unsafe, at_word), 0) | leftmost)[:, 0], tf.int32
        )
        at = tf.gather(at, kept)
        merged = tf.gather(merged, kept)
        has_left = tf.gather(has_left & ~merged_before, kept)
        has_right = tf.gather(has_right, kept)
        left_rank = tf.gather(left_rank, kept)
        right_rank = tf.gather(right_rank, kept)
        chosen = _scatter_true(at, n)  # (n,)
        # Two adjacent merges of the same pair make the pair (merged, merged).
        merged_after = has_right & tf.gather(chosen, tf.minimum(at + 2, n - 1))
        right_rank = tf.where(merged_after, rank_of(merged, merged), right_rank)
        finished = tf.where(done)[:, 0]
        out_symbols = out_symbols.write(i, tf.gather(symbols, finished))
        out_words = out_words.write(i, tf.gather(word, finished))
        # Write the merged symbols and the ranks of the pairs they start or end, then drop
        # the symbols merged into their left neighbour and the finished words.
        symbols = tf.tensor_scatter_nd_update(symbols, at[:, None], merged)
        rank = tf.tensor_scatter_nd_update(
            rank,
            tf.concat([at, tf.boolean_mask(at - 1, has_left)], axis=0)[:, None],
            tf.concat([right_rank, tf.boolean_mask(left_rank, has_left)], axis=0),
        )
        keep = tf.where(~_shift_right(chosen, False) & ~done)[:, 0]
        return (
            i + 1,
            tf.gather(symbols, keep),
            tf.gather(word, keep),
            tf.gather(rank, keep),
            out_symbols,
            out_words,
        )

    def arrays():
        return tf.TensorArray(tf.int32, size=0, dynamic_size=True, infer_shape=False)

    vector = tf.TensorShape([None])
    _, _, _, _, out_symbols, out_words = tf.while_loop(
        lambda i, symbols, *_: tf.size(symbols) > 0,
        step,
        (tf.constant(0), symbols, word, rank, arrays(), arrays()),
        shape_invariants=(tf.TensorShape([]), vector, vector, vector, None, None),
        maximum_iterations=tf.size(codes) + 1,
    )
    ids = out_symbols.concat()
    word_of_id = out_words.concat()
    order = tf.argsort(word_of_id, stable=True)
    counts = tf.raw_ops.DenseBincount(
        input=word_of_id, size=num_words, weights=tf.zeros([0], tf.int32)
    )
    return tf.gather(ids, order), counts
