"""Keras callbacks on several workers: who writes files, and `BackupAndRestore`'s stand-in.

Every worker runs every callback (so that all of them take part in each collective step in the
same order), but only the chief should write final files: on the other workers, the Keras
callbacks that write (`ModelCheckpoint`, `TensorBoard`, `CSVLogger`) are pointed into a
private temporary folder that the loop removes. A callback of yours that writes should check
`keras_transformer.training.is_chief()`.
"""

import os

import keras


def redirect_writers(callbacks, temp_dir):
    """On a non-chief worker: points the file-writing Keras callbacks into `temp_dir`."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.ModelCheckpoint):
            callback.filepath = os.path.join(temp_dir, os.path.basename(callback.filepath))
        elif isinstance(callback, keras.callbacks.TensorBoard):
            callback.log_dir = os.path.join(temp_dir, "tensorboard")
        elif isinstance(callback, keras.callbacks.CSVLogger):
            callback.filename = os.path.join(temp_dir, os.path.basename(callback.filename))


def split_backup_and_restore(callbacks, checkpoint_dir):
    """Takes `BackupAndRestore` out: the loop's checkpoints do its work, in its `backup_dir`.

    Keras's `BackupAndRestore` saves weights the other workers cannot restore consistently
    and does not know where the data stream stopped; the loop's checkpoints do both.

    Returns:
        `(callbacks, checkpoint_dir, delete_at_end)`. Like `BackupAndRestore` (whose
        `delete_checkpoint` defaults to True), checkpoints that only served to resume are
        removed once training completes; an explicit `checkpoint_dir` is always kept.
    """
    kept, delete_at_end = [], False
    for callback in callbacks or []:
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            if checkpoint_dir is None:
                checkpoint_dir = callback.backup_dir
                delete_at_end = bool(getattr(callback, "delete_checkpoint", True))
        else:
            kept.append(callback)
    return kept, checkpoint_dir, delete_at_end
