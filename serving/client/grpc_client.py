"""A TF Serving gRPC client for the image classifier: predict, model status and model metadata.

Every call has a deadline. Calls that fail with UNAVAILABLE (server restarting, connection
refused, a load balancer between replicas) are retried with exponential backoff by gRPC itself,
from the channel's service config (`retryPolicy`), within that deadline. Images are sent in
batches of `batch_size`, one Predict call per batch, so a long list never becomes one huge
message; message limits are raised above gRPC's 4 MiB default for image batches, and so is the
retry buffer (a request larger than that buffer would silently not be retried).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from serving.client.results import (
    ModelMetadata,
    ModelTarget,
    Prediction,
    VersionStatus,
    batches,
    metadata_from_response,
    predict_request,
    predictions_from_response,
    statuses_from_response,
)
from serving.errors import ServingError
from serving.tls import ClientTls

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
Response = TypeVar("Response")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """gRPC's retryPolicy for UNAVAILABLE (gRPC caps max_attempts at 5)."""

    max_attempts: int = 5
    initial_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 2.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be 2 to 5 (gRPC's limit), got {self.max_attempts}")
        if self.initial_backoff_seconds <= 0 or self.max_backoff_seconds <= 0:
            raise ValueError("backoff times must be positive")
        if self.backoff_multiplier <= 0:
            raise ValueError("backoff_multiplier must be positive")

    def service_config(self) -> str:
        """The channel's service config JSON, retrying every method of TF Serving's services."""
        return json.dumps({"methodConfig": [{
            "name": [{"service": service} for service in SERVICES],
            "retryPolicy": {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff_seconds}s",
                "maxBackoff": f"{self.max_backoff_seconds}s",
                "backoffMultiplier": self.backoff_multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]})


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """Deadline per call, images per Predict call, message limit, retries and TLS."""

    timeout_seconds: float = 30.0
    batch_size: int = 32
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    tls: ClientTls | None = None

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")


def channel_options(options: ClientOptions) -> list[tuple[str, Any]]:
    """The gRPC channel arguments these options mean."""
    channel = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", options.retry.service_config()),
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.per_rpc_retry_buffer_size", options.max_message_bytes),
    ]
    if options.tls is not None and options.tls.server_name:
        channel.append(("grpc.ssl_target_name_override", options.tls.server_name))
    return channel


class ServingClient:
    """A client of one TF Serving (or `imgpipe serve`) gRPC address, HOST:PORT."""

    def __init__(self, address: str, options: ClientOptions | None = None) -> None:
        self.address = address
        self.options = options or ClientOptions()
        arguments = channel_options(self.options)
        if self.options.tls is None:
            self._channel = grpc.insecure_channel(address, options=arguments)
        else:
            self._channel = grpc.secure_channel(address, self.options.tls.grpc_credentials(),
                                                options=arguments)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def _call(self, method: Callable[..., Response], request: Any) -> Response:
        try:
            return method(request, timeout=self.options.timeout_seconds)
        except grpc.RpcError as error:
            raise ServingError(error.code(), error.details() or "") from None

    def predict(self, images: Sequence[bytes], target: ModelTarget) -> list[Prediction]:
        """Class and probabilities for each encoded image (JPEG, PNG, BMP or GIF), in order."""
        answers: list[Prediction] = []
        for batch in batches(images, self.options.batch_size):
            response = self._call(self._predictions.Predict, predict_request(batch, target))
            answers.extend(predictions_from_response(response))
        return answers

    def predict_files(self, paths: Sequence[str | Path], target: ModelTarget) -> list[Prediction]:
        """`predict` on image files, read one batch at a time."""
        answers: list[Prediction] = []
        for batch in batches(list(paths), self.options.batch_size):
            answers.extend(self.predict([Path(p).read_bytes() for p in batch], target))
        return answers

    def model_status(self, name: str, version: int | None = None,
                     version_label: str | None = None) -> list[VersionStatus]:
        """Every version's state (ModelService.GetModelStatus), or one version's."""
        target = ModelTarget(name, version=version, version_label=version_label)
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=target.model_spec(with_signature=False))
        return statuses_from_response(self._call(self._models.GetModelStatus, request))

    def model_metadata(self, target: ModelTarget) -> ModelMetadata:
        """The signatures' inputs and outputs (GetModelMetadata, field `signature_def`)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=target.model_spec(with_signature=False), metadata_field=["signature_def"])
        return metadata_from_response(self._call(self._predictions.GetModelMetadata, request))
