"""TF Serving's warmup file: real eval images as Predict requests, replayed when a version loads.

With `--enable_model_warmup` (on by default) TF Serving reads
`<version>/assets.extra/tf_serving_warmup_requests`, a TFRecord file of `PredictionLog`s, and runs
each request before the version takes traffic, so the first client does not pay for lazy
initialisation (graph optimisation, kernel selection, memory pools).
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from components.image_example_gen import reader
from trainer.contract import IMAGE_BYTES, SERVING_SIGNATURE

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
# TF Serving refuses to load a version whose warmup file holds more records than this.
MAX_WARMUP_REQUESTS = 1000


def check_count(warmup_requests: int) -> None:
    """Raises ValueError unless 0 <= warmup_requests <= MAX_WARMUP_REQUESTS."""
    if not 0 <= warmup_requests <= MAX_WARMUP_REQUESTS:
        raise ValueError(f"warmup_requests must be in [0, {MAX_WARMUP_REQUESTS}] "
                         f"(TF Serving's limit), got {warmup_requests}")


def read_images(split_dir: str, limit: int, feature: str = IMAGE_BYTES) -> list[bytes]:
    """Up to `limit` (at most TF Serving's limit) encoded eval images for warmup requests."""
    check_count(limit)
    return reader.read_split_images(split_dir, limit, feature)


def prediction_log(image: bytes, model_name: str, signature_name: str = SERVING_SIGNATURE,
                   input_name: str = IMAGE_BYTES) -> prediction_log_pb2.PredictionLog:
    """One Predict request for one image: a string tensor of shape [1]."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string, shape=[1]))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))


def warmup_path(model_dir: str) -> str:
    """Where TF Serving looks for a SavedModel's warmup requests."""
    return os.path.join(model_dir, ASSETS_EXTRA, WARMUP_FILE)


def write_warmup_file(model_dir: str, images: list[bytes], model_name: str) -> str | None:
    """Writes one request per image into the SavedModel at `model_dir`; None when no images."""
    check_count(len(images))
    if not images:
        return None
    path = warmup_path(model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    # Uncompressed: TF Serving reads the warmup file as a plain TFRecord file.
    with tf.io.TFRecordWriter(path) as writer:
        for image in images:
            writer.write(prediction_log(image, model_name).SerializeToString())
    return path
