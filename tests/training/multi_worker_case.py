"""One training run of the multi-worker tests: run as a script, once per worker.

    python tests/training/multi_worker_case.py --case gpt --out DIR [--multi-worker] ...

`--multi-worker` trains under `multi_worker_strategy` (TF_CONFIG from the launcher), `--mirrored N`
under `MirroredStrategy` over N logical CPU devices in one process, else the default strategy.

Cases (tiny models, dropout 0, fixed seed, so runs are deterministic):
- `gpt`: a 1-layer, 32-wide `GPTCausalLM` on a small character corpus through
  `pipelines.causal_lm_dataset`, AdamW with global-norm clipping, validation every epoch
  (the pretrain workflow's recipe);
- `transfer`: a `BertClassifier` on a frozen 1-layer `BertBackbone`, random token ids and
  labels (the transfer workflow's recipe: only the head trains).

Writes `<out>/worker-<i>.npz` (every weight, in order), `<out>/worker-<i>.json` (history,
metrics, seconds). Environment knobs for the failure tests: `KT_TEST_DIE_AT_STEP=k` with
`KT_TEST_DIE_WORKER=i` makes worker i exit abruptly (`os._exit(17)`) before global step k;
`KT_TEST_LEARNING_RATE` overrides the learning rate (to start workers with different configs).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=("gpt", "transfer"), default="gpt")
    parser.add_argument("--out", required=True)
    parser.add_argument("--multi-worker", action="store_true")
    parser.add_argument("--replicas-per-worker", type=int, default=1)
    parser.add_argument("--mirrored", type=int, default=0, help="one process, N CPU replicas")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=4)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def make_strategy(args):
    import tensorflow as tf

    from keras_transformer.distribute import multi_worker_strategy, split_cpu

    if args.multi_worker:
        return multi_worker_strategy(
            startup_timeout=args.startup_timeout, replicas_per_worker=args.replicas_per_worker
        )
    if args.mirrored:
        return tf.distribute.MirroredStrategy(split_cpu(args.mirrored))
    return tf.distribute.get_strategy()


CORPUS = [
    f"{name} {verb} the {thing} at {hour} o'clock, and {count} birds sang."
    for name in ("Anna", "Boris", "Chloe", "Dmitri", "Elena")
    for verb in ("saw", "painted", "sold", "found")
    for thing in ("boat", "garden", "lamp")
    for hour, count in ((1, "three"), (7, "nine"))
]


def gpt_case(args):
    import keras
    import tensorflow as tf

    from keras_transformer.data import pipelines
    from keras_transformer.models import GPTBackbone, GPTCausalLM
    from keras_transformer.text import CharacterTokenizer

    tokenizer = CharacterTokenizer.from_text(CORPUS)
    texts = tf.data.Dataset.from_tensor_slices(CORPUS)
    train = pipelines.causal_lm_dataset(
        texts, tokenizer, 16, args.batch_size, seed=args.seed, shuffle_buffer_size=len(CORPUS)
    ).repeat()
    validation = pipelines.causal_lm_dataset(
        tf.data.Dataset.from_tensor_slices(CORPUS[:20]), tokenizer, 16, args.batch_size
    ).take(2)
    model = GPTCausalLM(
        GPTBackbone(
            vocabulary_size=tokenizer.vocabulary_size(),
            num_layers=1,
            num_heads=2,
            hidden_dim=32,
            intermediate_dim=64,
            max_sequence_length=16,
            dropout=getattr(args, "dropout", 0.0),  # 0 unless a test sets it
        )
    )
    learning_rate = float(os.environ.get("KT_TEST_LEARNING_RATE", "3e-3"))
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.01, global_clipnorm=1.0)
    )
    return model, train, validation


def transfer_case(args):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_transformer.models import BertBackbone, BertClassifier

    rng = np.random.default_rng(args.seed)
    count, length = 64, 16
    x = {
        "token_ids": rng.integers(5, 100, size=(count, length)).astype("int32"),
        "padding_mask": np.ones((count, length), "int32"),
        "segment_ids": np.zeros((count, length), "int32"),
    }
    labels = rng.integers(0, 3, size=(count,)).astype("int32")
    train = (
        tf.data.Dataset.from_tensor_slices((x, labels))
        .shuffle(count, seed=args.seed)
        .batch(args.batch_size, drop_remainder=True)
        .repeat()
    )
    validation = tf.data.Dataset.from_tensor_slices((x, labels)).take(16).batch(args.batch_size)
    backbone = BertBackbone(
        vocabulary_size=100,
        num_layers=1,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=length,
        dropout=0.0,
    )
    backbone.trainable = False  # transfer learning: only the head trains
    model = BertClassifier(backbone, num_classes=3, dropout=0.0, hidden_dim=16)
    learning_rate = float(os.environ.get("KT_TEST_LEARNING_RATE", "1e-2"))
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.01, global_clipnorm=0.5)
    )
    return model, train, validation


def die_at_step(step, model):
    """A callback that exits this process abruptly (a crash, not an exception) before `step`."""
    import keras

    class DieAtStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if int(model.optimizer.iterations.numpy()) >= step:
                print(f"[test] worker dying on purpose before step {step}", flush=True)
                os._exit(17)

    return DieAtStep()


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    strategy = make_strategy(args)  # first: no TensorFlow op may run before it
    import keras
    import numpy as np

    from keras_transformer.training import fit
    from keras_transformer.training.cluster import current_cluster

    cluster = current_cluster(strategy)
    keras.utils.set_random_seed(args.seed)
    with strategy.scope():
        model, train, validation = (gpt_case if args.case == "gpt" else transfer_case)(args)
    callbacks = []
    die_at = os.environ.get("KT_TEST_DIE_AT_STEP")
    if die_at and int(os.environ.get("KT_TEST_DIE_WORKER", "1")) == cluster.index:
        callbacks.append(die_at_step(int(die_at), model))
    frozen_before = [w.numpy().copy() for w in model.non_trainable_weights]
    history = fit(
        model,
        train,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        validation_data=validation,
        callbacks=callbacks,
        strategy=strategy,
        verbose=2 if cluster.is_chief else 0,
        checkpoint_dir=args.checkpoint_dir,
        config={**vars(args), "learning_rate": os.environ.get("KT_TEST_LEARNING_RATE")},
        startup_timeout=args.startup_timeout,
    )
    os.makedirs(args.out, exist_ok=True)
    weights = {f"{i:03d}": w.numpy() for i, w in enumerate(model.weights)}
    np.savez(os.path.join(args.out, f"worker-{cluster.index}.npz"), **weights)
    frozen_after = [w.numpy() for w in model.non_trainable_weights]
    frozen_changed = any(
        not np.array_equal(a, b) for a, b in zip(frozen_before, frozen_after, strict=True)
    )
    report = {
        "history": history.history,
        "replicas": strategy.num_replicas_in_sync,
        "iterations": int(model.optimizer.iterations.numpy()),
        "frozen_changed": frozen_changed,
        "num_trainable": len(model.trainable_weights),
        "seconds": time.monotonic() - start,
    }
    with open(os.path.join(args.out, f"worker-{cluster.index}.json"), "w") as file:
        json.dump(report, file, default=float)
    print(f"[test] worker {cluster.index} done in {report['seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
