"""Using the pushed model: TF Serving's layout and clients."""

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
