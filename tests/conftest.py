"""Shared test set-up: Keras 2 is chosen before any test imports TensorFlow."""

import os

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
