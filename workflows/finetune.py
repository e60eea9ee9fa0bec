"""finetune: continue training a pretrained model, all of it or its top k blocks, at a low rate.

Starts from a classifier run (e.g. a `transfer` run: its head is kept, the seed's "add new
layers, then fine-tune") or from a base encoder (a new head is added). Unfreezes the whole
encoder (or only its top `--top-blocks` blocks) and recompiles after changing `trainable`.
"""

import dataclasses
import math
import typing

from keras_transformer.models import BertClassifier
from workflows import classify
from workflows.config import setting


@dataclasses.dataclass(frozen=True)
class Config(classify.ClassifierConfig):
    workflow: typing.ClassVar[str] = "finetune"

    learning_rate: float = setting(3e-5, "peak learning rate (AdamW); keep it low")
    top_blocks: int = setting(0, "train only the top k encoder blocks and the head (0: all)")


def set_trainable_blocks(backbone, top_blocks):
    """Makes the top `top_blocks` blocks (all if 0) and the pooler trainable, the rest frozen."""
    backbone.trainable = True
    blocks = backbone.transformer_blocks
    if top_blocks < 0 or top_blocks > len(blocks):
        raise ValueError(
            f"`top_blocks` must be between 0 and the number of blocks ({len(blocks)}). "
            f"Received: {top_blocks}"
        )
    if top_blocks:
        frozen = [
            backbone.token_embedding,
            backbone.position_embedding,
            backbone.segment_embedding,
            backbone.embeddings_norm,
            *blocks[: len(blocks) - top_blocks],
        ]
        for layer in frozen:
            layer.trainable = False


def run(config):
    """Fine-tunes; returns a `ClassifierResult`."""
    place, splits = classify.prepare(config, "finetune")
    with place.setting_up():
        base = classify.load_base(config.init_from)
        if base.label_names is not None and tuple(base.label_names) != tuple(splits.label_names):
            raise ValueError(
                f"The classifier in {config.init_from} predicts {list(base.label_names)}, but "
                f"the dataset's labels are {list(splits.label_names)}."
            )
        set_trainable_blocks(base.backbone, config.top_blocks)
        previous = base.classifier
        model = BertClassifier(
            base.backbone,
            num_classes=len(splits.label_names),
            pooling=previous.pooling if previous else classify.pooling_for(config, base),
            dropout=previous.dropout if previous else config.dropout,
            hidden_dim=previous.hidden_dim if previous else None,
        )
        if previous is not None:  # keep the head that transfer learning trained
            model.classification_head.set_weights(previous.classification_head.get_weights())
        steps = math.ceil(len(splits.train) / config.batch_size)
        classify.compile_classifier(model, config, steps)  # after every change of `trainable`
    return classify.train_and_finish(
        model, config, splits, base, place, announce=f"[finetune] from {base.description}"
    )
