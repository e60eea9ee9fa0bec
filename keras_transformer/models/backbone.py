"""Base classes: a backbone (functional model, dict in), a task (backbone + head, default
`compile`) and a generative task (adds `generate`)."""

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.layers import LanguageModelHead
from keras_transformer.models import generation
from keras_transformer.models.sizes import size_arguments
from keras_transformer.training.optimizers import AdamW


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

    `compile` defaults to AdamW, from-logits sparse cross-entropy (`default_loss`) and
    accuracy; a task states its own defaults as class attributes: `LEARNING_RATE`,
    `WEIGHT_DECAY`, and `WEIGHTED_ACCURACY` (accuracy weighted by the sample weights, as for
    language models whose padding weighs 0, instead of a plain metric).

    Layers listed by `unused_layers()` (parts of the backbone that the task's outputs do not
    depend on, such as BERT's pooler under a masked-LM head) are left out of the task's
    trainable weights and counted with its non-trainable ones: the optimizer neither updates
    them nor warns that they have no gradient. Their own `trainable` flag is untouched, so
    another task built on the same backbone trains them.
    """

    CONFIG_KEYS = ()
    LEARNING_RATE = 1e-3
    WEIGHT_DECAY = 0.01
    WEIGHTED_ACCURACY = False

    def default_loss(self):
        """The loss `compile` uses unless given: from-logits sparse cross-entropy."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compile(
        self, optimizer="auto", loss="auto", metrics="auto", weighted_metrics="auto", **kwargs
    ):
        """Compiles with the task's defaults for every argument left `"auto"`.

        Args:
            optimizer: `"auto"`: AdamW at `LEARNING_RATE` with `WEIGHT_DECAY`.
            loss: `"auto"`: `default_loss()`.
            metrics, weighted_metrics: `"auto"` (both): accuracy, as a weighted metric if
                `WEIGHTED_ACCURACY`, else as a plain one. Give either to choose your own
                (the other then defaults to none).
            **kwargs: passed to `keras.Model.compile`.
        """
        if _is_auto(optimizer):
            optimizer = AdamW(self.LEARNING_RATE, weight_decay=self.WEIGHT_DECAY)
        if _is_auto(loss):
            loss = self.default_loss()
        if _is_auto(metrics) and _is_auto(weighted_metrics):
            accuracy = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
            if self.WEIGHTED_ACCURACY:
                metrics, weighted_metrics = None, accuracy
            else:
                metrics, weighted_metrics = accuracy, None
        super().compile(
            optimizer=optimizer,
            loss=loss,
            metrics=None if _is_auto(metrics) else metrics,
            weighted_metrics=None if _is_auto(weighted_metrics) else weighted_metrics,
            **kwargs,
        )

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


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


class GenerativeTask(Task):
    """A task that generates tokens: `generate` in Python, `generate_ids` in graph ops.

    Both run `keras_transformer.models.generation.decode`, one `tf.while_loop` over the
    task's one-token step with the backbone's key/value cache (greedy, sampling or beam
    search); the exported `generate` signatures call `generate_ids` too. A subclass
    provides `generate_inputs` (Python inputs -> the arrays `generate_ids` takes) and
    `start_decoding` (graph: those arrays -> the step, the buffer and the cache).
    """

    @staticmethod
    def tied_lm_head(backbone):
        """The language-model head over `backbone`, its kernel the token embedding (tied)."""
        return LanguageModelHead(
            backbone.vocabulary_size,
            token_embedding=backbone.token_embedding,
            dtype=backbone.dtype_policy,
            name="lm_head",
        )

    def generate_inputs(self, inputs, max_new_tokens):
        """Python inputs -> a dict of numpy arrays with a right-padded buffer with room for
        `max_new_tokens` (`"token_ids"`, `"padding_mask"`, and what else the task needs)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement generate_inputs.")

    def start_decoding(self, inputs):
        """Graph ops: the dict of `generate_inputs` -> `(next_logits, token_ids, padding_mask,
        state)`, as `generation.decode` takes them."""
        raise NotImplementedError(f"{type(self).__name__} does not implement start_decoding.")

    def generate_ids(
        self,
        inputs,
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seed=(0, 0),
        end_token=-1,
        num_beams=1,
        length_penalty=1.0,
        max_new_tokens=None,
    ):
        """The decoding in TensorFlow graph ops (also used by SavedModel export).

        Args:
            inputs: dict of tensors, as `generate_inputs` makes them.
            temperature, top_k, top_p, num_beams, length_penalty: scalar tensors or numbers,
                as in `generate`.
            seed: int32 (2,). The stateless sampling seed.
            end_token: int scalar. `-1`: none.
            max_new_tokens: int scalar or None. New tokens per row at most; None: fill the
                buffer (a shorter prompt gets more).

        Returns:
            A dict of `token_ids` int32 (B, L), `padding_mask` bool (B, L) and `scores`
            float32 (B,), as `generation.decode` returns them.
        """
        next_logits, token_ids, padding_mask, state = self.start_decoding(inputs)
        return generation.decode(
            next_logits,
            token_ids,
            padding_mask,
            state,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            end_token=end_token,
            num_beams=num_beams,
            length_penalty=length_penalty,
            max_new_tokens=max_new_tokens,
        )

    def generate(
        self,
        inputs,
        max_new_tokens=32,
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seed=None,
        end_token=None,
        num_beams=1,
        length_penalty=1.0,
    ):
        """Generates up to `max_new_tokens` tokens after each input, in a `tf.function`.

        Args:
            inputs: what the task's `generate_inputs` takes (prompts for `GPTCausalLM`).
            max_new_tokens: int. New tokens (after the longest prompt). Defaults to `32`.
            temperature: float. 0: greedy (or beam search); > 0: sampling from the softmax of
                logits / temperature. Defaults to `0.0`.
            top_k: int. Sample among the k most likely tokens; 0: all. Defaults to `0`.
            top_p: float. Sample among the smallest most-likely set of total probability >=
                top_p; 1.0: all. Defaults to `1.0`. (`top_k`, `top_p` apply when sampling.)
            seed: int or None. The same seed gives the same samples; None: a new one per call.
            end_token: int or None. A token id after which a row stops. Defaults to None.
            num_beams: int. 1: greedy or sampling; > 1: beam search (needs temperature 0).
                Defaults to `1`.
            length_penalty: float. Beam hypotheses are ranked by sum(log p) / length **
                length_penalty, length the generated tokens (end token included): > 0
                favours longer ones, < 0 shorter ones. Defaults to `1.0`.

        Returns:
            A dict of numpy arrays: `token_ids` and `padding_mask` (B, L), the inputs'
            buffer with the generated tokens (a row's positions after its end token are 0
            with a false mask), and `scores` (B,) (see `generation.decode`).
        """
        generation.check_generate_arguments(
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            end_token,
            num_beams,
            length_penalty,
            self.backbone.vocabulary_size,
        )
        arrays = self.generate_inputs(inputs, max_new_tokens)
        if seed is None:
            seed = np.random.randint(0, generation.SEED_RANGE)
        if getattr(self, "_generate_function", None) is None:
            self._generate_function = tf.function(self.generate_ids, reduce_retracing=True)
        outputs = self._generate_function(
            {name: tf.constant(value) for name, value in arrays.items()},
            temperature=tf.constant(temperature, tf.float32),
            top_k=tf.constant(top_k, tf.int32),
            top_p=tf.constant(top_p, tf.float32),
            seed=tf.constant([seed, 0], tf.int32),
            end_token=tf.constant(-1 if end_token is None else end_token, tf.int32),
            num_beams=tf.constant(num_beams, tf.int32),
            length_penalty=tf.constant(length_penalty, tf.float32),
        )
        return {name: value.numpy() for name, value in outputs.items()}


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
