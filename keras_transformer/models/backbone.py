"""Base classes: a backbone (functional model, dict in) and a task (backbone + head)."""

import keras

from keras_transformer.models.sizes import size_arguments


class ModelBase(keras.Model):
    """Restores our custom default `compile` when a `.keras` file is loaded."""

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)


class Backbone(ModelBase):
    """A functional model whose constructor arguments are its config.

    Subclasses build their layers and functional graph in `__init__`, store every constructor
    argument under its own name, and list them in `CONFIG_KEYS`.
    """

    CONFIG_KEYS = ()

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        if dtype is not None:
            # Keras' functional models drop `dtype` (their policy is the global one at build
            # time); keep the given one, or a model reloaded under another global policy
            # reports that policy and the tasks built on it get heads of the wrong dtype.
            self.dtype_policy = dtype

    @classmethod
    def from_size(cls, size, **kwargs):
        """Builds a model of a named size (`"tiny"`, `"mini"`, `"small"`, `"medium"`, `"base"`).

        Keyword arguments (e.g. `vocabulary_size`) complete or override the size.
        """
        return cls(**size_arguments(size, **kwargs))

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config.update({key: getattr(self, key) for key in self.CONFIG_KEYS})
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


class Task(ModelBase):
    """A backbone plus a head, with a default `compile`.

    `get_config` holds the serialized backbone and the task's own constructor arguments
    (`CONFIG_KEYS`).

    Layers listed by `unused_layers()` (parts of the backbone that the task's outputs do not
    depend on, such as BERT's pooler under a masked-LM head) are left out of the task's
    trainable weights and counted with its non-trainable ones: the optimizer neither updates
    them nor warns that they have no gradient. Their own `trainable` flag is untouched, so
    another task built on the same backbone trains them.
    """

    CONFIG_KEYS = ()

    def unused_layers(self):
        """The layers whose weights the task's loss never reaches. Defaults to none."""
        return ()

    def _unused_variable_ids(self):
        return {id(v) for layer in self.unused_layers() for v in layer.variables}

    @property
    def trainable_weights(self):
        unused = self._unused_variable_ids()
        return [v for v in super().trainable_weights if id(v) not in unused]

    @property
    def trainable_variables(self):
        unused = self._unused_variable_ids()
        return [v for v in super().trainable_variables if id(v) not in unused]

    @property
    def non_trainable_weights(self):
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def non_trainable_variables(self):
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trainable]

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        config.update({key: getattr(self, key) for key in self.CONFIG_KEYS})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


class OptionalSegmentIds:
    """Mixin: a dict input without `"segment_ids"` is called with `segment_ids=None` (all 0)."""

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict) and "segment_ids" not in inputs:
            inputs = {**inputs, "segment_ids": None}
        return super().__call__(inputs, *args, **kwargs)


class InferenceMode(keras.layers.Layer):
    """Runs a layer (or model) always in inference mode, whatever the caller's `training`.

    Keras passes the outer `training` flag down a functional graph, overriding a
    `training=False` written at the call site; this wrapper's `call` takes no `training`
    argument, so the flag stops here. Used for a frozen base in transfer learning (no dropout).
    Built inside a task's `__init__`; not serialized on its own.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs):
        return self.layer(inputs, training=False)
