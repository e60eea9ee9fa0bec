"""Greedy longest-match-first WordPiece over a batch of words, in core TensorFlow ops.

The layer in `wordpiece.py` looks whole words up first; this module splits the words that missed.
It runs no loop per piece and no loop per candidate length. Instead:

1. All words sit in one string, each after a marker byte: `"\\x00word0\\x00word1..."`. Every byte
   of that string is a slot; the slot before a marker is the end of the word before it.
2. At every slot, every candidate length up to the longest piece is cut out and looked up in one
   `Substr` and one hash lookup over the whole batch; a segment max keeps the longest piece found
   there. Candidates are cut in bytes, not characters: a substring that starts or ends inside a
   UTF-8 character is not valid UTF-8 and so never equals a (valid UTF-8) piece, and a slot inside
   a character is never reached by the chain below. A candidate at a word's first byte includes
   its marker, which is how word-initial pieces differ from continuations in the table.
3. Pointer doubling then follows the greedy chain (piece start -> next piece start) from each
   word's first byte: after k rounds the first 2**k piece starts of every word are marked.

Every op works on the whole batch, so the graph stays small: inside `tf.data`, op dispatch costs
as much as the string work.
"""

import tensorflow as tf

from keras_transformer.text.string_ops import row_ids

# A marker that begins word-initial keys; it cannot occur in a word (it is a split delimiter).
WORD_START_MARKER = "\x00"
# Best candidate per slot, packed in one int64: `length in bytes << 32 | id`; -1: no piece.
_LENGTH_SHIFT = 32
_NO_PIECE = -1


class PieceTable(tf.Module):
    """The pieces of a WordPiece vocabulary, keyed as `greedy_word_pieces` cuts candidates.

    Word-initial pieces are keyed `WORD_START_MARKER + token`; continuation pieces (tokens that
    start with the suffix indicator and hold more than it) by the token without the indicator.
    Each maps to the token's id.

    Args:
        vocabulary: list of str. The tokens, in id order.
        suffix_indicator: str. The prefix of continuation pieces, e.g. `"##"`.
        max_bytes_per_word: int. The longest word (in UTF-8 bytes) to be split; sets the number
            of pointer-doubling rounds.
        name: str. The module name.
    """

    def __init__(self, vocabulary, suffix_indicator, max_bytes_per_word, name=None):
        super().__init__(name=name)
        pieces = {}  # key -> id; a later duplicate wins, as in the whole-word table.
        for token_id, token in enumerate(vocabulary):
            if not token.startswith(suffix_indicator):
                pieces[WORD_START_MARKER + token] = token_id
            elif len(token) > len(suffix_indicator):
                pieces[token[len(suffix_indicator) :]] = token_id
        # The bare marker is never cut (candidates hold at least one byte of a word): it only
        # keeps the table non-empty.
        keys = list(pieces) or [WORD_START_MARKER]
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.string),
                tf.constant([pieces.get(k, _NO_PIECE) for k in keys], tf.int64),
            ),
            default_value=_NO_PIECE,
        )
        marked = len(WORD_START_MARKER.encode())
        initial = [len(k.encode()) - marked for k in pieces if k.startswith(WORD_START_MARKER)]
        continuation = [len(k.encode()) for k in pieces if not k.startswith(WORD_START_MARKER)]
        # Longest pieces in bytes: no candidate is cut longer.
        self.max_initial_bytes = min(max(initial, default=0), max_bytes_per_word)
        self.max_continuation_bytes = min(max(continuation, default=0), max_bytes_per_word)
        # A word of n bytes has at most n pieces, so n + 1 chain slots: 2**rounds must cover them.
        self.doubling_steps = max(1, max_bytes_per_word.bit_length())

    def lookup(self, keys):
        return self._table.lookup(keys)


def greedy_word_pieces(words, table, oov_token_id):
    """Split words into WordPiece pieces, greedy longest-match-first, all words at once.

    Args:
        words: string tensor of shape (M,): non-empty words, valid UTF-8, each at most
            `max_bytes_per_word` bytes (as given to `table`).
        table: `PieceTable`.
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
    # Slot s is byte s + 1 of `text`: word w's bytes, then its end slot (the next marker).
    word_splits = tf.concat([[0], tf.cumsum(num_bytes + 1)], axis=0)  # (M + 1,)
    num_slots = word_splits[-1]
    slot_index = tf.range(num_slots)
    slot_word = row_ids(word_splits, num_slots)  # (S,)
    position = slot_index - tf.gather(word_splits, slot_word)  # Byte within the word.
    remaining = tf.gather(num_bytes, slot_word) - position  # 0 at end slots.
    first = tf.equal(position, 0)
    first_int = tf.cast(first, tf.int32)

    # Every candidate: slot s, length 1..cap[s] bytes.
    cap = tf.minimum(
        remaining, tf.where(first, table.max_initial_bytes, table.max_continuation_bytes)
    )
    cap_splits = tf.concat([[0], tf.cumsum(cap)], axis=0)  # (S + 1,)
    num_candidates = cap_splits[-1]
    candidate_slot = row_ids(cap_splits, num_candidates)  # (C,)
    length = tf.range(1, num_candidates + 1) - tf.gather(cap_splits, candidate_slot)
    marker = tf.gather(first_int, candidate_slot)
    found = table.lookup(tf.strings.substr(text, candidate_slot + 1 - marker, length + marker))
    score = tf.where(
        found >= 0,
        tf.bitwise.left_shift(tf.cast(length, tf.int64), _LENGTH_SHIFT) + found,
        _NO_PIECE,
    )
    # Slots without candidates (end slots) get the int64 minimum: no piece either.
    best = tf.math.unsorted_segment_max(score, candidate_slot, num_slots)  # (S,)
    has_piece = best >= 0
    piece_bytes = tf.cast(tf.bitwise.right_shift(best, _LENGTH_SHIFT), tf.int32)
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
    piece_id = tf.cast(tf.bitwise.bitwise_and(best, (1 << _LENGTH_SHIFT) - 1), tf.int32)
    ids = tf.where(slot_failed, oov_token_id, piece_id)
    emitted = tf.cast(tf.where(emit)[:, 0], tf.int32)
    word_index = tf.gather(slot_word, emitted)
    counts = tf.math.unsorted_segment_sum(tf.cast(emit, tf.int32), slot_word, num_words)
    rank = tf.range(tf.size(emitted)) - tf.gather(tf.cumsum(counts, exclusive=True), word_index)
    return tf.gather(ids, emitted), word_index, rank, counts
