"""What the clients ask for and what they return, the same for gRPC and REST."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from serving.errors import status_code
from trainer.contract import CLASSES, IMAGE_BYTES, PROBABILITIES, SERVING_SIGNATURE

Item = TypeVar("Item")


@dataclasses.dataclass(frozen=True)
class ModelTarget:
    """Which model, version (a number or a label; neither means the latest) and signature."""

    name: str
    version: int | None = None
    version_label: str | None = None
    signature_name: str = SERVING_SIGNATURE

    def __post_init__(self) -> None:
        if self.version is not None and self.version_label is not None:
            raise ValueError("give a version or a version label, not both")

    def model_spec(self, with_signature: bool = True) -> model_pb2.ModelSpec:
        """TF Serving's ModelSpec for this target."""
        spec = model_pb2.ModelSpec(name=self.name)
        if with_signature:
            spec.signature_name = self.signature_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label is not None:
            spec.version_label = self.version_label
        return spec


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One image's answer: the predicted class, its probability, and every class's."""

    class_name: str
    probability: float
    probabilities: tuple[float, ...]
    model_version: int | None


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version's state as GetModelStatus reports it (error_code 'OK' when healthy)."""

    version: int
    state: str
    error_code: str
    error_message: str


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A signature input or output: its name, dtype and shape (None for an unknown size)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """One signature's inputs and outputs."""

    name: str
    method_name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """GetModelMetadata's answer: the version that answered and its signatures."""

    model_name: str
    version: int
    signatures: dict[str, SignatureInfo]


def batches(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """`items` in consecutive slices of at most `size`."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict_request(images: Sequence[bytes], target: ModelTarget) -> predict_pb2.PredictRequest:
    """A Predict request for encoded images: one string tensor of shape [N]."""
    request = predict_pb2.PredictRequest(model_spec=target.model_spec())
    request.inputs[IMAGE_BYTES].CopyFrom(
        tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)]))
    request.output_filter.extend([CLASSES, PROBABILITIES])
    return request


def predictions(classes: Sequence[bytes | str],
                probabilities: np.ndarray | Sequence[Sequence[float]],
                version: int | None) -> list[Prediction]:
    """Predictions from the signature's `classes` [N] and `probabilities` [N, C]."""
    if len(classes) != len(probabilities):
        raise ValueError(f"the server answered {len(classes)} classes for "
                         f"{len(probabilities)} rows of probabilities")
    answers = []
    for name, row in zip(classes, probabilities, strict=True):
        values = tuple(float(p) for p in row)
        answers.append(Prediction(class_name=name.decode() if isinstance(name, bytes) else name,
                                  probability=max(values), probabilities=values,
                                  model_version=version))
    return answers


def predictions_from_response(response: predict_pb2.PredictResponse) -> list[Prediction]:
    """Predictions from a PredictResponse of the image signature."""
    missing = {CLASSES, PROBABILITIES} - set(response.outputs)
    if missing:
        raise ValueError(f"the answer has no {', '.join(sorted(missing))} output; is this an "
                         "image classifier exported by imgpipe?")
    spec = response.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return predictions(tf.make_ndarray(response.outputs[CLASSES]).tolist(),
                       tf.make_ndarray(response.outputs[PROBABILITIES]), version)


def statuses_from_response(response: get_model_status_pb2.GetModelStatusResponse
                           ) -> list[VersionStatus]:
    """Version states from a GetModelStatusResponse."""
    state_names = get_model_status_pb2.ModelVersionStatus.State
    return [VersionStatus(version=s.version, state=state_names.Name(s.state),
                          error_code=status_code(s.status.error_code).name,
                          error_message=s.status.error_message)
            for s in response.model_version_status]


def _tensor_info(name: str, info: meta_graph_pb2.TensorInfo) -> TensorInfo:
    shape = None if info.tensor_shape.unknown_rank else tuple(
        None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    # DT_INVALID (0) marks an operation rather than a tensor, e.g. `__saved_model_init_op`.
    dtype = tf.dtypes.as_dtype(info.dtype).name if info.dtype else "none"
    return TensorInfo(name=name, dtype=dtype, shape=shape)


def metadata_from_response(response: get_model_metadata_pb2.GetModelMetadataResponse
                           ) -> ModelMetadata:
    """Signatures from a GetModelMetadataResponse with the `signature_def` field."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(signature_map):
        raise ValueError("the metadata's signature_def field is not a SignatureDefMap")
    signatures = {
        name: SignatureInfo(
            name=name, method_name=sig.method_name,
            inputs=tuple(_tensor_info(k, v) for k, v in sorted(sig.inputs.items())),
            outputs=tuple(_tensor_info(k, v) for k, v in sorted(sig.outputs.items())))
        for name, sig in sorted(signature_map.signature_def.items())}
    return ModelMetadata(model_name=response.model_spec.name,
                         version=response.model_spec.version.value, signatures=signatures)
