"""A local model server on TF Serving's gRPC services and REST API, for machines without TF Serving.

It implements `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus) from `tensorflow-serving-api`'s own protos and
generated servicers, so any TF Serving client works against it unchanged; Classify, Regress,
MultiInference and HandleReloadConfigRequest answer UNIMPLEMENTED.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.errors import ServingError
from serving.server import service
from serving.server.manager import ModelRegistry
from serving.server.rest import RestServer, make_rest_server
from serving.tls import ServerTls

_LOG = logging.getLogger(__name__)
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
Response = TypeVar("Response")


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Where and how to listen. Port 0 picks a free port; `rest_port` None turns REST off."""

    host: str = "127.0.0.1"
    grpc_port: int = 8500
    rest_port: int | None = 8501
    tls: ServerTls | None = None
    # Larger requests fail with RESOURCE_EXHAUSTED before they reach the model.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    threads: int = 16


def _answer(context: grpc.ServicerContext, call: Callable[..., Response], registry: ModelRegistry,
            request: Any) -> Response:
    try:
        return call(registry, request)
    except ServingError as error:
        context.abort(error.code, error.message)
        raise  # abort() raises; this line only tells readers and type checkers so


def _unimplemented(context: grpc.ServicerContext, method: str) -> None:
    context.abort(grpc.StatusCode.UNIMPLEMENTED,
                  f"{method} is not implemented by this server; use Predict")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def Predict(self, request: predict_pb2.PredictRequest,  # noqa: N802  (the service's names)
                context: grpc.ServicerContext) -> predict_pb2.PredictResponse:
        return _answer(context, service.predict, self.registry, request)

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,  # noqa: N802
                         context: grpc.ServicerContext
                         ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _answer(context, service.model_metadata, self.registry, request)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> None:  # noqa: N802
        _unimplemented(context, "Classify")

    def Regress(self, request: Any, context: grpc.ServicerContext) -> None:  # noqa: N802
        _unimplemented(context, "Regress")

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> None:  # noqa: N802
        _unimplemented(context, "MultiInference")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,  # noqa: N802
                       context: grpc.ServicerContext
                       ) -> get_model_status_pb2.GetModelStatusResponse:
        return _answer(context, service.model_status, self.registry, request)

    def HandleReloadConfigRequest(self, request: Any,  # noqa: N802
                                  context: grpc.ServicerContext) -> None:
        _unimplemented(context, "HandleReloadConfigRequest")


def host_port(host: str, port: int) -> str:
    """HOST:PORT, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    """The gRPC server and, unless turned off, the REST server, on one registry of models."""

    def __init__(self, registry: ModelRegistry, options: ServerOptions) -> None:
        self.registry = registry
        self.options = options
        self.grpc_port: int | None = None
        self.rest_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._rest: RestServer | None = None
        self._rest_thread: threading.Thread | None = None

    def _bind_grpc(self) -> int:
        options = self.options
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=options.threads, thread_name_prefix="grpc"),
            options=[("grpc.max_receive_message_length", options.max_request_bytes),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)])  # a port in use is an error, not shared
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.registry), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.registry),
                                                                  server)
        address = host_port(options.host, options.grpc_port)
        try:
            if options.tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, options.tls.grpc_credentials())
        except RuntimeError as error:  # grpcio raises this when it cannot bind
            raise OSError(f"cannot listen on {address} for gRPC ({error})") from None
        if port == 0:
            raise OSError(f"cannot listen on {address} for gRPC (in use or not a local address)")
        self._grpc = server
        return port

    def start(self) -> None:
        """Binds both ports and starts answering; raises OSError when a port cannot be bound."""
        self.grpc_port = self._bind_grpc()
        if self.options.rest_port is not None:
            try:
                self._rest = make_rest_server(self.registry, self.options.host,
                                              self.options.rest_port,
                                              self.options.max_request_bytes, self.options.tls)
            except OSError as error:
                self._grpc.stop(0)
                raise OSError(f"cannot listen on "
                              f"{host_port(self.options.host, self.options.rest_port)} for REST "
                              f"({error.strerror or error})") from None
            self.rest_port = self._rest.server_address[1]
            self._rest_thread = threading.Thread(target=self._rest.serve_forever, name="rest",
                                                 daemon=True)
            self._rest_thread.start()
        self._grpc.start()
        _LOG.info("listening on %s (gRPC)%s", host_port(self.options.host, self.grpc_port),
                  f" and {host_port(self.options.host, self.rest_port)} (REST)"
                  if self.rest_port else "")

    def stop(self, grace_seconds: float = 2.0) -> int:
        """Stops taking requests at once; requests in flight get `grace_seconds` to finish.

        gRPC's `stop(grace)` refuses new calls (UNAVAILABLE) and cancels those still running at
        the deadline; REST refuses new connections and answers 503 to new requests on open
        ones. Returns how many REST requests were still running at the deadline.
        """
        grpc_stopped = self._grpc.stop(grace_seconds) if self._grpc is not None else None
        unfinished = 0
        if self._rest is not None:
            unfinished = self._rest.drain(grace_seconds)
            self._rest = None
        if grpc_stopped is not None:
            grpc_stopped.wait()
            self._grpc = None
        return unfinished
