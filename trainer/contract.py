"""The names the pipeline's parts agree on, defined once; no TensorFlow import.

The ExampleGen writes these features, Transform and the Trainer read them, the exported model's
signatures take and return them, and the pusher, the load check, the clients and the run summary
call them by these names. Every package may import this module (see docs/development.md).
"""

from __future__ import annotations

import logging

# How the head reads the base's output (`HParams.pooling`; the Tuner's space may search both).
POOLINGS = ("flatten", "avg")

# Features of the ExampleGen's tf.Examples.
IMAGE_BYTES = "image_bytes"  # the original encoded file, never decoded pixels
LABEL = "label"  # int64 class index, in the order of the class names
LABEL_NAME = "label_name"  # the class folder's name; its schema domain lists the class names
FILENAME = "filename"  # the path relative to the data folder
HEIGHT = "height"
WIDTH = "width"
FORMAT = "format"

# Transform's output feature: the image resized to the model's input, as PNG bytes.
TRANSFORMED_IMAGE = "image_png"

# The exported model's signatures and their inputs and outputs.
SERVING_SIGNATURE = "serving_default"  # TF Serving's Predict: image_bytes -> classes
EXAMPLES_SIGNATURE = "from_examples"  # TFMA and InfraValidator: serialized tf.Examples
EXAMPLES_INPUT = "examples"
PROBABILITIES = "probabilities"
CLASSES = "classes"
PROBABILITY = "probability"  # from_examples' output: the head's own output

# The TFX module files, and the keys of the custom_config they receive.
PREPROCESSING_FN = "trainer.transform.preprocessing_fn"
RUN_FN = "trainer.run.run_fn"
TUNER_FN = "trainer.tune.tuner_fn"  # the Tuner's (--tune): a search on the bottleneck cache
# DataAudit loads this by name (as TFX loads RUN_FN): (hparams config, max pixels, the folder
# for the eval split's head features) -> an embedder: (images[, labels]) -> features; .finish().
EMBED_FN = "trainer.embed.make_embedder"
HPARAMS_KEY = "hparams"  # Trainer and Tuner: HParams.to_config()
TUNE_KEY = "tune"  # Tuner: TuneConfig.to_config() (trials, algorithm, search space)
IMAGE_SIZE_KEY = "image_size"  # Transform: the model's input size in pixels
MAX_PIXELS_KEY = "max_pixels"  # Transform: the largest image decoded, in training and serving
EVAL_FEATURES_KEY = "eval_features"  # Trainer: the folder of DataAudit's eval features, if any
MAX_ROWS_KEY = "max_request_images"  # Trainer: images per request to the serving signature
DEFAULT_MAX_PIXELS = 50_000_000  # the ingest's --max-pixels default
DEFAULT_MAX_ROWS = 32  # as `imgpipe serving-config --max-batch-size` and the clients' batch

# Files the Trainer writes beside the model (its model_run folder) and inside the SavedModel.
HISTORY_FILE = "history.json"
DEVICE_PLAN_KEY = "device_plan"  # in HISTORY_FILE: what the device plan chose (GPUs, precision...)
INPUT_SCALING_KEY = "input_scaling"  # in HISTORY_FILE: how the base is fed, and how it was decided
HPARAMS_FILE = "assets.extra/hparams.json"  # TF Serving ignores assets.extra/ files
SERVING_SUBDIR = "Format-Serving"  # where TFX's Trainer puts its serving_model_dir

# Progress records that `imgpipe run` shows on the terminal. Three extra record attributes drive
# its ingestion bar: INGEST_TOTAL (images the ExampleGen will read; it starts a bar), INGEST_FOUND
# (images a listing step found, added to the total: the files are listed inside Beam) and
# INGEST_DONE (images read since the previous such record).
PROGRESS_LOGGER = "imgpipe.progress"
INGEST_TOTAL = "imgpipe_ingest_total"
INGEST_FOUND = "imgpipe_ingest_found"
INGEST_DONE = "imgpipe_ingest_done"


def progress_logger() -> logging.Logger:
    """The logger whose records `imgpipe run` shows on the terminal."""
    return logging.getLogger(PROGRESS_LOGGER)
