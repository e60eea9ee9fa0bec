"""keras-transformer: transformer language models as Keras 3 layers, from first principles.

Subpackages:
- `keras_transformer.layers`: embeddings, positional encodings, attention, blocks and heads.
- `keras_transformer.models`: BERT-style, GPT-style and encoder-decoder models.
- `keras_transformer.text`: in-graph tokenizers (core TensorFlow ops only), packing, masking.
- `keras_transformer.data`: built-in datasets (tensorflow-datasets builders) and pipelines.
"""

# First: on our command lines (`python -m keras_transformer.data`, `python -m workflows`, ...),
# hide TensorFlow's C++ start-up lines before anything imports TensorFlow (see `_quiet`).
from keras_transformer import _quiet

_quiet.quiet_if_our_command()

from keras_transformer import layers, models  # noqa: E402

__version__ = "0.1.0"

__all__ = ["layers", "models", "__version__"]
