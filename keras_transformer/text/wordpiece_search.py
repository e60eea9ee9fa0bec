"""Greedy longest-match-first WordPiece over a batch of words, in core TensorFlow ops.

The layer in `wordpiece.py` looks whole words up first; this module splits the words that missed.
It runs no loop per piece. Instead:

1. All words sit in one string, each after a marker byte: `"\\x00word0\\x00word1..."`. Every byte
   of a word is a slot, and so is the end of each word (the next marker): slot s is byte s + 1.
   A candidate at a word's first byte includes its marker, which is how word-initial pieces
   differ from continuations in the table, without any string join.
2. A prefix table (`PiecePrefixTable`) maps every byte prefix of every piece to the longest piece
   that is a prefix of it. Because the set of keys is prefix-closed, "is this candidate a key" is
   monotone in the candidate's length, so a binary search finds, at every slot of every word at
   once, the longest piece starting there: about log2(longest piece in bytes) batched lookups.
   Candidates are cut in bytes, not characters, so no op decodes UTF-8: a slot inside a
   character is never reached by the chain below, and a piece, being whole characters, ends on
   a character boundary.
3. Pointer doubling then follows the greedy chain (piece start -> next piece start) from each
   word's first byte: after k rounds the first 2**k piece starts of every word are marked.

Every op works on the whole batch, so the graph stays small: inside `tf.data`, each op costs a
few microseconds of dispatch whatever its size.
"""

import tensorflow as tf

from keras_transformer.text.string_ops import row_ids

# Values in the prefix table: `id << 32 | length in bytes` of the longest piece that is a prefix
# of the key; -1 if no piece is; NOT_A_PREFIX (the default) if the key is no prefix at all.
NOT_A_PREFIX = -2
_LENGTH_BITS = 32
# A marker that begins word-initial keys; it cannot occur in a word (it is a split delimiter).
WORD_START_MARKER = "\x00"


class PiecePrefixTable(tf.Module):
    """The byte-prefix table of a WordPiece vocabulary.

    Keys are all byte prefixes of word-initial pieces (after `WORD_START_MARKER`) and of
    continuation pieces (without their suffix indicator). Each maps to the longest piece that is
    a prefix of the key, encoded as `id << 32 | length in bytes`, or to -1.

    Args:
        vocabulary: list of str. The tokens, in id order.
        suffix_indicator: str. The prefix of continuation pieces, e.g. `"##"`.
        max_bytes_per_word: int. The longest word (in UTF-8 bytes) to be split: longer pieces
            can never match and are left out; it also sets the number of pointer-doubling
            rounds.
        name: str. The module name.
    """

    def __init__(self, vocabulary, suffix_indicator, max_bytes_per_word, name=None):
        super().__init__(name=name)
        marker = WORD_START_MARKER.encode()
        pieces = {}  # UTF-8 key -> id; a later duplicate wins.
        for token_id, token in enumerate(vocabulary):
            if not token.startswith(suffix_indicator):
                key = marker + token.encode()
            elif len(token) > len(suffix_indicator):
                key = token[len(suffix_indicator) :].encode()
            else:
                continue
            if len(key) - key.startswith(marker) <= max_bytes_per_word:
                pieces[key] = token_id
        values = {}
        for key in pieces:
            skip = len(marker) if key.startswith(marker) else 0
            for length in range(skip + 1, len(key) + 1):
                values[key[:length]] = -1
        for prefix in sorted(values, key=len):  # Shorter prefixes first.
            skip = len(marker) if prefix.startswith(marker) else 0
            own = pieces.get(prefix)
            if own is not None:
                values[prefix] = (own << _LENGTH_BITS) | (len(prefix) - skip)
            elif len(prefix) > skip + 1:
                values[prefix] = values[prefix[:-1]]
        # The bare marker is never looked up (candidates hold a byte of a word): it only keeps
        # the table non-empty.
        keys = list(values) or [marker]
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.string),
                tf.constant([values.get(k, NOT_A_PREFIX) for k in keys], tf.int64),
            ),
            default_value=NOT_A_PREFIX,
        )
        initial = [len(k) - len(marker) for k in pieces if k.startswith(marker)]
        continuation = [len(k) for k in pieces if not k.startswith(marker)]
        self.max_initial_bytes = max(initial, default=0)
        self.max_continuation_bytes = max(continuation, default=0)
        longest = max(self.max_initial_bytes, self.max_continuation_bytes)
        self.search_steps = max(1, longest.bit_length())  # ceil(log2(longest + 1))
        # A word of n bytes has at most n pieces, so n + 1 chain slots: 2**rounds covers them.
        self.doubling_steps = max(1, max_bytes_per_word.bit_length())

    def lookup(self, keys):
        return self._table.lookup(keys)


def greedy_word_pieces(words, table, oov_token_id):
    """Split words into WordPiece pieces, greedy longest-match-first, all words at once.

    Args:
        words: string tensor of shape (M,): non-empty words, valid UTF-8, each at most
            `max_bytes_per_word` bytes (as given to `table`).
        table: `PiecePrefixTable`.
        oov_token_id: int. The id emitted, alone, for a word that pieces cannot cover.

    Returns:
        A tuple `(ids, word_index, rank, counts)`: int32 tensors; `ids` (P,) holds the pieces of
        all words in order, `word_index` (P,) the word of each piece, `rank` (P,) its position
        in the word, `counts` (M,) the number of pieces of each word.
    """
    num_words = tf.size(words)
    num_bytes = tf.strings.length(words)  # (M,)
    text = tf.strings.join(
        [WORD_START_MARKER, tf.strings.reduce_join(words, separator=WORD_START_MARKER)]
    )
    word_splits = tf.concat([[0], tf.cumsum(num_bytes + 1)], axis=0)  # (M + 1,) slots per word.
    num_slots = word_splits[-1]
    slot_index = tf.range(num_slots)  # (S,)
    slot_word = row_ids(word_splits, num_slots)
    position = slot_index - tf.gather(word_splits, slot_word)  # Byte within the word.
    remaining = tf.gather(num_bytes, slot_word) - position  # 0 at end slots.
    first = tf.equal(position, 0)
    first_int = tf.cast(first, tf.int32)
    candidate_start = slot_index + 1 - first_int  # In `text`; the marker for a first byte.

    # Binary search, one bit at a time from the highest: `length` is the longest candidate found
    # to be a key so far (0 trivially); a probe past `cap` is clamped to `cap`.
    cap = tf.minimum(
        remaining, tf.where(first, table.max_initial_bytes, table.max_continuation_bytes)
    )
    length = tf.zeros_like(slot_index)
    value = tf.fill(tf.shape(slot_index), tf.constant(-1, tf.int64))
    for bit in reversed(range(table.search_steps)):
        candidate = tf.minimum(length + (1 << bit), cap)
        found_value = table.lookup(tf.strings.substr(text, candidate_start, candidate + first_int))
        found = found_value > NOT_A_PREFIX
        length = tf.where(found, candidate, length)
        value = tf.where(found, found_value, value)
    has_piece = value >= 0
    piece_bytes = tf.cast(tf.bitwise.bitwise_and(value, (1 << _LENGTH_BITS) - 1), tf.int32)
    jump = tf.where(has_piece, slot_index + piece_bytes, slot_index)

    # Pointer doubling: `reached` gains the targets of its slots, then every jump doubles.
    reached = first_int
    for _ in range(table.doubling_steps):
        reached = tf.maximum(reached, tf.math.unsorted_segment_max(reached, jump, num_slots))
        jump = tf.gather(jump, jump)
    starts = (reached > 0) & (remaining > 0)  # The greedy piece starts.
    stuck = tf.cast(starts & ~has_piece, tf.int32)  # No piece fits: the word is unknown.
    failed = tf.math.unsorted_segment_max(stuck, slot_word, num_words) > 0
    slot_failed = tf.gather(failed, slot_word)
    emit = tf.where(slot_failed, first, starts)
    piece_id = tf.cast(tf.bitwise.right_shift(value, _LENGTH_BITS), tf.int32)
    ids = tf.where(slot_failed, oov_token_id, piece_id)
    emitted = tf.cast(tf.where(emit)[:, 0], tf.int32)
    word_index = tf.gather(slot_word, emitted)
    counts = tf.math.unsorted_segment_sum(tf.cast(emit, tf.int32), slot_word, num_words)
    rank = tf.range(tf.size(emitted)) - tf.gather(tf.cumsum(counts, exclusive=True), word_index)
    return tf.gather(ids, emitted), word_index, rank, counts
