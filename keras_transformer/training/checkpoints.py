"""Resumable training state: model, optimizer, the layers' random-number states, epoch and step,
in a `tf.train.CheckpointManager`.

The random-number states are the `keras.random.SeedGenerator` states of the model's layers
(each dropout layer draws from one): Keras lists them in `model.variables` but not in
`model.weights`, and `tf.train.Checkpoint(model=...)` does not reach them, so without them a
resumed run would draw the dropout masks of its first steps again and diverge from the run it
continues.

The chief saves into `directory` (keeping the last `max_to_keep`); every other worker writes the
same checkpoint into its private `worker_temp_dir` and deletes it (saving distributed variables
may be a collective step, so every worker takes part). On start, every worker restores the
latest checkpoint of `directory`; when a worker cannot read it (no shared storage), the workers
notice that their restored steps differ and copy the chief's values to everyone.
"""

import os

import tensorflow as tf

from keras_transformer.training.agreement import broadcast_from_chief, gather_from_workers
from keras_transformer.training.cluster import remove_worker_temp_dir, worker_temp_dir


def random_states(model):
    """The `SeedGenerator` states of `model`'s layers: in `model.variables`, not in its weights."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class TrainingCheckpoint:
    """Saves and restores a model, its optimizer, its layers' random-number states (dropout),
    the epoch and the step counters.

    Args:
        model: a compiled, built Keras model.
        directory: str. The chief's checkpoint folder.
        cluster: `ClusterInfo`. This process in the cluster.
        strategy: `tf.distribute.Strategy`.
        max_to_keep: int. Checkpoints kept by the chief. Defaults to `2`.
    """

    def __init__(self, model, directory, cluster, strategy, max_to_keep=2):
        self.model = model
        self.directory = directory
        self.cluster = cluster
        self.strategy = strategy
        with strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.random_states = random_states(model)
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=model.optimizer,
            random_states=self.random_states,
            epoch=self.epoch,
            step=self.step,
        )
        self.manager = None
        if cluster.is_chief:
            self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)

    def restore(self):
        """Restores the latest checkpoint, if any. Returns `(epoch, step)` (0, 0 if none)."""
        latest = tf.train.latest_checkpoint(self.directory)
        if latest:
            status = None
            try:
                status = self.checkpoint.restore(latest)
                status.assert_existing_objects_matched()
            except (AssertionError, ValueError) as error:
                raise ValueError(
                    f"The checkpoint {latest!r} does not match this model and optimizer "
                    f"({str(error)[:300]}). Resume with the same model configuration, or use "
                    "another checkpoint folder."
                ) from error
            finally:
                if status is not None:
                    status.expect_partial()  # no warnings about values left unused
        if self.cluster.is_multi_worker:
            state = [int(self.epoch.numpy()), int(self.step.numpy())]
            rows = gather_from_workers(self.strategy, state)
            if len({tuple(row) for row in rows}) > 1:  # some worker could not read it
                print(
                    f"[keras_transformer] workers restored different states {rows}; copying "
                    "the chief's to every worker.",
                    flush=True,
                )
                broadcast_from_chief(self.strategy, self._state_variables())
        return int(self.epoch.numpy()), int(self.step.numpy())

    def _state_variables(self):
        variables = list(self.model.weights) + list(self.model.optimizer.variables)
        return variables + self.random_states + [self.epoch, self.step]

    def save(self, epoch, step):
        """Saves after `epoch` epochs and `step` steps (every worker calls it)."""
        self.epoch.assign(epoch)
        self.step.assign(step)
        if self.manager is not None:
            return self.manager.save(checkpoint_number=epoch)
        temporary = worker_temp_dir(self.directory, cluster=self.cluster)
        path = self.checkpoint.write(os.path.join(temporary, "ckpt"))
        remove_worker_temp_dir(self.directory, cluster=self.cluster)
        return path

    @property
    def latest(self):
        return tf.train.latest_checkpoint(self.directory)
