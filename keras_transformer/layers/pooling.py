"""One vocabulary for turning token vectors into one sentence vector.

Used by `BertClassifier`, the `embed` export and the sentence-transformers import, so that a
name means the same everywhere:

- `"cls"`: the raw vector of the first token (`[CLS]`), as the backbone outputs it;
- `"pooler"`: BERT's pooler, `tanh(W @ cls + b)` (the backbone's `pooled_output`);
- `"mean"`: the mean of the token vectors over the real tokens (`masked_mean`).
"""

from keras import ops

POOLINGS = ("cls", "pooler", "mean")


def check_pooling(pooling, allowed=POOLINGS):
    """Raises a one-line `ValueError` unless `pooling` is one of `allowed`."""
    if pooling not in allowed:
        raise ValueError(
            f"`pooling` must be one of {allowed} ('cls': the raw [CLS] vector, 'pooler': "
            f"BERT's tanh pooler, 'mean': the mean over real tokens). Received: {pooling!r}"
        )
    return pooling


def masked_mean(sequence, padding_mask):
    """Mean of (B, T, H) vectors over the real tokens of a (B, T) padding mask -> (B, H).

    Computed in the dtype of `sequence` (cast it first for float32). A row with no real token
    gives zeros.
    """
    mask = ops.cast(ops.expand_dims(padding_mask, -1), sequence.dtype)  # (B, T, 1)
    total = ops.sum(sequence * mask, axis=1)
    count = ops.maximum(ops.sum(mask, axis=1), ops.cast(1.0, sequence.dtype))
    return total / count


def pool(backbone_outputs, padding_mask, pooling):
    """The sentence vector a pooling name stands for, from a BERT-style backbone's outputs.

    Args:
        backbone_outputs: dict with `"sequence_output"` (B, T, H) and, for `"pooler"`,
            `"pooled_output"` (B, H).
        padding_mask: (B, T), true (or 1) at real tokens.
        pooling: one of `POOLINGS`.

    Returns:
        (B, H), in the backbone's output dtype.
    """
    check_pooling(pooling)
    if pooling == "pooler":
        return backbone_outputs["pooled_output"]
    sequence = backbone_outputs["sequence_output"]
    if pooling == "cls":
        return sequence[:, 0, :]
    return masked_mean(sequence, padding_mask)
