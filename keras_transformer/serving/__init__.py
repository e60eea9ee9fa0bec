"""SavedModel export for TF Serving: raw text in, answers out, generation inside the graph.

    from keras_transformer.serving import export, SavedModelPredictor

    result = export(classifier, preprocessor=preprocessor, path="saved_models",
                    name="sentiment", class_names=["negative", "positive"])  # .../sentiment/1/
    SavedModelPredictor(result.base)("serving_default", texts=["Loved it!"])

- `export`: writes `BASE/VERSION/` atomically (TF Serving's layout) with signatures that take
  raw strings (`serving_default`, `embed`, `fill_mask`, `generate` for GPT and seq2seq
  models) and token ids
  (`from_token_ids`), `preprocess` (raw strings -> the model's input tensors) for BERT-style
  models, and `assets.extra/tf_serving_warmup_requests`. Text goes through the task's
  preprocessor (`keras_transformer.preprocessing`; pass the run's with `preprocessor=`), the
  same object training maps over `tf.data`. The graph holds only core TensorFlow ops: stock TF
  Serving loads it without tensorflow-text.
- `SavedModelPredictor`, `predict`: run any signature of an export (defaults filled as TF
  Serving does); `python -m workflows predict` on the command line.
- `rest_request`, `rest_response`, `rest_url`, `grpc_request`, `outputs_from_response`:
  TF Serving REST (JSON) and gRPC (`PredictRequest`) helpers.
- `layout`: versions, safe names, atomic writes. `warmup`: PredictionLog records.

The signatures, their inputs and outputs, and example requests: `docs/SERVING.md`.
"""

from keras_transformer.serving.export import ExportResult, export, serving_module
from keras_transformer.serving.generation import CausalLMModule
from keras_transformer.serving.layout import (
    check_model_name,
    latest_version_path,
    list_versions,
    next_version,
)
from keras_transformer.serving.predict import SavedModelPredictor, predict
from keras_transformer.serving.requests import (
    grpc_request,
    outputs_from_response,
    rest_request,
    rest_response,
    rest_url,
)
from keras_transformer.serving.seq2seq import Seq2SeqModule
from keras_transformer.serving.signatures import ClassifierModule, EncoderModule, MaskedLMModule
from keras_transformer.serving.warmup import read_warmup_requests, write_warmup_requests

__all__ = [
    "CausalLMModule",
    "ClassifierModule",
    "EncoderModule",
    "ExportResult",
    "MaskedLMModule",
    "SavedModelPredictor",
    "Seq2SeqModule",
    "check_model_name",
    "export",
    "grpc_request",
    "latest_version_path",
    "list_versions",
    "next_version",
    "outputs_from_response",
    "predict",
    "read_warmup_requests",
    "rest_request",
    "rest_response",
    "rest_url",
    "serving_module",
    "write_warmup_requests",
]
