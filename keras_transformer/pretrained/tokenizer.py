"""The tokenizer of a Hugging Face checkpoint folder as our `WordPieceTokenizer`, and back.

Reads the vocabulary from `vocab.txt` (or the WordPiece model in `tokenizer.json`) and the
normalization settings from `tokenizer_config.json` (or `tokenizer.json`'s `BertNormalizer`):
`do_lower_case`, `strip_accents` (`None` follows lower-casing, as in `transformers`),
`tokenize_chinese_chars`, and the special tokens. GPT-2's byte-level BPE is read by
`keras_transformer.pretrained.byte_pair_tokenizer` into our `BytePairTokenizer`.

Known differences from the reference BERT tokenizer, on rare inputs only: we case fold with
NFKC_Casefold (`"ß"` -> `"ss"`) where it uses `str.lower()`, and our word length limit is 100
UTF-8 bytes where its is 100 characters.
"""

import dataclasses
from pathlib import Path

from keras_transformer.pretrained.byte_pair_tokenizer import load_byte_pair_tokenizer
from keras_transformer.pretrained.checkpoint import read_json, write_json
from keras_transformer.text.vocabulary import load_vocabulary, validate_vocabulary
from keras_transformer.text.wordpiece import WordPieceTokenizer

SPECIAL_TOKEN_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The ids of the special tokens that frame and pad a BERT input.

    Args:
        cls_id: int. `[CLS]`, first in every sequence.
        sep_id: int. `[SEP]`, after every segment.
        pad_id: int. `[PAD]`, fills the batch to a common length.
        unk_id: int. `[UNK]`.
        mask_id: int or None. `[MASK]`.
    """

    cls_id: int
    sep_id: int
    pad_id: int
    unk_id: int
    mask_id: int | None = None


def make_tokenizer(vocabulary, lowercase=True, strip_accents=None, split_on_cjk=True, **kwargs):
    """Build our `WordPieceTokenizer` with Hugging Face's BERT settings.

    The one place where `.tokenizer` objects are made: keep it so, so that a change of the
    tokenizer class touches one function.

    Args:
        vocabulary: list of str. Tokens in id order.
        lowercase: bool. `do_lower_case`.
        strip_accents: bool or None. `None` strips accents iff `lowercase` (as `transformers`).
        split_on_cjk: bool. `tokenize_chinese_chars`.
        **kwargs: more `WordPieceTokenizer` arguments (`oov_token`, ...).
    """
    if strip_accents is None:
        strip_accents = lowercase
    return WordPieceTokenizer(
        vocabulary,
        lowercase=bool(lowercase),
        strip_accents=bool(strip_accents),
        split_on_cjk=bool(split_on_cjk),
        **kwargs,
    )


def _token_name(value):
    """A special token entry of tokenizer_config.json: a string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def load_tokenizer(folder, model_type):
    """Our tokenizer and special token ids for a checkpoint folder.

    Args:
        folder: str or Path. The folder with `vocab.txt` or `tokenizer.json` (GPT-2:
            `vocab.json` + `merges.txt` or `tokenizer.json`).
        model_type: str. `config.json`'s `model_type`.

    Returns:
        `(tokenizer, special_tokens)`: a `WordPieceTokenizer` and its `SpecialTokens`; for
        GPT-2, a `BytePairTokenizer` (see `load_byte_pair_tokenizer`) and None. `(None, None)`
        for folders without the tokenizer files.
    """
    if model_type == "gpt2":
        return load_byte_pair_tokenizer(folder), None
    folder = Path(folder)
    settings = {}
    if (folder / "tokenizer_config.json").is_file():
        settings = read_json(folder / "tokenizer_config.json")
    special = dict(DEFAULT_SPECIAL_TOKENS)
    if (folder / "special_tokens_map.json").is_file():
        for key, value in read_json(folder / "special_tokens_map.json").items():
            if key in special:
                special[key] = _token_name(value)
    for key in SPECIAL_TOKEN_KEYS:
        if settings.get(key):
            special[key] = _token_name(settings[key])

    fast = read_json(folder / "tokenizer.json") if (folder / "tokenizer.json").is_file() else {}
    normalizer = fast.get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        normalizer = {}
    lowercase = settings.get("do_lower_case", normalizer.get("lowercase", True))
    strip_accents = settings.get("strip_accents", normalizer.get("strip_accents"))
    split_on_cjk = settings.get(
        "tokenize_chinese_chars", normalizer.get("handle_chinese_chars", True)
    )

    unk = special["unk_token"]
    if (folder / "vocab.txt").is_file():
        vocabulary = load_vocabulary(folder / "vocab.txt", required_tokens=(unk,))
    elif fast.get("model", {}).get("type") == "WordPiece":
        table = fast["model"]["vocab"]
        vocabulary = validate_vocabulary(
            sorted(table, key=table.__getitem__), required_tokens=(unk,)
        )
    else:  # A folder with the model alone: usable with token ids.
        return None, None
    tokenizer = make_tokenizer(
        vocabulary,
        lowercase=lowercase,
        strip_accents=strip_accents,
        split_on_cjk=split_on_cjk,
        oov_token=unk,
    )
    index = {token: i for i, token in enumerate(vocabulary)}
    missing = [
        special[k] for k in ("cls_token", "sep_token", "pad_token") if special[k] not in index
    ]
    if missing:
        raise ValueError(
            f"The vocabulary in {folder} lacks the special token(s) {missing} named by its "
            "tokenizer files; an encoder input cannot be framed without them."
        )
    ids = SpecialTokens(
        cls_id=index[special["cls_token"]],
        sep_id=index[special["sep_token"]],
        pad_id=index[special["pad_token"]],
        unk_id=index[unk],
        mask_id=index.get(special["mask_token"]),
    )
    return tokenizer, ids


def special_tokens_of(tokenizer):
    """`SpecialTokens` for one of our tokenizers with BERT's special token names."""
    vocabulary = tokenizer.get_vocabulary()
    index = {token: i for i, token in enumerate(vocabulary)}
    missing = [t for t in ("[CLS]", "[SEP]", "[PAD]") if t not in index]
    if missing:
        raise ValueError(
            f"The tokenizer's vocabulary lacks {missing}; BERT inputs need [CLS], [SEP] and [PAD]."
        )
    return SpecialTokens(
        cls_id=index["[CLS]"],
        sep_id=index["[SEP]"],
        pad_id=index["[PAD]"],
        unk_id=index[tokenizer.oov_token],
        mask_id=index.get("[MASK]"),
    )


def save_tokenizer(tokenizer, folder, max_length, special=None):
    """Write `vocab.txt`, `tokenizer_config.json`, `special_tokens_map.json` and a WordPiece
    `tokenizer.json`, the files `transformers.AutoTokenizer` loads a BERT tokenizer from.

    Args:
        tokenizer: our `WordPieceTokenizer`.
        folder: str or Path. An existing folder.
        max_length: int. `model_max_length`, the model's longest input.
        special: `SpecialTokens` or None. Defaults to BERT's names looked up in the vocabulary.
    """
    folder = Path(folder)
    vocabulary = tokenizer.get_vocabulary()
    special = special or special_tokens_of(tokenizer)
    names = {
        "pad_token": vocabulary[special.pad_id],
        "unk_token": tokenizer.oov_token,
        "cls_token": vocabulary[special.cls_id],
        "sep_token": vocabulary[special.sep_id],
    }
    if special.mask_id is not None:
        names["mask_token"] = vocabulary[special.mask_id]
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocabulary), encoding="utf-8")
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": tokenizer.lowercase,
        "strip_accents": tokenizer.strip_accents,
        "tokenize_chinese_chars": tokenizer.split_on_cjk,
        "model_max_length": max_length,
        **names,
    }
    write_json(folder / "tokenizer_config.json", config)
    write_json(folder / "special_tokens_map.json", names)
    write_json(folder / "tokenizer.json", tokenizer_json(tokenizer, names, special))


def tokenizer_json(tokenizer, names, special):
    """The `tokenizers` library's JSON for our WordPiece settings (BertNormalizer,
    BertPreTokenizer, WordPiece, `[CLS] A [SEP] (B [SEP])` post-processing)."""
    vocabulary = tokenizer.get_vocabulary()
    cls_token, sep_token = names["cls_token"], names["sep_token"]
    added = sorted({vocabulary.index(token) for token in names.values()})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": vocabulary[i],
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i in added
        ],
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": tokenizer.split_on_cjk,
            "strip_accents": tokenizer.strip_accents,
            "lowercase": tokenizer.lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": cls_token, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": sep_token, "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": cls_token, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": sep_token, "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": sep_token, "type_id": 1}},
            ],
            "special_tokens": {
                cls_token: {"id": cls_token, "ids": [special.cls_id], "tokens": [cls_token]},
                sep_token: {"id": sep_token, "ids": [special.sep_id], "tokens": [sep_token]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": tokenizer.suffix_indicator, "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": tokenizer.oov_token,
            "continuing_subword_prefix": tokenizer.suffix_indicator,
            "max_input_chars_per_word": tokenizer.max_bytes_per_word,
            "vocab": {token: i for i, token in enumerate(vocabulary)},
        },
    }
