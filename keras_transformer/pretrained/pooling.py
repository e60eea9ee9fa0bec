"""Sentence pooling as a checkpoint folder declares it (sentence-transformers layout).

A sentence-transformers folder lists its modules in `modules.json`: the Transformer, then a
`Pooling` module (its `config.json` sets `pooling_mode_*` flags), then optionally `Normalize`
(L2). `sentence_bert_config.json` holds `max_seq_length` and `do_lower_case`. A folder without
these files gets mean pooling and no normalization (what sentence-transformers itself builds
around a plain checkpoint).
"""

import dataclasses
from pathlib import Path

from keras import ops

from keras_transformer.layers.pooling import masked_mean
from keras_transformer.pretrained.checkpoint import (
    module_folder,
    read_json,
    read_modules,
    write_json,
)

# In the order sentence-transformers concatenates them.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")
CONFIG_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
}
UNSUPPORTED_KEYS = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclasses.dataclass(frozen=True)
class SentencePooling:
    """How token vectors become one sentence vector.

    Args:
        modes: tuple of str. Any of `"cls"`, `"max"`, `"mean"`, `"mean_sqrt_len"`; their
            results are concatenated in that order. Defaults to `("mean",)`.
        normalize: bool. L2-normalize the result. Defaults to `False`.
        max_sequence_length: int or None. Inputs are truncated to this many tokens
            (`[CLS]` and `[SEP]` included). `None`: the model's limit.
        lowercase_input: bool. Lower-case texts before tokenizing (sentence-transformers'
            `do_lower_case`, applied on top of the tokenizer's own). Defaults to `False`.
        source: str. Where the settings were read from, for reports.
    """

    modes: tuple = ("mean",)
    normalize: bool = False
    max_sequence_length: int | None = None
    lowercase_input: bool = False
    source: str = "default (mean pooling, no normalization)"

    def __post_init__(self):
        unknown = [mode for mode in self.modes if mode not in POOLING_MODES]
        if unknown or not self.modes:
            raise ValueError(
                f"Unknown pooling modes {unknown or list(self.modes)}; expected one or more of "
                f"{POOLING_MODES}."
            )

    def __call__(self, sequence_output, padding_mask):
        """Pool (B, T, H) token vectors over the real tokens of a (B, T) mask -> (B, H * k)."""
        x = ops.cast(sequence_output, "float32")
        mask = ops.cast(ops.expand_dims(padding_mask, -1), "float32")  # (B, T, 1)
        count = ops.maximum(ops.sum(mask, axis=1), 1e-9)  # (B, 1)
        parts = []
        for mode in POOLING_MODES:
            if mode not in self.modes:
                continue
            if mode == "cls":
                parts.append(x[:, 0, :])
            elif mode == "max":
                parts.append(ops.max(ops.where(mask > 0, x, -1e9), axis=1))
            elif mode == "mean":
                parts.append(masked_mean(x, padding_mask))
            else:
                parts.append(ops.sum(x * mask, axis=1) / ops.sqrt(count))
        pooled = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(pooled), axis=-1, keepdims=True))
            pooled = pooled / ops.maximum(norm, 1e-12)
        return pooled


def read_sentence_pooling(folder):
    """The `SentencePooling` a checkpoint folder declares (defaults if it declares none).

    Raises:
        ValueError: `modules.json` names a module or a pooling mode this package cannot apply
            (e.g. a `Dense` projection, weighted-mean or last-token pooling), or a module
            path that leaves `folder`.
    """
    folder = Path(folder)
    settings = {}
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        config = read_json(sbert)
        settings["max_sequence_length"] = config.get("max_seq_length")
        settings["lowercase_input"] = bool(config.get("do_lower_case", False))
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return SentencePooling(**settings)
    modes, normalize = ("mean",), False
    for module in read_modules(folder):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in SUPPORTED_MODULES:
            raise ValueError(
                f"{modules_file} names the module {module.get('type')!r} (folder "
                f"{module.get('path')!r}), which cannot be applied here (supported: "
                f"{SUPPORTED_MODULES}). Load with `embed` unused, or drop that module."
            )
        if kind == "Pooling":
            pooling_folder = module_folder(folder, module)
            config = read_json(pooling_folder / "config.json", "pooling")
            used = [key for key in UNSUPPORTED_KEYS if config.get(key)]
            if used:
                raise ValueError(
                    f"{pooling_folder}/config.json sets {used}; these pooling "
                    f"modes are not supported (supported: {POOLING_MODES})."
                )
            modes = tuple(mode for mode in POOLING_MODES if config.get(CONFIG_KEYS[mode]))
        elif kind == "Normalize":
            normalize = True
    return SentencePooling(modes=modes, normalize=normalize, source=str(modules_file), **settings)


def write_sentence_pooling(pooling, folder, hidden_dim):
    """Write `modules.json`, `1_Pooling/config.json` (and `sentence_bert_config.json`) so
    that sentence-transformers applies the same pooling to the exported folder."""
    folder = Path(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if pooling.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    write_json(folder / "modules.json", modules)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    config = {"word_embedding_dimension": hidden_dim}
    config.update({CONFIG_KEYS[mode]: mode in pooling.modes for mode in POOLING_MODES})
    write_json(folder / "1_Pooling" / "config.json", config)
    sbert = {"do_lower_case": pooling.lowercase_input}
    if pooling.max_sequence_length:
        sbert["max_seq_length"] = pooling.max_sequence_length
    write_json(folder / "sentence_bert_config.json", sbert)
