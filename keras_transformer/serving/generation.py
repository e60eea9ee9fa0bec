"""Serving module for GPT-style causal LMs: text generation inside the SavedModel's graph.

`generate` takes raw prompts and returns the generated text. The decoding loop with its
key/value cache is `GPTCausalLM.generate_ids` (a `tf.while_loop` of core TF ops), so one
request runs the whole generation server-side.

Scalar inputs with defaults: `max_new_tokens`, `temperature`, `top_k`, `top_p` and `seed` are
signature inputs whose default values are recorded in the SavedModel in two ways:
- the SignatureDef's `defaults` map (TF Serving fills inputs missing from a request from it);
- the graph: their placeholders are `PlaceholderWithDefault` ops, so a TF1 `Session` (TF
  Serving's C++ loader, `saved_model_cli run`) may leave them unfed.
`tf.saved_model.load(...).signatures["generate"]` (TF2 Python) needs every input: pass them,
or use `keras_transformer.serving.predict`, which fills in the recorded defaults.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.serving.packing import keep_last, right_pad, special_token_id
from keras_transformer.serving.signatures import SAMPLE_TEXTS, ServingModule, Untracked
from keras_transformer.text.vocabulary import BOS_TOKEN, EOS_TOKEN

PROMPTS_SPEC = tf.TensorSpec([None], tf.string, name="prompts")
SCALAR_SPECS = [
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.int32, name="seed"),
]
IDS_SPECS = [
    tf.TensorSpec([None, None], tf.int32, name="token_ids"),
    tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
]


def _token_or_auto(tokenizer, token, candidates):
    """`"auto"`: the first of `candidates` in the vocabulary; else the token given (or None)."""
    if tokenizer is None or token is None:
        return None
    if token == "auto":
        for candidate in candidates:
            found = special_token_id(tokenizer, candidate, required=False)
            if found is not None:
                return found
        return None
    return special_token_id(tokenizer, token)


class CausalLMModule(ServingModule):
    """`GPTCausalLM` signatures: `generate` (prompts; also `serving_default`), `from_token_ids`.

    `generate` inputs: `prompts` string (B,); `max_new_tokens` int32 (default set at export),
    `temperature` float32 (default `0.0`: greedy; > 0 samples), `top_k` int32 (default `0`:
    all tokens), `top_p` float32 (default `1.0`: all tokens), `seed` int32 (default `-1`: a
    random seed per request; >= 0: reproducible samples). Each prompt is tokenized, started
    with `prompt_start_token`, and cut from the left so that it and `max_new_tokens` fit the
    model's `max_sequence_length` (`max_new_tokens` itself is capped at
    `max_sequence_length - 1`). Generation of a row stops after `end_token`.
    Outputs: `generated_text` string (B,) (the new tokens only, detokenized; the end token is
    left out), `token_ids` int32 (B, N) (the new token ids, 0-padded) and `padding_mask` int32
    (B, N).

    `from_token_ids` takes right-padded prompts `token_ids` and `padding_mask` int32 (B, T)
    and the same scalar inputs, and returns `token_ids` and `padding_mask` (B, T +
    max_new_tokens): the prompts followed by the generated tokens, exactly what
    `GPTCausalLM.generate` returns. Every row needs at least one token; T + max_new_tokens
    must fit `max_sequence_length` (else a clear error).

    Args:
        model: `GPTCausalLM`.
        tokenizer: tokenizer layer or None (then only `from_token_ids`).
        max_new_tokens: int. Default of the `max_new_tokens` input. Defaults to `32`.
        prompt_start_token: str or None. Put before each prompt. `"auto"`: `[EOS]` if the
            vocabulary has it (in `causal_lm_dataset` streams a text starts after `[EOS]`),
            else `[BOS]`, else none. Defaults to `"auto"`.
        end_token: str or None. Stop a row after this token; `"auto"`: `[EOS]` if present.
            Defaults to `"auto"`.
    """

    TEXT_SIGNATURE = "generate"

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens=32,
        prompt_start_token="auto",
        end_token="auto",
    ):
        super().__init__(name="causal_lm")
        self.hold_model(model)
        self.tokenizer = tokenizer
        self.max_sequence_length = model.backbone.max_sequence_length
        self.vocabulary_size = model.backbone.vocabulary_size
        if not isinstance(max_new_tokens, int) or not 0 < max_new_tokens < self.max_sequence_length:
            raise ValueError(
                f"`max_new_tokens` must be an int in [1, {self.max_sequence_length - 1}] (the "
                f"model's max_sequence_length - 1). Received: {max_new_tokens!r}"
            )
        self.default_max_new_tokens = max_new_tokens
        self.start_id = _token_or_auto(tokenizer, prompt_start_token, (EOS_TOKEN, BOS_TOKEN))
        self.end_id = _token_or_auto(tokenizer, end_token, (EOS_TOKEN,))
        # Not XLA-compiled: stock TF Serving runs XLA only with --xla_cpu_compilation_enabled,
        # and `generate_ids` under XLA gave other greedy tokens than without it (TF 2.21, CPU).
        self._decode_function = Untracked(model.generate_ids)
        # Tensor defaults become the SignatureDef's `defaults` and PlaceholderWithDefault ops.
        defaults = {name: tf.constant(value) for name, value in self.default_scalars().items()}

        def generate(
            prompts,
            max_new_tokens=defaults["max_new_tokens"],
            temperature=defaults["temperature"],
            top_k=defaults["top_k"],
            top_p=defaults["top_p"],
            seed=defaults["seed"],
        ):
            return self._generate(prompts, max_new_tokens, temperature, top_k, top_p, seed)

        def from_token_ids(
            token_ids,
            padding_mask,
            max_new_tokens=defaults["max_new_tokens"],
            temperature=defaults["temperature"],
            top_k=defaults["top_k"],
            top_p=defaults["top_p"],
            seed=defaults["seed"],
        ):
            return self._from_token_ids(
                token_ids, padding_mask, max_new_tokens, temperature, top_k, top_p, seed
            )

        if tokenizer is not None:
            self.serve_text = tf.function(generate, input_signature=[PROMPTS_SPEC, *SCALAR_SPECS])
        self.from_token_ids = tf.function(
            from_token_ids, input_signature=[*IDS_SPECS, *SCALAR_SPECS]
        )

    def default_scalars(self):
        """The default values of the scalar inputs, as numpy scalars."""
        return {
            "max_new_tokens": np.int32(self.default_max_new_tokens),
            "temperature": np.float32(0.0),
            "top_k": np.int32(0),
            "top_p": np.float32(1.0),
            "seed": np.int32(-1),
        }

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

    def _check_scalars(self, max_new_tokens, temperature, top_k, top_p):
        return [
            tf.debugging.assert_positive(max_new_tokens, message="max_new_tokens must be > 0."),
            tf.debugging.assert_non_negative(
                temperature, message="temperature must be >= 0 (0: greedy)."
            ),
            tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0: all)."),
            tf.debugging.assert_positive(top_p, message="top_p must be in (0, 1]."),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]."),
        ]

    def _seed_pair(self, seed):
        drawn = tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int32)
        return tf.stack([tf.where(seed < 0, drawn, seed), tf.constant(0)])

    def _decode(self, token_ids, padding_mask, temperature, top_k, top_p, seed):
        end_id = -1 if self.end_id is None else self.end_id
        outputs = self._decode_function.value(
            {"token_ids": token_ids, "padding_mask": padding_mask},
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=self._seed_pair(seed),
            end_token=end_id,
        )
        return outputs["token_ids"], outputs["padding_mask"]

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        checks = self._check_scalars(max_new_tokens, temperature, top_k, top_p)
        with tf.control_dependencies(checks):
            max_new_tokens = tf.minimum(max_new_tokens, self.max_sequence_length - 1)
        has_start = 0 if self.start_id is None else 1
        ids = tf.cast(self.tokenizer(prompts), tf.int32)  # (B, (T))
        ids = keep_last(ids, tf.maximum(self.max_sequence_length - max_new_tokens - has_start, 0))
        if has_start:
            batch_size = ids.nrows(out_type=tf.int32)
            ids = tf.concat([tf.fill([batch_size, 1], self.start_id), ids], axis=1)
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
        # A prompt with no token at all (empty text, no start token) gets a stand-in token
        # and an empty output: the loop needs one token per row.
        empty = tf.equal(lengths, 0)
        stand_in = tf.RaggedTensor.from_row_lengths(
            tf.zeros([tf.reduce_sum(tf.cast(empty, tf.int32))], tf.int32),
            tf.cast(empty, ids.row_splits.dtype),
        )
        ids = tf.concat([ids, stand_in], axis=1)
        token_ids, padding_mask = right_pad(ids)  # (B, T)
        pad = [[0, 0], [0, max_new_tokens]]
        token_ids, mask = self._decode(
            tf.pad(token_ids, pad), tf.pad(padding_mask, pad), temperature, top_k, top_p, seed
        )
        # Row i's new tokens sit at positions [lengths_i, lengths_i + max_new_tokens).
        position = tf.range(tf.shape(token_ids)[1])[tf.newaxis, :]
        starts = tf.maximum(lengths, 1)[:, tf.newaxis]
        new = (position >= starts) & (position < starts + max_new_tokens) & mask
        new = new & tf.logical_not(empty)[:, tf.newaxis]
        if self.end_id is not None:
            new = new & tf.not_equal(token_ids, self.end_id)
        generated = tf.ragged.boolean_mask(token_ids, new)  # (B, (N))
        generated_ids, generated_mask = right_pad(generated)
        return {
            "generated_text": self.tokenizer.detokenize(generated),
            "token_ids": generated_ids,
            "padding_mask": generated_mask,
        }

    def _from_token_ids(
        self, token_ids, padding_mask, max_new_tokens, temperature, top_k, top_p, seed
    ):
        lengths = tf.reduce_sum(tf.cast(padding_mask > 0, tf.int32), axis=1)
        expected = tf.sequence_mask(lengths, tf.shape(padding_mask)[1], dtype=tf.int32)
        total = tf.shape(token_ids)[1] + max_new_tokens
        checks = self._check_scalars(max_new_tokens, temperature, top_k, top_p) + [
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
        ids, mask = self._decode(token_ids, padding_mask, temperature, top_k, top_p, seed)
        return {"token_ids": ids, "padding_mask": tf.cast(mask, tf.int32)}
