"""transfer: a pretrained base, frozen, with a new trainable classification head.

The base (default: the pretrained MiniLM encoder) runs in inference mode and its weights never
change; only the new head learns. Reports trainable vs frozen parameter counts and test
accuracy. Follow with `finetune --init-from <this run's folder>` to also adapt the base.
"""

import dataclasses
import math
import typing

from keras_transformer.models import BertClassifier
from workflows import classify
from workflows.config import setting


@dataclasses.dataclass(frozen=True)
class Config(classify.ClassifierConfig):
    workflow: typing.ClassVar[str] = "transfer"

    epochs: int = setting(5, "training epochs")
    learning_rate: float = setting(1e-3, "peak learning rate (AdamW)")


def run(config):
    """Trains a new head on a frozen base; returns a `ClassifierResult`."""
    place, splits = classify.prepare(config, "transfer")
    with place.setting_up():
        base = classify.load_base(config.init_from)
        model = BertClassifier(
            base.backbone,
            num_classes=len(splits.label_names),
            pooling=classify.pooling_for(config, base),
            dropout=config.dropout,
            freeze_backbone=True,
        )
        steps = math.ceil(len(splits.train) / config.batch_size)
        classify.compile_classifier(model, config, steps)
    return classify.train_and_finish(
        model, config, splits, base, place, announce=f"[transfer] base: {base.description}"
    )
