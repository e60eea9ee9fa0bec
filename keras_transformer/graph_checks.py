"""GPU readiness without a GPU: does every op of a traced graph have a GPU kernel?

The TensorFlow wheel we install is a CUDA build: it registers each op's GPU kernels even on a
machine without a GPU. So a traced step can be checked here: an op with only a CPU kernel would
make TensorFlow place it on the host, and copy its inputs and outputs across at every step.

    concrete = tf.function(step).get_concrete_function(batch_spec)
    assert_gpu_ready(concrete)  # raises NoGpuKernelError listing each op type, count, where

- `graph_ops(function_or_graph)`: every op of a concrete function or graph, including the ops
  of every function it calls (its function library: while and cond bodies, called functions,
  gradient functions), each as a `GraphOp` (type, name, where it was created).
- `has_gpu_kernel(op_type)`: a `GPU` kernel, or a `DEFAULT` one (runs on any device, e.g. the
  shape helper `BroadcastGradientArgs`), is registered. Kernels that exist only for XLA
  (`XLA_GPU`, `XLA_GPU_JIT`) do not count: outside a `jit_compile` function they never run.
- `HOST_SIDE_OPS`: the named allow-list of ops TensorFlow places on the host by design.
- `ops_without_gpu_kernel(function, allow=HOST_SIDE_OPS)` and `assert_gpu_ready(...)`.
- `keras_fit_step(model, dataset)`: the concrete train function Keras `fit` runs, to check or
  count its ops.

The check is per op type: a GPU kernel registered for some dtypes counts, whatever the dtype
the graph uses.
"""

import collections
import functools
import os
import sysconfig

import tensorflow as tf
from tensorflow.python.framework import kernels

# Ops TensorFlow runs on the host by design: each one is met in the raw-text signatures of our
# exports (tokenizers and detokenizers of `keras_transformer.text` and `preprocessing`, which
# hold only core TensorFlow ops). No training step and no token-id signature holds any of them.
HOST_SIDE_OPS = {
    # Strings live in host memory.
    "StaticRegexFullMatch": "tokenizers test text against constant patterns",
    "StaticRegexReplace": "text normalization and word splitting (constant patterns)",
    "StringLower": "lower-casing tokenizers",
    "StringSplitV2": "whitespace splitting",
    "StringLength": "word-piece search measures words",
    "Substr": "byte-level BPE restores the original spelling of its pieces",
    "StringJoin": "word-piece search joins the words it searches; BPE marks leading spaces",
    "ReduceJoin": "word-piece search joins characters",
    "UnsortedSegmentJoin": "detokenizers join each row's tokens into text",
    "UnicodeDecode": "character tokenizers and normalization decode UTF-8",
    "UnicodeDecodeWithOffsets": "byte-level BPE splits text into characters with byte offsets",
    "UnicodeEncode": "normalization and detokenizers encode code points to UTF-8",
    "UnicodeTranscode": "invalid UTF-8 is replaced before tokenizing",
    "LookupTableFindV2": "vocabulary lookups (tf.lookup tables live on the host)",
    # Ragged tensors: tokenized text is ragged until it is packed into dense ids.
    "RaggedGather": "ragged token rows are gathered (packing, prompts)",
    "RaggedRange": "ragged token positions (truncation, packing)",
    "RaggedTensorToTensor": "ragged token ids are padded into a dense batch",
    "RaggedTensorToSparse": "byte-level BPE's merge loop numbers the word of each byte",
}


class NoGpuKernelError(AssertionError):
    """Some op of a traced graph has no GPU kernel and is not on the allow-list."""


GraphOp = collections.namedtuple("GraphOp", ["type", "name", "where"])
GraphOp.__doc__ = """One op of a traced graph.

Fields:
    type: str. The op type (`"MatMul"`).
    name: str. The node name, prefixed by `function_name/` inside a library function.
    where: str. Where it was created: the innermost frame of our code, then the innermost
        Keras frame if deeper (`"keras_transformer/x.py:12 (call) > keras/src/y.py:3 (f)"`);
        without ours, the deeper of Keras's and the caller's (a test, a script); for a library
        function built without Python (no traceback), `"function <name>"`.
"""

# Frames in these folders are TensorFlow's, Keras's or Python's own, not the caller's.
_LIBRARY_DIRS = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"]}
)
# Our code: the package and the workflows beside it (not the tests).
_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_PROJECT_DIRS = tuple(os.path.join(_ROOT, d) + os.sep for d in ("keras_transformer", "workflows"))


@functools.lru_cache(maxsize=4096)
def _kind(filename):
    """`(kind, short name)` of a frame's file; kind is project, keras, library or caller."""
    path = os.path.realpath(filename)
    if path == os.path.realpath(__file__):  # a trace this module started
        return "library", path
    for root in _PROJECT_DIRS:
        if path.startswith(root):
            return "project", path[len(_ROOT) + 1 :]
    for root in _LIBRARY_DIRS:
        if path.startswith(root):
            short = path[len(root) :]
            return ("keras" if short.startswith("keras" + os.sep) else "library"), short
    return "caller", os.path.relpath(path) if path.startswith(os.getcwd()) else path


def _where(op, function_name):
    """Where `op` was created (see `GraphOp.where`).

    The innermost frame of our code (`keras_transformer/`, `workflows/`) then, if deeper, the
    innermost Keras frame; without ours, the deeper of the innermost Keras frame and the
    innermost frame of the caller's code (a test, a script).
    """
    innermost = {}
    for index, frame in enumerate(op.traceback or [] if op is not None else []):
        kind, short = _kind(frame.filename)
        innermost[kind] = (index, f"{short}:{frame.lineno} ({frame.name})")
    project, keras_frame = innermost.get("project"), innermost.get("keras")
    if project:
        deeper = keras_frame and keras_frame[0] > project[0]
        return f"{project[1]} > {keras_frame[1]}" if deeper else project[1]
    candidates = [frame for frame in (keras_frame, innermost.get("caller")) if frame]
    if candidates:
        return max(candidates)[1]  # the deeper one
    return f"function {function_name}" if function_name else "unknown"


def _concrete(function_or_graph):
    """The `tf.Graph` of a concrete function, graph, or `tf.function` with an input signature."""
    if isinstance(function_or_graph, tf.Graph):
        return function_or_graph
    graph = getattr(function_or_graph, "graph", None)
    if isinstance(graph, tf.Graph):
        return graph
    if getattr(function_or_graph, "input_signature", None) is not None:
        return function_or_graph.get_concrete_function().graph
    raise TypeError(
        "Expected a traced function: a ConcreteFunction (`fn.get_concrete_function(...)`), a "
        "tf.function with an input_signature, or a tf.Graph. Received: "
        f"{type(function_or_graph).__name__}. Trace it first with `get_concrete_function`."
    )


def _python_graphs(graph):
    """`{function name: FuncGraph}` of the library functions traced in Python (recursively)."""
    found, pending = {}, [graph]
    while pending:
        for name, function in getattr(pending.pop(), "_functions", {}).items():
            traced = getattr(function, "_cached_graph", None)  # None: built from a FunctionDef
            if name not in found and traced is not None:
                found[name] = traced
                pending.append(traced)
    return found


def _operation(graph, name):
    try:
        return graph.get_operation_by_name(name)
    except (KeyError, ValueError):
        return None


def graph_ops(function_or_graph):
    """Every op of a traced function, including those of every function in its library.

    The graph's `GraphDef` is the list of record (its library holds every function that any
    op calls, directly or not: while and cond branches, `StatefulPartitionedCall` callees,
    gradient functions); the Python graphs give each op's traceback, for `where`.

    Args:
        function_or_graph: a `ConcreteFunction`, a `tf.Graph` (`FuncGraph`), or a
            `tf.function` with an `input_signature`.

    Returns:
        list of `GraphOp`, the outer graph's ops first, then each library function's.

    Example:
    >>> @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    ... def words(text):
    ...     return tf.strings.split(text)
    >>> [op.type for op in graph_ops(words) if op.type.startswith("String")]
    ['StringSplitV2']
    """
    return [GraphOp(op_type, name, where()) for op_type, name, where in _nodes(function_or_graph)]


def _nodes(function_or_graph):
    """`(type, name, where)` of every op, `where` a function computing it (it costs ~1 ms)."""
    graph = _concrete(function_or_graph)
    definition = graph.as_graph_def()
    traced = _python_graphs(graph)
    nodes = []
    for function_name, python_graph, node_defs in [
        (None, graph, definition.node),
        *(
            (f.signature.name, traced.get(f.signature.name), f.node_def)
            for f in definition.library.function
        ),
    ]:
        prefix = f"{function_name}/" if function_name else ""
        for node in node_defs:
            nodes.append(
                (
                    node.op,
                    prefix + node.name,
                    functools.partial(_where_of, python_graph, node.name, function_name),
                )
            )
    return nodes


def _where_of(python_graph, node_name, function_name):
    op = _operation(python_graph, node_name) if python_graph is not None else None
    return _where(op, function_name)


@functools.cache
def kernel_devices(op_type):
    """The device types with a kernel registered for `op_type` (`("CPU", "GPU")`), sorted."""
    registered = kernels.get_registered_kernels_for_op(op_type)
    return tuple(sorted({kernel.device_type for kernel in registered.kernel}))


def has_gpu_kernel(op_type):
    """True if `op_type` has a `GPU` or `DEFAULT` (any device) kernel; XLA-only ones do not count.

    Example:
    >>> has_gpu_kernel("MatMul"), has_gpu_kernel("StringSplitV2")
    (True, False)
    """
    return bool({"GPU", "DEFAULT"} & set(kernel_devices(op_type)))


def ops_without_gpu_kernel(function, allow=HOST_SIDE_OPS):
    """The ops of `function` (see `graph_ops`) without a GPU kernel, leaving out `allow`.

    Args:
        function: a `ConcreteFunction`, `tf.Graph`, or `tf.function` with an input signature.
        allow: collection of op types that may stay on the host. Defaults to `HOST_SIDE_OPS`.

    Returns:
        list of `GraphOp`.
    """
    return _offenders(_nodes(function), allow)


def _offenders(nodes, allow):
    return [
        GraphOp(op_type, name, where())
        for op_type, name, where in nodes
        if op_type not in allow and not has_gpu_kernel(op_type)
    ]


def describe(offenders):
    """One line per op type: `Type x count (kernels: CPU) at where; where`, most frequent first."""
    by_type = collections.defaultdict(list)
    for op in offenders:
        by_type[op.type].append(op)
    lines = []
    for op_type, ops in sorted(by_type.items(), key=lambda item: (-len(item[1]), item[0])):
        places = list(dict.fromkeys(op.where for op in ops))
        shown = "; ".join(places[:3]) + (f"; and {len(places) - 3} more" if len(places) > 3 else "")
        devices = ", ".join(kernel_devices(op_type)) or "none registered"
        lines.append(f"  {op_type} x{len(ops)} (kernels: {devices}) at {shown}")
    return "\n".join(lines)


def assert_gpu_ready(function, allow=HOST_SIDE_OPS, name=None):
    """Raises `NoGpuKernelError` if an op of `function` lacks a GPU kernel (outside `allow`).

    Args:
        function: a `ConcreteFunction`, `tf.Graph`, or `tf.function` with an input signature.
        allow: collection of op types that may stay on the host. Defaults to `HOST_SIDE_OPS`.
        name: str or None. What the function is, for the message. Defaults to its graph's name.

    Returns:
        int, the number of ops checked (library functions included).
    """
    ops = _nodes(function)
    offenders = _offenders(ops, allow)
    if offenders:
        label = name or _concrete(function).name
        types = len({op.type for op in offenders})
        raise NoGpuKernelError(
            f"{len(offenders)} of the {len(ops)} ops of {label} ({types} op types) have no GPU "
            f"kernel; on a GPU, TensorFlow would run them on the host:\n{describe(offenders)}\n"
            "Use ops with a GPU kernel there, move the work into the input pipeline (tf.data), "
            "or, if it belongs on the host by design, add the op type to the allow-list "
            "(keras_transformer.graph_checks.HOST_SIDE_OPS) with the reason."
        )
    return len(ops)


def keras_fit_step(model, dataset):
    """The concrete train function Keras `fit` runs for one batch of `dataset`.

    Built as `fit` builds it: a `TFEpochIterator` over the dataset (distributed by the model's
    strategy), the symbolic build, `make_train_function`, whose `tf.function` (Keras 3.15:
    `multi_step_on_iterator`) is traced on the epoch's iterator.

    Raises:
        RuntimeError: when this Keras version builds its train function otherwise.
    """
    import keras
    from keras.src.backend.tensorflow.trainer import TFEpochIterator

    epochs = TFEpochIterator(
        x=dataset,
        steps_per_epoch=1,
        distribute_strategy=model.distribute_strategy,
        steps_per_execution=model.steps_per_execution,
    )
    model._maybe_symbolic_build(iterator=epochs)
    epochs.reset()
    model.make_train_function()
    names = model.train_function.__code__.co_freevars
    cells = dict(zip(names, model.train_function.__closure__, strict=True))
    if "multi_step_on_iterator" not in cells:
        raise RuntimeError(
            f"Keras {keras.__version__}'s train function closes over {names}, not "
            "`multi_step_on_iterator`: update keras_fit_step to this Keras version."
        )
    step = cells["multi_step_on_iterator"].cell_contents
    for _, _, iterator in epochs:
        return step.get_concrete_function(iterator)
