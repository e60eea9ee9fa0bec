"""The runs behind `test_loop_precision.py`'s XLA test, in a process whose CPU is split in 2.

    python tests/training/jit_loop_case.py OUT.json

The tiny GPT of `multi_worker_case.py` trained 3 steps by our loop on 2 logical CPU replicas,
with `jit_compile` off and on; writes the largest weight difference, the losses, and whether
the traced train step holds an XLA-compiled function (`_XlaMustCompile`).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), HERE]


def _compiles_with_xla(concrete):
    """Whether any function the traced step calls is marked for XLA compilation."""
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    must = [n for n in nodes if n.attr["_XlaMustCompile"].b]
    names = {f.signature.name for f in graph.library.function if f.attr["_XlaMustCompile"].b}
    return bool(must or names)


def main(argv):
    from keras_transformer.distribute import split_cpu

    devices = split_cpu(2)
    import keras
    import numpy as np
    import tensorflow as tf
    from multi_worker_case import gpt_case, parse_args

    from keras_transformer.training import evaluate, fit
    from keras_transformer.training import steps as steps_lib

    strategy = tf.distribute.MirroredStrategy(devices)
    out, weights = {}, {}
    for jit in (False, True):
        keras.utils.set_random_seed(7)
        with strategy.scope():
            model, train, validation = gpt_case(parse_args(["--out", "unused"]))
            model.jit_compile = jit
        history = fit(model, train, epochs=1, steps_per_epoch=3, verbose=0)
        weights[jit] = [w.numpy() for w in model.weights]
        key = "jit" if jit else "plain"
        out[f"{key}_loss"] = history.history["loss"]
        out[f"{key}_val_loss"] = evaluate(model, validation)["loss"]
        step = steps_lib.make_train_function(model, strategy, sync_stop=False)
        iterator = iter(strategy.experimental_distribute_dataset(train))
        out[f"{key}_xla"] = _compiles_with_xla(step.get_concrete_function(iterator, True))
    out["difference"] = max(
        float(np.abs(a - b).max()) for a, b in zip(weights[False], weights[True], strict=True)
    )
    with open(argv[0], "w") as file:
        json.dump(out, file)


if __name__ == "__main__":
    main(sys.argv[1:])
