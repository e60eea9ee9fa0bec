"""scratch: the same classifier trained from random weights: the baseline to beat.

Uses the base named by `--init-from` only for its architecture and tokenizer (or, with
`--size`, a named size with the base's tokenizer); every weight starts random.
"""

import dataclasses
import math
import typing

from keras_transformer.models import BertClassifier
from workflows import classify
from workflows.config import setting


@dataclasses.dataclass(frozen=True)
class Config(classify.ClassifierConfig):
    workflow: typing.ClassVar[str] = "scratch"

    epochs: int = setting(5, "training epochs")
    learning_rate: float = setting(3e-4, "peak learning rate (AdamW)")
    size: str | None = setting(None, "a named size instead of the base's architecture")
    dropout: float = setting(0.1, "dropout in the head")


def run(config):
    """Trains from random weights; returns a `ClassifierResult`."""
    place, splits = classify.prepare(config, "scratch")
    with place.setting_up():
        base = classify.load_base(config.init_from)
        if config.size:
            backbone = classify.scratch_backbone(
                config.size,
                base.tokenizer.vocabulary_size(),
                config.sequence_length,
                config.seed,
            )
        else:
            backbone = classify.fresh_backbone_like(base.backbone, config.seed)
        model = BertClassifier(
            backbone,
            num_classes=len(splits.label_names),
            pooling=classify.pooling_for(config, base),
            dropout=config.dropout,
        )
        classify.compile_classifier(model, config, math.ceil(len(splits.train) / config.batch_size))
    description = f"random weights, architecture of {base.description}"
    return classify.train_and_finish(model, config, splits, base, place, description=description)
