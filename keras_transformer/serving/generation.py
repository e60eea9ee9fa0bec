"""Serving module for GPT-style causal LMs: text generation inside the SavedModel's graph.

`generate` takes raw prompts and returns the generated text. Prompts become ids with the
task's `CausalLMPreprocessor` (`generate_preprocess`, `generate_postprocess`); the decoding
is `GPTCausalLM.generate_ids`, the one loop of `keras_transformer.models.generation` (a
`tf.while_loop` of core TF ops: greedy, sampling or beam search with the key/value cache),
so one request runs the whole generation server-side.

Scalar inputs with defaults: `max_new_tokens`, `temperature`, `top_k`, `top_p`, `seed`,
`num_beams` and `length_penalty` are signature inputs whose default values are recorded in
the SavedModel in two ways:
- the SignatureDef's `defaults` map (TF Serving fills inputs missing from a request from it);
- the graph: their placeholders are `PlaceholderWithDefault` ops, so a TF1 `Session` (TF
  Serving's C++ loader, `saved_model_cli run`) may leave them unfed.
`tf.saved_model.load(...).signatures["generate"]` (TF2 Python) needs every input: pass them,
or use `keras_transformer.serving.predict`, which fills in the recorded defaults.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.models import generation
from keras_transformer.preprocessing import CausalLMPreprocessor, Preprocessor
from keras_transformer.serving.signatures import SAMPLE_TEXTS, ServingModule, Untracked

PROMPTS_SPEC = tf.TensorSpec([None], tf.string, name="prompts")
SCALAR_SPECS = [
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.int32, name="seed"),
    tf.TensorSpec([], tf.int32, name="num_beams"),
    tf.TensorSpec([], tf.float32, name="length_penalty"),
]
IDS_SPECS = [
    tf.TensorSpec([None, None], tf.int32, name="token_ids"),
    tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
]


SCALAR_NAMES = tuple(spec.name for spec in SCALAR_SPECS)


def named_scalars(*values):
    """The scalar signature inputs, in `SCALAR_SPECS` order, as a dict by name."""
    return dict(zip(SCALAR_NAMES, values, strict=True))


def compiled_decoders(model):
    """A generative task's decoding as two XLA-compiled functions: `(sample, beams)`.

    `sample(inputs, temperature=, top_k=, top_p=, seed=, end_token=, length_penalty=,
    max_new_tokens=)` is greedy or sampled decoding, `beams(inputs, num_beams, end_token=,
    length_penalty=, max_new_tokens=)` beam search (`num_beams` becomes a compile-time
    constant: one program per value); `inputs` as `model.generate_inputs` makes them. Each is a
    `tf.function(jit_compile=True)` of the cache prefill and the whole `tf.while_loop` of
    `keras_transformer.models.generation`. Two functions, chosen outside XLA, so that a
    greedy request never compiles beam search (one function holding both compiled both,
    taking about 1.6x as long here).
    """

    def sample(inputs, **settings):
        return generation.sample_loop(*model.start_decoding(inputs), **settings)

    def beams(inputs, num_beams, **settings):
        return generation.beam_search(*model.start_decoding(inputs), num_beams, **settings)

    return tf.function(sample, jit_compile=True), tf.function(beams, jit_compile=True)


class GenerationModule(ServingModule):
    """What the generating modules share: the scalar inputs' defaults, checks and seed.

    `CausalLMModule` (GPT) and `Seq2SeqModule` take the same scalar inputs (`SCALAR_SPECS`);
    a subclass sets `default_max_new_tokens` before building its signatures.
    """

    MAX_NUM_BEAMS = 64  # Beam search holds num_beams copies of each row's cache.

    def default_scalars(self):
        """The default values of the scalar inputs, as numpy scalars."""
        return {
            "max_new_tokens": np.int32(self.default_max_new_tokens),
            "temperature": np.float32(0.0),
            "top_k": np.int32(0),
            "top_p": np.float32(1.0),
            "seed": np.int32(-1),
            "num_beams": np.int32(1),
            "length_penalty": np.float32(1.0),
        }

    def _check_scalars(self, scalars):
        temperature, top_p = scalars["temperature"], scalars["top_p"]
        num_beams = scalars["num_beams"]
        beams = f"num_beams must be in [1, {self.MAX_NUM_BEAMS}] (1: greedy or sampling)."
        return [
            tf.debugging.assert_positive(
                scalars["max_new_tokens"], message="max_new_tokens must be > 0."
            ),
            tf.debugging.assert_non_negative(
                temperature, message="temperature must be >= 0 (0: greedy)."
            ),
            tf.debugging.assert_non_negative(
                scalars["top_k"], message="top_k must be >= 0 (0: all)."
            ),
            tf.debugging.assert_positive(top_p, message="top_p must be in (0, 1]."),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]."),
            tf.debugging.assert_positive(num_beams, message=beams),
            tf.debugging.assert_less_equal(num_beams, self.MAX_NUM_BEAMS, message=beams),
            tf.debugging.Assert(
                (num_beams <= 1) | (temperature <= 0.0),
                [
                    "Beam search (num_beams > 1) needs temperature 0: beam sampling is not "
                    "implemented."
                ],
            ),
            tf.debugging.Assert(
                tf.math.is_finite(scalars["length_penalty"]),
                ["length_penalty must be a finite number."],
            ),
        ]

    def _seed_pair(self, seed):
        drawn = tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int32)
        return tf.stack([tf.where(seed < 0, drawn, seed), tf.constant(0)])


class CausalLMModule(GenerationModule):
    """`GPTCausalLM` signatures: `generate` (prompts; also `serving_default`), `from_token_ids`.

    `generate` inputs: `prompts` string (B,); `max_new_tokens` int32 (default set at export),
    `temperature` float32 (default `0.0`: greedy; > 0 samples), `top_k` int32 (default `0`:
    all tokens), `top_p` float32 (default `1.0`: all tokens), `seed` int32 (default `-1`: a
    random seed per request; >= 0: reproducible samples), `num_beams` int32 (default `1`;
    2 to `MAX_NUM_BEAMS`: beam search, with temperature 0), `length_penalty` float32
    (default `1.0`: beam hypotheses rank by sum(log p) / length ** length_penalty). The
    preprocessor tokenizes each prompt, starts it with its start token and cuts it from the
    left so that it and `max_new_tokens` fit the model's `max_sequence_length`
    (`max_new_tokens` itself is capped at `max_sequence_length - 1`); each row gets at most
    `max_new_tokens` new tokens and stops after the end token. Outputs: `generated_text`
    string (B,) (the new tokens only, detokenized; the end token is left out), `token_ids`
    int32 (B, N) (the new token ids, 0-padded) and `padding_mask` int32 (B, N).

    `from_token_ids` takes right-padded prompts `token_ids` and `padding_mask` int32 (B, T)
    and the same scalar inputs, and returns `token_ids` and `padding_mask` (B, T +
    max_new_tokens): the prompts followed by the generated tokens, exactly what
    `GPTCausalLM.generate` returns (a shorter prompt fills the buffer to its end). Every row
    needs at least one token; T + max_new_tokens must fit `max_sequence_length` (else a
    clear error).

    Args:
        model: `GPTCausalLM`.
        preprocessor: `CausalLMPreprocessor`, or a tokenizer layer (a `CausalLMPreprocessor`
            is built from it with `prompt_start_token` and `end_token`), or None (then only
            `from_token_ids`, which never stops at an end token).
        max_new_tokens: int. Default of the `max_new_tokens` input. Defaults to `32`.
        prompt_start_token: str or None. With a tokenizer: put before each prompt. `"auto"`:
            `[EOS]` if the vocabulary has it (in training streams a text starts after
            `[EOS]`), else `[BOS]`, else none. Defaults to `"auto"`. A preprocessor given
            brings its own (then this must be `"auto"` or equal to its `start_token`).
        end_token: str or None. With a tokenizer: stop a row after this token; `"auto"`:
            `[EOS]` if present. Defaults to `"auto"`. A preprocessor brings its own.
        jit_compile: bool. XLA-compile the decoding (the cache prefill and the whole
            `tf.while_loop`) inside both signatures: `compiled_decoders`, greedy / sampling
            and beam search apart. The same tokens as the plain loop
            (tests/serving/test_export_xla_generate.py); its tokens/s beside the plain
            export's: `python benchmarks/serving_latency.py --only generation`. XLA
            compiles once per request shape (batch size, prompt width; for beam search also
            per `num_beams`) and keeps the program: the first request of a shape waits for
            it (the export's warm-up requests compile theirs at load). Stock TF Serving
            runs such a SavedModel only when started with `--xla_cpu_compilation_enabled=
            true` (without it, the first request fails); TF2 Python and a TF1 `Session`
            run it as they are. Defaults to `False`.
    """

    TEXT_SIGNATURE = "generate"

    def __init__(
        self,
        model,
        preprocessor,
        max_new_tokens=32,
        prompt_start_token="auto",
        end_token="auto",
        jit_compile=False,
    ):
        super().__init__(name="causal_lm")
        self.hold_model(model)
        self.max_sequence_length = model.backbone.max_sequence_length
        self.vocabulary_size = model.backbone.vocabulary_size
        if not isinstance(max_new_tokens, int) or not 0 < max_new_tokens < self.max_sequence_length:
            raise ValueError(
                f"`max_new_tokens` must be an int in [1, {self.max_sequence_length - 1}] (the "
                f"model's max_sequence_length - 1). Received: {max_new_tokens!r}"
            )
        self.default_max_new_tokens = max_new_tokens
        self.preprocessor = self._preprocessor(preprocessor, prompt_start_token, end_token)
        self.tokenizer = None if self.preprocessor is None else self.preprocessor.tokenizer
        self.start_id = None if self.preprocessor is None else self.preprocessor.start_token_id
        self.end_id = None if self.preprocessor is None else self.preprocessor.end_token_id
        if not isinstance(jit_compile, bool):
            raise ValueError(
                f"`jit_compile` must be True or False. Received: jit_compile={jit_compile!r}"
            )
        self.jit_compile = jit_compile
        # XLA only if asked: stock TF Serving runs it only with --xla_cpu_compilation_enabled.
        self._decode_function = Untracked(model.generate_ids)
        self._compiled = Untracked(compiled_decoders(model) if jit_compile else None)
        # Tensor defaults become the SignatureDef's `defaults` and PlaceholderWithDefault ops.
        defaults = {name: tf.constant(value) for name, value in self.default_scalars().items()}

        def generate(
            prompts,
            max_new_tokens=defaults["max_new_tokens"],
            temperature=defaults["temperature"],
            top_k=defaults["top_k"],
            top_p=defaults["top_p"],
            seed=defaults["seed"],
            num_beams=defaults["num_beams"],
            length_penalty=defaults["length_penalty"],
        ):
            scalars = named_scalars(
                max_new_tokens, temperature, top_k, top_p, seed, num_beams, length_penalty
            )
            return self._generate(prompts, scalars)

        def from_token_ids(
            token_ids,
            padding_mask,
            max_new_tokens=defaults["max_new_tokens"],
            temperature=defaults["temperature"],
            top_k=defaults["top_k"],
            top_p=defaults["top_p"],
            seed=defaults["seed"],
            num_beams=defaults["num_beams"],
            length_penalty=defaults["length_penalty"],
        ):
            scalars = named_scalars(
                max_new_tokens, temperature, top_k, top_p, seed, num_beams, length_penalty
            )
            return self._from_token_ids(token_ids, padding_mask, scalars)

        if self.tokenizer is not None:
            self.serve_text = tf.function(generate, input_signature=[PROMPTS_SPEC, *SCALAR_SPECS])
        self.from_token_ids = tf.function(
            from_token_ids, input_signature=[*IDS_SPECS, *SCALAR_SPECS]
        )

    def _preprocessor(self, preprocessor, prompt_start_token, end_token):
        """The `CausalLMPreprocessor` given, one built from a tokenizer, or None."""
        if preprocessor is None:
            return None
        if isinstance(preprocessor, CausalLMPreprocessor):
            for name, value, own in (
                ("prompt_start_token", prompt_start_token, preprocessor.start_token),
                ("end_token", end_token, preprocessor.end_token),
            ):
                if value != "auto" and value != own:
                    raise ValueError(
                        f"`{name}`={value!r} differs from the preprocessor's {own!r}: a "
                        "CausalLMPreprocessor owns its special tokens; leave it 'auto'."
                    )
            return preprocessor
        if isinstance(preprocessor, Preprocessor):
            raise ValueError(
                "CausalLMModule takes a CausalLMPreprocessor (or a tokenizer). Received: "
                f"{type(preprocessor).__name__}"
            )
        return CausalLMPreprocessor(
            preprocessor,
            self.max_sequence_length,
            end_token=end_token,
            start_token=prompt_start_token,
        )

    def warmup_inputs(self, texts=SAMPLE_TEXTS):
        # Every input is sent: older TF Serving versions reject requests that rely on defaults.
        scalars = {k: np.asarray(v) for k, v in self.default_scalars().items()}
        scalars["seed"] = np.asarray(0, np.int32)
        requests = []
        if self.tokenizer is not None:
            prompts = np.array([t.encode("utf-8") for t in texts], dtype=object)
            requests.append((self.TEXT_SIGNATURE, {"prompts": prompts, **scalars}))
        ids = np.array([[self.start_id or 1, 1, 2], [self.start_id or 1, 0, 0]], "int32")
        ids = np.minimum(ids, self.vocabulary_size - 1)
        mask = np.array([[1, 1, 1], [1, 0, 0]], "int32")
        room = self.max_sequence_length - ids.shape[1]
        scalars["max_new_tokens"] = np.asarray(min(self.default_max_new_tokens, room), np.int32)
        requests.append(("from_token_ids", {"token_ids": ids, "padding_mask": mask, **scalars}))
        return requests

    # ----------------------------------------------------------------------------------------

    def _decode(self, token_ids, padding_mask, scalars, max_new_tokens=None):
        """Runs the model's decoding loop; `max_new_tokens` per row, or None: fill the buffer.

        XLA-compiled (`jit_compile`): beam search or sampling is chosen outside XLA.
        """
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        common = {
            "end_token": -1 if self.end_id is None else self.end_id,
            "length_penalty": scalars["length_penalty"],
            "max_new_tokens": max_new_tokens,
        }
        sampling = {
            "temperature": scalars["temperature"],
            "top_k": scalars["top_k"],
            "top_p": scalars["top_p"],
            "seed": self._seed_pair(scalars["seed"]),
        }
        num_beams = scalars["num_beams"]
        if self._compiled.value is None:
            outputs = self._decode_function.value(inputs, num_beams=num_beams, **sampling, **common)
        else:
            sample, beams = self._compiled.value
            outputs = tf.cond(
                num_beams > 1,
                lambda: beams(inputs, num_beams, **common),
                lambda: sample(inputs, **sampling, **common),
            )
        return outputs["token_ids"], outputs["padding_mask"]

    def _generate(self, prompts, scalars):
        with tf.control_dependencies(self._check_scalars(scalars)):
            max_new_tokens = tf.minimum(scalars["max_new_tokens"], self.max_sequence_length - 1)
        token_ids, padding_mask, lengths, empty = self.preprocessor.generate_preprocess(
            prompts, max_new_tokens, self.max_sequence_length
        )  # (B, T)
        pad = [[0, 0], [0, max_new_tokens]]
        # Each row decodes max_new_tokens after its own prompt: under beam search a row's
        # answer is then the one it gets alone, whatever the other prompts' lengths.
        token_ids, mask = self._decode(
            tf.pad(token_ids, pad), tf.pad(padding_mask, pad), scalars, max_new_tokens
        )
        return self.preprocessor.generate_postprocess(
            token_ids, mask, lengths, empty, max_new_tokens
        )

    def _from_token_ids(self, token_ids, padding_mask, scalars):
        max_new_tokens = scalars["max_new_tokens"]
        lengths = tf.reduce_sum(tf.cast(padding_mask > 0, tf.int32), axis=1)
        expected = tf.sequence_mask(lengths, tf.shape(padding_mask)[1], dtype=tf.int32)
        total = tf.shape(token_ids)[1] + max_new_tokens
        checks = self._check_scalars(scalars) + [
            tf.debugging.assert_equal(
                tf.shape(token_ids),
                tf.shape(padding_mask),
                message="token_ids and padding_mask must have the same shape (B, T).",
            ),
            tf.debugging.assert_positive(
                lengths, message="Every prompt needs at least one token (e.g. a start token)."
            ),
            tf.debugging.assert_equal(
                tf.cast(padding_mask > 0, tf.int32),
                expected,
                message="Prompts must be right-padded: padding_mask must be 1s then 0s.",
            ),
            tf.debugging.assert_less_equal(
                total,
                self.max_sequence_length,
                message=(
                    "T + max_new_tokens exceeds the model's max_sequence_length="
                    f"{self.max_sequence_length}. Shorten the prompts or ask for fewer tokens."
                ),
            ),
            tf.debugging.assert_non_negative(token_ids, message="token_ids must be >= 0."),
            tf.debugging.assert_less(
                token_ids,
                self.vocabulary_size,
                message=f"token_ids must be < the vocabulary size {self.vocabulary_size}.",
            ),
        ]
        with tf.control_dependencies(checks):
            pad = [[0, 0], [0, max_new_tokens]]
            token_ids = tf.pad(token_ids, pad)
            padding_mask = tf.pad(tf.cast(padding_mask > 0, tf.int32), pad)
        ids, mask = self._decode(token_ids, padding_mask, scalars)
        return {"token_ids": ids, "padding_mask": tf.cast(mask, tf.int32)}
