"""The REST counterpart of the gRPC client, for TF Serving's port 8501 (standard library only).

Images travel base64-encoded as `{"b64": ...}`, as TF Serving's JSON API wants binary strings;
status and metadata JSON are read back into TF Serving's protos and then into the same results
as the gRPC client's. A REST answer carries no model version, so predictions have none.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.client.results import (
    CLASSES,
    PROBABILITIES,
    ModelMetadata,
    ModelTarget,
    Prediction,
    VersionStatus,
    batches,
    metadata_from_response,
    predictions,
    statuses_from_response,
)
from serving.errors import ServingError
from serving.tls import ClientTls

# The gRPC code behind each HTTP status TF Serving answers with (400 also means
# FAILED_PRECONDITION and OUT_OF_RANGE; the message says which).
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
          409: grpc.StatusCode.ABORTED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          429: grpc.StatusCode.RESOURCE_EXHAUSTED, 501: grpc.StatusCode.UNIMPLEMENTED,
          503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}


def model_path(target: ModelTarget) -> str:
    """/v1/models/NAME[/versions/N | /labels/L], names URL-encoded."""
    path = f"/v1/models/{urllib.parse.quote(target.name, safe='')}"
    if target.version is not None:
        path += f"/versions/{target.version}"
    elif target.version_label is not None:
        path += f"/labels/{urllib.parse.quote(target.version_label, safe='')}"
    return path


class RestClient:
    """A client of one TF Serving REST address, HOST:PORT (HTTPS when `tls` is given)."""

    def __init__(self, address: str, timeout_seconds: float = 30.0, batch_size: int = 32,
                 tls: ClientTls | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.base_url = f"{'https' if tls else 'http'}://{address}"
        self.timeout_seconds = timeout_seconds
        self.batch_size = batch_size
        self._context: ssl.SSLContext | None = tls.ssl_context() if tls else None

    def _request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data,
                                         method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds,
                                        context=self._context) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", "")
            except ValueError:
                message = error.reason
            raise ServingError(_CODES.get(error.code, grpc.StatusCode.UNKNOWN),
                               str(message)) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise self._timed_out() from None
            raise ServingError(grpc.StatusCode.UNAVAILABLE, str(error.reason)) from None
        except TimeoutError:
            raise self._timed_out() from None
        except (OSError, http.client.HTTPException) as error:  # reset, TLS refused, ...
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               f"{type(error).__name__}: {error}") from None

    def _timed_out(self) -> ServingError:
        return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"no answer from {self.base_url} within {self.timeout_seconds} s")

    def predict(self, images: Sequence[bytes], target: ModelTarget) -> list[Prediction]:
        """Class and probabilities for each encoded image, in order (POST ...:predict)."""
        answers: list[Prediction] = []
        for batch in batches(images, self.batch_size):
            body = {"signature_name": target.signature_name,
                    "instances": [{"b64": base64.b64encode(image).decode("ascii")}
                                  for image in batch]}
            rows = self._request(model_path(target) + ":predict", body)["predictions"]
            if not all(isinstance(r, dict) and {CLASSES, PROBABILITIES} <= set(r) for r in rows):
                raise ValueError(f"the answer has no {CLASSES} and {PROBABILITIES} outputs; is "
                                 "this an image classifier exported by imgpipe?")
            answers.extend(predictions([r[CLASSES] for r in rows],
                                       [r[PROBABILITIES] for r in rows], None))
        return answers

    def predict_files(self, paths: Sequence[str | Path], target: ModelTarget) -> list[Prediction]:
        """`predict` on image files."""
        answers: list[Prediction] = []
        for batch in batches(list(paths), self.batch_size):
            answers.extend(self.predict([Path(p).read_bytes() for p in batch], target))
        return answers

    def model_status(self, name: str, version: int | None = None,
                     version_label: str | None = None) -> list[VersionStatus]:
        """Every version's state, or one version's (GET /v1/models/NAME...)."""
        document = self._request(model_path(ModelTarget(name, version, version_label)))
        response = json_format.ParseDict(document, get_model_status_pb2.GetModelStatusResponse())
        return statuses_from_response(response)

    def model_metadata(self, target: ModelTarget) -> ModelMetadata:
        """The signatures' inputs and outputs (GET /v1/models/NAME.../metadata)."""
        document = self._request(model_path(target) + "/metadata")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        json_format.ParseDict(document["model_spec"], response.model_spec)
        signature_map = json_format.ParseDict(document["metadata"]["signature_def"],
                                              get_model_metadata_pb2.SignatureDefMap())
        response.metadata["signature_def"].Pack(signature_map)
        return metadata_from_response(response)
