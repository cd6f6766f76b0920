"""One model version loaded for serving: its functions, and the SignatureDefs TF Serving reports.

TF Serving answers GetModelMetadata with the SignatureDefs of the SavedModel's `serve`
MetaGraphDef as written in `saved_model.pb` (including `__saved_model_init_op`), so they are read
from that file, not reconstructed from the loaded Python object.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf
from google.protobuf import message
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.layout import SAVED_MODEL_PB

SERVE_TAG = tf.saved_model.SERVING  # "serve"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_REQUESTS = 1000  # TF Serving refuses a version whose warmup file holds more


@dataclasses.dataclass(frozen=True)
class Servable:
    """A loaded version: the signatures' functions and their SignatureDefs."""

    name: str
    version: int
    path: str
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., Mapping[str, tf.Tensor]]]
    # What tf.saved_model.load returned: the functions need it (and its variables) alive.
    loaded: Any = dataclasses.field(repr=False, compare=False)


def read_signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the `serve` MetaGraphDef in `path`/saved_model.pb."""
    file = os.path.join(path, SAVED_MODEL_PB)
    with tf.io.gfile.GFile(file, "rb") as f:
        try:
            saved_model = saved_model_pb2.SavedModel.FromString(f.read())
        except (message.DecodeError, RuntimeWarning, SystemError) as error:
            # Garbage raises DecodeError, or a RuntimeWarning that -W error turns into these.
            raise ValueError(f"{file} is not a SavedModel ({type(error).__name__})") from None
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{file} is not a SavedModel with a {SERVE_TAG!r} MetaGraphDef")


def load_servable(name: str, version: int, path: str) -> Servable:
    """Loads one version completely; raises whatever TensorFlow raises when it cannot."""
    signature_defs = read_signature_defs(path)
    loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
    return Servable(name=name, version=version, path=path, signature_defs=signature_defs,
                    functions=dict(loaded.signatures), loaded=loaded)


def read_warmup_requests(path: str) -> list[predict_pb2.PredictRequest]:
    """The Predict requests in a version's warmup file ([] when it has none), as TF Serving."""
    warmup = os.path.join(path, WARMUP_FILE)
    if not tf.io.gfile.exists(warmup):
        return []
    requests = []
    for record in tf.data.TFRecordDataset(warmup):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{warmup} holds a {log.WhichOneof('log_type')} record; only Predict "
                             "warmup requests are supported")
        requests.append(log.predict_log.request)
        if len(requests) > MAX_WARMUP_REQUESTS:
            raise ValueError(f"{warmup} holds more than {MAX_WARMUP_REQUESTS} records "
                             "(TF Serving's limit)")
    return requests
