"""A large, varied, seeded sample of strings for comparing tokenizers, and a vocabulary for it."""

import random
import unicodedata

WORDS = [
    "the",
    "a",
    "an",
    "movie",
    "film",
    "was",
    "is",
    "great",
    "terrible",
    "boring",
    "fun",
    "plot",
    "actors",
    "director",
    "scene",
    "story",
    "unbelievable",
    "unaffable",
    "running",
    "jumped",
    "quickly",
    "beautifully",
    "heart-warming",
    "don't",
    "it's",
    "Schwarzenegger",
    "Tolkien",
    "21st",
    "century",
    "1990s",
    "3D",
    "sci-fi",
]
PUNCTUATION = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + [
    "…",
    "—",
    "–",
    "“",
    "”",
    "’",
    "¿",
    "¡",
    "«",
    "»",
    "·",
]
ACCENTED = [
    "café",
    "naïve",
    "résumé",
    "Ångström",
    "Øresund",
    "façade",
    "jalapeño",
    "Zoë",
    "Crème",
    "brûlée",
    "São",
    "Paulo",
    "Dvořák",
    "Łódź",
    "Straße",
    "İstanbul",
    "ǅemal",
    "Ǆ",
    "ﬁlm",
    "ﬂow",
    "Ｆｕｌｌｗｉｄｔｈ",
    "①②",
    "½",
    "™",
    "ℌ",
    "㎒",
]
COMBINING = [
    "e\u0301",
    "a\u0308",
    "n\u0303",
    "q\u0307\u0323",
    "o\u031b\u0301",
    "\u0301",
    "u\u0308\u0304",
]
SCRIPTS = [
    "Привет",
    "мир",
    "Ελληνικά",
    "ΣΊΣΥΦΟΣ",
    "עברית",
    "العربية",
    "हिन्दी",
    "தமிழ்",
    "ไทย",
    "한국어",
    "조선말",
    "ﾊﾝｶｸ",
    "日本語",
    "中文字",
    "漢字",
    "カタカナ",
    "ひらがな",
    "ℵ",
]
EMOJI = [
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "❤\ufe0f",
    "🇫🇷",
    "🙂🙃",
    "⭐",
    "\U0001f9d1\u200d\U0001f4bb",
]
DIGITS = ["0", "42", "3.14", "1,000,000", "2024-01-01", "٣٤", "१२३", "１２３"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\x0b", "\x0c"]
# NUL is left out: keras-hub (tensorflow-text) drops everything after a NUL, we treat it as
# whitespace (see test_wordpiece.py).
CONTROLS = ["\x07", "\x1f", "\x7f", "\x85", "\u00ad", "\u200d", "\ufeff", "\u2066"]


def _long_word(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return "a" * rng.choice([99, 100, 101, 150])
    if kind == 1:
        return "é" * rng.choice([49, 50, 51])
    if kind == 2:
        return "".join(rng.choice("abcdefghij") for _ in range(rng.randrange(20, 60)))
    return "supercalifragilisticexpialidocious" * rng.randrange(1, 4)


def varied_strings(count=3000, seed=0):
    """Return `count` seeded strings mixing every case the tokenizers must agree on.

    Includes empty and whitespace-only strings, punctuation, accents (precomposed and
    combining), ligatures, full-width forms, many scripts, emoji with joiners and modifiers,
    digits, control and format characters, and words near and past 100 bytes.
    """
    rng = random.Random(seed)
    pools = [WORDS] * 6 + [PUNCTUATION] * 2 + [ACCENTED, COMBINING, SCRIPTS, EMOJI, DIGITS]
    strings = ["", " ", "   ", "\t\n", "\u3000", "\u00a0", "\u200b", "a", "A.", "..."]
    while len(strings) < count:
        pieces = []
        for _ in range(rng.randrange(0, 14)):
            roll = rng.random()
            if roll < 0.03:
                pieces.append(_long_word(rng))
            elif roll < 0.06:
                pieces.append(rng.choice(CONTROLS))
            else:
                token = rng.choice(rng.choice(pools))
                if rng.random() < 0.2:
                    token = token.upper() if rng.random() < 0.5 else token.title()
                pieces.append(token)
            pieces.append(rng.choice(SPACES) if rng.random() < 0.3 else " ")
        if rng.random() < 0.3:
            pieces = pieces[:-1]  # Sometimes glue the last piece to its neighbours.
        text = "".join(pieces) if rng.random() < 0.8 else "".join(pieces).replace(" ", "")
        strings.append(text)
    return strings


def sample_vocabulary(strings, seed=0):
    """A WordPiece vocabulary that covers the sample partly, so every code path runs.

    Whole words, their prefixes and `##` suffixes, and most single characters (some are left
    out on purpose so that some words cannot be covered and become `[UNK]`).
    """
    rng = random.Random(seed)
    words = set()
    for text in strings:
        for word in unicodedata.normalize("NFKC", text).lower().split():
            words.add(word)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = set(vocab)

    def add(token):
        printable = all(unicodedata.category(c)[0] not in "CZ" for c in token)
        if token and printable and token not in seen:
            seen.add(token)
            vocab.append(token)

    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    for char in chars:
        if rng.random() < 0.9:
            add(char)
        if rng.random() < 0.85:
            add("##" + char)
    for word in sorted(words):
        roll = rng.random()
        if roll < 0.4:
            add(word)
        elif roll < 0.7 and len(word) > 2:
            cut = rng.randrange(1, len(word))
            add(word[:cut])
            add("##" + word[cut:])
        elif len(word) > 3:
            add("##" + word[rng.randrange(1, len(word)) :])
    add("#")
    return vocab
