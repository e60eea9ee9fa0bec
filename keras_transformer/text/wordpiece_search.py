"""Greedy longest-match-first WordPiece over a batch of words, in core TensorFlow ops.

The layer in `wordpiece.py` looks whole words up first; this module splits the words that missed.
It runs no loop per piece. Instead:

1. A prefix table (`PiecePrefixTable`) maps every prefix of every piece to the longest piece that
   is a prefix of it. Because the set of keys is prefix-closed, "is this candidate a key" is
   monotone in the candidate's length, so a binary search finds, at every character position of
   every word at once, the longest piece starting there: about log2(longest piece) batched
   lookups.
2. Pointer doubling then follows the greedy chain (piece start -> next piece start) from each
   word's first character: after k rounds the first 2**k piece starts of every word are marked.

Every op works on the whole batch, so the graph stays small (op dispatch, not string work, is
what costs most inside `tf.data`).
"""

import tensorflow as tf

# Values in the prefix table: `id * 256 + length in characters` of the longest piece that is a
# prefix of the key; -1 if no piece is; NOT_A_PREFIX (the default) if the key is no prefix at all.
NOT_A_PREFIX = -2
# A marker that begins word-initial keys; it cannot occur in a word (it is a split delimiter).
WORD_START_MARKER = "\x00"


class PiecePrefixTable(tf.Module):
    """The prefix table of a WordPiece vocabulary.

    Keys are all prefixes of word-initial pieces (after `WORD_START_MARKER`) and of continuation
    pieces (without their suffix indicator). Each maps to the longest piece that is a prefix of
    the key, encoded as `id * 256 + length in characters`, or to -1.

    Args:
        vocabulary: list of str. The tokens, in id order.
        suffix_indicator: str. The prefix of continuation pieces, e.g. `"##"`.
        max_chars_per_word: int. The longest word (in characters) to be split; sets the number
            of pointer-doubling rounds.
        name: str. The module name.
    """

    def __init__(self, vocabulary, suffix_indicator, max_chars_per_word, name=None):
        super().__init__(name=name)
        pieces = {}  # key -> id
        for token_id, token in enumerate(vocabulary):
            if not token.startswith(suffix_indicator):
                pieces[WORD_START_MARKER + token] = token_id
            elif len(token) > len(suffix_indicator):
                pieces[token[len(suffix_indicator) :]] = token_id
        values = {}
        for key in pieces:
            marker = 1 if key.startswith(WORD_START_MARKER) else 0
            for length in range(marker + 1, len(key) + 1):
                values[key[:length]] = -1
        for prefix in sorted(values, key=len):  # Shorter prefixes first.
            marker = 1 if prefix.startswith(WORD_START_MARKER) else 0
            own = pieces.get(prefix)
            if own is not None:
                values[prefix] = own * 256 + len(prefix) - marker
            elif len(prefix) > marker + 1:
                values[prefix] = values[prefix[:-1]]
        keys = list(values)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.string), tf.constant([values[k] for k in keys], tf.int32)
            ),
            default_value=NOT_A_PREFIX,
        )
        initial = [len(k) - 1 for k in pieces if k.startswith(WORD_START_MARKER)]
        continuation = [len(k) for k in pieces if not k.startswith(WORD_START_MARKER)]
        self.max_initial_chars = max(initial, default=0)
        self.max_continuation_chars = max(continuation, default=0)
        longest = max(self.max_initial_chars, self.max_continuation_chars)
        self.search_steps = max(1, longest.bit_length())  # ceil(log2(longest + 1))
        self.doubling_steps = max(1, max_chars_per_word.bit_length())

    def lookup(self, keys):
        return self._table.lookup(keys)


def greedy_word_pieces(words, table, oov_token_id):
    """Split words into WordPiece pieces, greedy longest-match-first, all words at once.

    Args:
        words: string tensor of shape (M,): non-empty words, valid UTF-8, each at most
            `max_chars_per_word` characters (as given to `table`).
        table: `PiecePrefixTable`.
        oov_token_id: int. The id emitted, alone, for a word that pieces cannot cover.

    Returns:
        A tuple `(ids, word_index, rank, counts)`: int32 tensors; `ids` (P,) holds the pieces of
        all words in order, `word_index` (P,) the word of each piece, `rank` (P,) its position
        in the word, `counts` (M,) the number of pieces of each word.
    """
    num_words = tf.size(words)
    num_bytes = tf.strings.length(words)  # (M,)
    # Tsplits=int32 crashes this kernel in TF 2.21 (a dtype check failure): decode in int64.
    row_splits, _, byte_starts = tf.raw_ops.UnicodeDecodeWithOffsets(
        input=words, input_encoding="UTF-8", errors="replace", Tsplits=tf.int64
    )
    row_splits = tf.cast(row_splits, tf.int32)  # (M + 1,)
    byte_starts = tf.cast(byte_starts, tf.int32)  # (F,) byte offset of each character.
    num_chars = tf.size(byte_starts)
    char_index = tf.range(num_chars)
    # The word of each character: count the word starts at or before it.
    char_word = tf.cumsum(
        tf.raw_ops.DenseBincount(
            input=row_splits[1:-1], size=num_chars, weights=tf.zeros([0], tf.int32)
        )
    )  # (F,)
    char_row_start = tf.gather(row_splits, char_word)
    word_range = tf.range(num_words)

    # Slots: each word's characters followed by one end slot; word w's end slot is
    # row_splits[w + 1] + w. Slot arrays have F + M entries.
    char_slot = char_index + char_word
    end_slot = row_splits[1:] + word_range
    slots = [char_slot, end_slot]
    # All words in one string, each after a marker: "\x00word0\x00word1...". A candidate at a
    # word's first character includes its marker, which is how word-initial pieces differ from
    # continuations in the table without any string join.
    text = tf.strings.join(
        [WORD_START_MARKER, tf.strings.reduce_join(words, separator=WORD_START_MARKER)]
    )
    word_start = tf.cumsum(num_bytes + 1, exclusive=True) + 1  # (M,) byte of each word.
    offset = tf.dynamic_stitch(
        slots, [byte_starts + tf.gather(word_start, char_word), word_start + num_bytes]
    )  # (F + M,) absolute byte offset of each slot in `text`.
    position = char_index - char_row_start
    first = tf.dynamic_stitch(slots, [tf.equal(position, 0), tf.zeros([num_words], tf.bool)])
    remaining = tf.dynamic_stitch(
        slots, [tf.gather(row_splits[1:], char_word) - char_index, tf.zeros_like(word_range)]
    )  # Characters from the slot to the end of its word.
    slot_word = tf.dynamic_stitch(slots, [char_word, word_range])
    slot_index = tf.range(num_chars + num_words)
    candidate_start = offset - tf.cast(first, tf.int32)

    # Binary search, one bit at a time from the highest: `length` is the longest candidate found
    # to be a key so far (0 trivially); a probe past `cap` is clamped to `cap`.
    cap = tf.minimum(
        remaining,
        tf.where(first, table.max_initial_chars, table.max_continuation_chars),
    )
    length = tf.zeros_like(slot_index)
    value = tf.fill(tf.shape(slot_index), -1)
    for bit in reversed(range(table.search_steps)):
        candidate = tf.minimum(length + (1 << bit), cap)
        end = tf.gather(offset, slot_index + candidate)
        found_value = table.lookup(tf.strings.substr(text, candidate_start, end - candidate_start))
        found = found_value > NOT_A_PREFIX
        length = tf.where(found, candidate, length)
        value = tf.where(found, found_value, value)
    has_piece = value >= 0
    jump = tf.where(has_piece, slot_index + tf.bitwise.bitwise_and(value, 255), slot_index)

    # Pointer doubling: `reached` gains the targets of its slots, then every jump doubles.
    reached = tf.cast(first, tf.int32)
    num_slots = tf.size(slot_index)
    for _ in range(table.doubling_steps):
        reached = tf.maximum(reached, tf.math.unsorted_segment_max(reached, jump, num_slots))
        jump = tf.gather(jump, jump)
    starts = (reached > 0) & (remaining > 0)  # The greedy piece starts.
    stuck = tf.cast(starts & ~has_piece, tf.int32)  # No piece fits: the word is unknown.
    failed = tf.math.unsorted_segment_max(stuck, slot_word, num_words) > 0
    slot_failed = tf.gather(failed, slot_word)
    emit = tf.where(slot_failed, first, starts)
    ids = tf.where(slot_failed, oov_token_id, tf.bitwise.right_shift(value, 8))
    emitted = tf.cast(tf.where(emit)[:, 0], tf.int32)
    word_index = tf.gather(slot_word, emitted)
    counts = tf.math.unsorted_segment_sum(tf.cast(emit, tf.int32), slot_word, num_words)
    rank = tf.range(tf.size(emitted)) - tf.gather(tf.cumsum(counts, exclusive=True), word_index)
    return tf.gather(ids, emitted), word_index, rank, counts
