"""Global batches in, per-replica batches out: every worker takes its slice of each batch.

`model.fit` on one machine sees a stream of global batches of B examples. To reach the same
weights on R replicas (W workers x k local devices), replica r must see rows
`[r * B / R, (r + 1) * B / R)` of the *same* global batch, so the summed gradients equal the
one-machine gradient. `distribute_dataset` does that: each worker builds the whole pipeline
(same seed, same order) and keeps only its rows of every batch, split into its k replicas'
batches. Auto-sharding by data (`AutoShardPolicy.DATA`) would instead hand worker w every W-th
whole batch, which is a different training run.

Reading every example on every worker costs input-pipeline time, not model time; when the
source is many files and exact equality with one machine does not matter, pass a
`dataset_fn(input_context)` instead, which shards by file (`input_context.input_pipeline_id`)
and returns per-replica batches (`input_context.get_per_replica_batch_size(B)`).
"""

import tensorflow as tf


def _structure(elements):
    return elements if len(elements) > 1 else elements[0]


def _leading_dim(dataset):
    for spec in tf.nest.flatten(dataset.element_spec):
        if spec.shape.rank:
            return spec.shape[0]
    raise ValueError(
        "The dataset's elements have no batch dimension. Batch it with the global batch size "
        f"first (dataset.batch(B)). Received element_spec={dataset.element_spec}"
    )


def replica_slices(dataset, num_replicas, first_replica, count):
    """Rows of replicas `first_replica .. first_replica + count - 1` of every global batch.

    Each global batch becomes `count` consecutive per-replica batches. With a static batch size
    divisible by `num_replicas`, shapes stay static (B / R rows); otherwise replica r gets rows
    `[n * r // R, n * (r + 1) // R)` of a batch of n rows (a smaller last batch splits as evenly
    as it can).
    """
    batch_size = _leading_dim(dataset)
    if batch_size is not None and batch_size % num_replicas == 0:
        rows = batch_size // num_replicas
        start, stop = first_replica * rows, (first_replica + count) * rows

        def mine(*elements):
            return tf.nest.map_structure(lambda t: t[start:stop], _structure(elements))

        return dataset.map(mine).rebatch(rows, drop_remainder=True)

    def split(*elements):
        batch = _structure(elements)
        size = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]

        def replica(j):
            r = first_replica + j
            begin, end = size * r // num_replicas, size * (r + 1) // num_replicas
            return tf.nest.map_structure(lambda t: t[begin:end], batch)

        return tf.data.Dataset.range(count).map(replica)

    return dataset.flat_map(split)


def distribute_dataset(dataset, strategy, skip_batches=0):
    """A distributed dataset for `strategy` from a dataset of global batches.

    Args:
        dataset: `tf.data.Dataset` of global batches (what `model.fit` would take), or a
            function `input_context -> tf.data.Dataset` of per-replica batches (it shards by
            itself, e.g. by file).
        strategy: `tf.distribute.Strategy`.
        skip_batches: int. Global batches (steps) to skip first, to resume mid-stream.

    Returns:
        Something to call `iter()` on inside or outside a `tf.function`; each element is one
        step's per-replica batches.
    """
    replicas = strategy.num_replicas_in_sync
    if not isinstance(dataset, tf.data.Dataset):
        if not callable(dataset):
            raise ValueError(
                "`dataset` must be a tf.data.Dataset of global batches or a function "
                f"input_context -> tf.data.Dataset. Received: {type(dataset).__name__}"
            )

        def from_function(context):
            per_worker = replicas // context.num_input_pipelines
            return dataset(context).skip(skip_batches * per_worker)

        return strategy.distribute_datasets_from_function(from_function)
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    if replicas == 1:  # one worker, one device: nothing to split
        return strategy.experimental_distribute_dataset(dataset)

    def dataset_fn(context):
        per_worker = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * per_worker
        return replica_slices(dataset, replicas, first, per_worker).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)
