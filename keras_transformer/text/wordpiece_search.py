"""Greedy longest-match-first WordPiece over a batch of words, in core TensorFlow ops.

The layer in `wordpiece.py` looks whole words up first; this module splits the words that missed.
It runs no loop per piece, cuts no substrings and hashes no strings. Instead:

1. All words sit in one string, each after a NUL byte: `"\\x00word0\\x00word1..."`, decoded as
   ISO-8859-1 (the identity on bytes) into one int tensor. Every byte of a word is a slot, and
   so is the end of each word (the next NUL): slot s is byte s + 1.
2. A piece's key is its bytes, after a NUL if it is word-initial (so word-initial pieces and
   continuations differ), and every byte prefix of a key gets a number, shorter first. A prefix
   of up to 7 bytes is looked up as its bytes packed little-endian into an int64; a longer one
   as the id of its first 7 (then 7 + b, 7 + 2b, ...) bytes and its next up to b bytes packed,
   b as large as the ids leave room for. So the lookups are exact integer ones. At every slot a
   binary search over 1 to 7 bytes (three lookups: the set of prefixes is prefix-closed, so
   "the first n bytes are a prefix" is monotone in n) finds the longest prefix starting there,
   the few slots whose prefix reaches 7 bytes look up to b bytes further at once, and so on;
   the value found gives the longest piece that starts there. A candidate running past its
   word holds the NUL byte and so is never a key.
   Candidates are cut in bytes, not characters: a slot inside a character is never reached by
   the chain below, and a piece, being whole characters, ends on a character boundary.
3. From each word's first byte the greedy chain (piece start -> next piece start) is followed
   for 16 slots, one gather of the jump table J for all words at a time: one row per word, in
   order. Only if some word has 16 pieces or more does the chain go on, by doubling (J^16,
   J^32, ...) under a `tf.cond`.

Every op works on the whole batch, so the graph stays small: inside `tf.data`, each op costs a
few microseconds of dispatch whatever its size, and an integer lookup costs less than cutting
and hashing a substring.
"""

import tensorflow as tf

# Bytes of a key packed into one int64 at the first level.
FIRST_LEVEL_BYTES = 7
# Key of a longer prefix: `1 << 62 | id of the prefix it extends << 8 * b | its next b bytes`,
# where the ids number the prefixes that end where a level ends (`level_offsets`).
_NEXT_LEVEL_BIT = 1 << 62
_MAX_PREFIXES = 1 << 22
# Looked-up values: `(number + 1) << 16 | length in bytes of the longest piece that is a prefix
# of it` (0 without one); 0: no prefix. A longer prefix has a larger number, so a larger value.
_LENGTH_BITS = 16
# Chain slots per word followed without a `tf.cond` (a power of 2).
_CHAIN_SLOTS = 16
# The byte before every word in the joined batch, and before word-initial keys. It cannot occur
# in a word (it is a split delimiter), and vocabulary tokens may not hold it.
WORD_START_MARKER = "\x00"


class PiecePrefixTable(tf.Module):
    """The byte prefixes of a WordPiece vocabulary's pieces, numbered and keyed by integers.

    Word-initial pieces are the tokens that do not start with the suffix indicator, keyed by
    `WORD_START_MARKER` and their bytes; continuation pieces the others, keyed by their bytes
    without the indicator. Every byte prefix of a key gets a number, shorter prefixes first, and
    is looked up as `(number + 1) << 16 | length`, with the length in bytes (without the marker)
    of the longest piece that is a prefix of it, whose id is `piece_ids[value >> 16]`.

    Args:
        vocabulary: list of str. The tokens, in id order; no token may hold a NUL character.
        suffix_indicator: str. The prefix of continuation pieces, e.g. `"##"`.
        max_bytes_per_word: int. The longest word (in UTF-8 bytes) to be split: longer pieces
            can never match and are left out; it also bounds the number of pieces of a word.
        name: str. The module name.
    """

    def __init__(self, vocabulary, suffix_indicator, max_bytes_per_word, name=None):
        super().__init__(name=name)
        marker = WORD_START_MARKER.encode()
        pieces = {}  # key -> (id, length in bytes); a later duplicate wins.
        for token_id, token in enumerate(vocabulary):
            initial = not token.startswith(suffix_indicator)
            data = (token if initial else token[len(suffix_indicator) :]).encode()
            if marker in data:
                raise ValueError(f"Vocabulary token {token!r} holds a NUL character.")
            if 0 < len(data) <= max_bytes_per_word:
                pieces[marker + data if initial else data] = (token_id, len(data))
        # The bare marker is no prefix: it is never looked up (it starts no continuation).
        prefixes = sorted(
            {key[:n] for key in pieces for n in range(1 + key.startswith(marker), len(key) + 1)},
            key=lambda prefix: (len(prefix), prefix),
        )
        if len(prefixes) > _MAX_PREFIXES:
            raise ValueError(f"The vocabulary has too many piece prefixes ({len(prefixes)}).")
        if max_bytes_per_word >= 1 << _LENGTH_BITS:
            raise ValueError(
                f"`max_bytes_per_word` must be below {1 << _LENGTH_BITS}. "
                f"Received: max_bytes_per_word={max_bytes_per_word}"
            )
        number = {prefix: i for i, prefix in enumerate(prefixes)}
        longest_piece = []  # (id, length) of the longest piece that is a prefix, per prefix.
        for prefix in prefixes:  # Shorter first: the longest piece of a prefix's parent is known.
            parent = number.get(prefix[:-1])
            inherited = (None, 0) if parent is None else longest_piece[parent]
            longest_piece.append(pieces.get(prefix, inherited))
        values = [((i + 1) << _LENGTH_BITS) | length for i, (_, length) in enumerate(longest_piece)]
        # `piece_ids[value >> 16]`: the id of that piece (-1 for none and for no prefix).
        self.piece_ids = tf.constant(
            [-1] + [-1 if token_id is None else token_id for token_id, _ in longest_piece],
            tf.int32,
        )
        # Level j >= 1 extends the prefixes of `level_offsets[j - 1]` bytes by up to
        # `level_bytes` more; they are numbered from `level_numbers[j - 1]` on (numbers grow
        # with length). As many bytes per level as the ids of those prefixes leave room for.
        longest = max(map(len, prefixes), default=0)
        for level_bytes in range(FIRST_LEVEL_BYTES, 0, -1):
            offsets = range(FIRST_LEVEL_BYTES, longest, level_bytes)
            ends = [prefix for prefix in prefixes if len(prefix) in offsets]
            if len(ends) < 1 << (62 - 8 * level_bytes):
                break
        self.level_bytes = level_bytes
        self.level_offsets = list(offsets)
        self.level_numbers = [
            next(i for i, prefix in enumerate(prefixes) if len(prefix) == offset)
            for offset in self.level_offsets
        ]
        end_id = {prefix: i for i, prefix in enumerate(ends)}
        # `end_ids[value >> 16]`: the id of a prefix that ends a level (-1 for the others).
        self.end_ids = tf.constant([-1] + [end_id.get(prefix, -1) for prefix in prefixes], tf.int64)
        keys = [_key(prefix, end_id, level_bytes) for prefix in prefixes] or [-1]
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.constant(values or [0], tf.int64)
            ),
            default_value=0,
        )
        self.max_initial_bytes = max(
            (n for k, (_, n) in pieces.items() if k[:1] == marker), default=0
        )
        self.max_continuation_bytes = max(
            (n for k, (_, n) in pieces.items() if k[:1] != marker), default=0
        )
        # A word of n bytes has at most n pieces, so n + 1 chain slots.
        self.chain_slots = max(_CHAIN_SLOTS, 1 << max_bytes_per_word.bit_length())

    def lookup(self, keys):
        """The values of int64 `keys` (0 where a key is no prefix)."""
        return self._table.lookup(keys)


def _key(prefix, end_id, level_bytes):
    """The int64 key of a prefix (bytes), given the ids of the prefixes that end a level."""
    if len(prefix) <= FIRST_LEVEL_BYTES:
        return int.from_bytes(prefix, "little")
    extra = (len(prefix) - FIRST_LEVEL_BYTES - 1) // level_bytes
    start = FIRST_LEVEL_BYTES + extra * level_bytes
    packed = int.from_bytes(prefix[start:], "little")
    return _NEXT_LEVEL_BIT | (end_id[prefix[:start]] << (8 * level_bytes)) | packed


def greedy_word_pieces(words, table, oov_token_id):
    """Split words into WordPiece pieces, greedy longest-match-first, all words at once.

    Args:
        words: string tensor of shape (M,): non-empty words without NUL bytes, each at most
            `max_bytes_per_word` bytes (as given to `table`).
        table: `PiecePrefixTable`.
        oov_token_id: int. The id emitted, alone, for a word that pieces cannot cover.

    Returns:
        A tuple `(ids, word_index, rank, counts)`: int32 tensors; `ids` (P,) holds the pieces of
        all words in order, `word_index` (P,) the word of each piece, `rank` (P,) its position
        in the word, `counts` (M,) the number of pieces of each word.
    """
    num_bytes = tf.strings.length(words)  # (M,)
    text = tf.strings.reduce_join(tf.strings.join([WORD_START_MARKER, words]))
    _, text_bytes = tf.raw_ops.UnicodeDecode(
        input=text, input_encoding="ISO-8859-1", errors="strict", Tsplits=tf.int32
    )  # (S,): byte s + 1 is at slot s; a word's end slot holds the next NUL (or none).
    value = _longest_prefixes(text_bytes, table)  # The longest piece at every slot.
    piece_bytes = tf.cast(tf.bitwise.bitwise_and(value, (1 << _LENGTH_BITS) - 1), tf.int32)
    jump = tf.range(tf.size(text_bytes)) + piece_bytes  # No piece: the slot jumps to itself.
    word_start = tf.cumsum(num_bytes + 1, exclusive=True)  # (M,) The slot of its first byte.
    chain = _chains(word_start, jump, table.chain_slots)  # (M, K)

    # Row i holds word i's piece starts, then its last slot repeated: the end slot if pieces
    # cover the word, else the slot where no piece fits. A start is followed by a later slot.
    moves = tf.pad(tf.not_equal(chain[:, 1:], chain[:, :-1]), [[0, 0], [0, 1]])
    failed = tf.not_equal(chain[:, -1], word_start + num_bytes)
    first_column = tf.equal(tf.range(tf.shape(chain)[1]), 0)
    emit = tf.where(failed[:, None], first_column[None, :], moves)
    emitted = tf.where(emit)  # (P, 2): word, rank.
    start_value = tf.gather(value, tf.gather_nd(chain, emitted))
    piece_id = tf.gather(table.piece_ids, tf.bitwise.right_shift(start_value, _LENGTH_BITS))
    emitted = tf.cast(emitted, tf.int32)
    word_index = emitted[:, 0]
    ids = tf.where(tf.gather(failed, word_index), oov_token_id, piece_id)
    counts = tf.reduce_sum(tf.cast(emit, tf.int32), axis=1)
    return ids, word_index, emitted[:, 1], counts


def _longest_prefixes(text_bytes, table):
    """The value of the longest key prefix at every slot (0 if none), by binary search."""
    num_slots = tf.size(text_bytes)
    # `packed[t]`: bytes t ... t + 7 little-endian, in three doublings of the width.
    packed = tf.pad(tf.cast(text_bytes, tf.int64), [[0, 9]])
    for width in (1, 2, 4):
        packed = tf.bitwise.bitwise_or(
            packed[:-width], tf.bitwise.left_shift(packed[width:], 8 * width)
        )
    # Word-initial slots look up from the NUL before them, the others from their own byte; an
    # end slot (its own byte a NUL) from nothing, which is no key.
    initial = tf.equal(text_bytes, 0)
    start = tf.range(num_slots) + 1 - tf.cast(initial, tf.int32)
    own = packed[1 : num_slots + 1]
    own = tf.where(tf.equal(tf.bitwise.bitwise_and(own, 0xFF), 0), tf.zeros_like(own), own)
    base = tf.where(initial, packed[:num_slots], own)
    mask = tf.constant((1 << 32) - 1, tf.int64)  # The first probe: 4 bytes.
    value = table.lookup(tf.bitwise.bitwise_and(base, mask))
    mask = tf.where(value > 0, mask, tf.constant(0, tf.int64))
    for bits in (16, 8):  # Then 2 bytes more or fewer, then 1.
        candidate = tf.bitwise.bitwise_or(tf.bitwise.left_shift(mask, bits), (1 << bits) - 1)
        found = table.lookup(tf.bitwise.bitwise_and(base, candidate))
        mask = tf.where(found > 0, candidate, mask)
        value = tf.maximum(value, found)
    masks = tf.constant([(1 << (8 * n)) - 1 for n in range(1, table.level_bytes + 1)], tf.int64)
    for offset, lowest in zip(table.level_offsets, table.level_numbers, strict=True):
        # Only slots whose prefix reached `offset` bytes look further, up to `level_bytes` more.
        rows = tf.where(value >= (lowest + 1) << _LENGTH_BITS)
        node = tf.gather(
            table.end_ids, tf.bitwise.right_shift(tf.gather_nd(value, rows), _LENGTH_BITS)
        )
        further = tf.gather(packed, tf.gather_nd(start, rows) + offset)
        node_bits = tf.bitwise.left_shift(node, 8 * table.level_bytes) + _NEXT_LEVEL_BIT
        keys = tf.bitwise.bitwise_or(
            tf.bitwise.bitwise_and(further[:, None], masks), node_bits[:, None]
        )
        found = tf.reduce_max(table.lookup(keys), axis=1)
        value = tf.tensor_scatter_nd_max(value, rows, found)
    return value


def _chains(word_start, jump, chain_slots):
    """The first chain slots of every word, `(M, K)`: K is 16, or `chain_slots` if needed."""
    # One small gather per chain slot (M values each) costs less than squaring J over all S.
    slots = [word_start]
    for _ in range(_CHAIN_SLOTS):
        slots.append(tf.gather(jump, slots[-1]))
    chain = tf.stack(slots[:-1], axis=1)
    if chain_slots <= _CHAIN_SLOTS:
        return chain

    def follow():  # By doubling: with J^16, each round appends the next width slots of a row.
        longer, power = chain, jump
        for _ in range(_CHAIN_SLOTS.bit_length() - 1):
            power = tf.gather(power, power)
        while longer.shape[1] < chain_slots:
            if longer.shape[1] > _CHAIN_SLOTS:
                power = tf.gather(power, power)
            longer = tf.concat([longer, tf.gather(power, longer)], axis=1)
        return longer

    return tf.cond(tf.reduce_any(tf.not_equal(slots[-1], slots[-2])), follow, lambda: chain)
