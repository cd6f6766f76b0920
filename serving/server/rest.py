"""TF Serving's REST API on port 8501, converted to and from the same protos as gRPC.

    POST /v1/models/NAME[/versions/N | /labels/L]:predict   {"instances": [...]} or {"inputs": ...}
    GET  /v1/models/NAME[/versions/N | /labels/L]           GetModelStatus as JSON
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata  GetModelMetadata as JSON

Binary strings travel as `{"b64": "..."}`; answers are `{"predictions": [...]}` (row format, for
"instances") or `{"outputs": ...}` (columnar, for "inputs"), errors `{"error": "..."}` with TF
Serving's HTTP status for each gRPC code (`http_server.cc`). String outputs whose alias ends in
`_bytes`, or that are not UTF-8, are returned as `{"b64": ...}`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from serving.errors import ServingError
from serving.server import service
from serving.server.manager import ModelRegistry
from serving.tls import ServerTls
from trainer.contract import SERVING_SIGNATURE

_LOG = logging.getLogger(__name__)
# TF Serving's own path patterns (http_rest_api_util.cc).
PREDICT_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(predict)")
STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def model_spec(name: str, version: str | None, label: str | None) -> model_pb2.ModelSpec:
    """The ModelSpec a REST path names (name and label URL-decoded, as TF Serving)."""
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version:
        spec.version.value = int(version)
    elif label:
        spec.version_label = urllib.parse.unquote(label)
    return spec


def _decode(value: Any) -> Any:
    """JSON values to tensor values: {"b64": ...} to bytes, text to UTF-8 bytes, recursively."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError:
                raise _invalid("a \"b64\" value is not valid base64") from None
        raise _invalid(f"unexpected object {sorted(value)} where a value was expected; "
                       'binary values are {"b64": "..."}')
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value.encode("utf-8") if isinstance(value, str) else value


def _tensor(values: Any, dtype: int, name: str) -> Any:
    tf_dtype = tf.dtypes.as_dtype(dtype)
    try:
        array = np.array(values, dtype=object if tf_dtype == tf.string else tf_dtype.as_numpy_dtype)
        return tf.make_tensor_proto(array, dtype=tf_dtype)
    except (TypeError, ValueError) as error:
        raise _invalid(f"input {name} cannot be a {tf_dtype.name} tensor: {error}") from None


def _inputs(body: dict[str, Any], input_names: list[str]) -> dict[str, list[Any]]:
    """{input name: values} from the row ("instances") or columnar ("inputs") format."""
    if ("instances" in body) == ("inputs" in body):
        raise _invalid('JSON object: expected exactly one of "instances" (row format) or '
                       '"inputs" (columnar format)')
    named = None
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise _invalid('"instances" must be a non-empty list')
        if all(isinstance(i, dict) and "b64" not in i for i in instances):
            if any(set(i) != set(input_names) for i in instances):
                raise _invalid(f"every instance must name the inputs {sorted(input_names)}")
            named = {n: [i[n] for i in instances] for n in input_names}
        elif len(input_names) == 1:
            named = {input_names[0]: instances}
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and "b64" not in inputs:
            if set(inputs) != set(input_names):
                raise _invalid(f'"inputs" must name the inputs {sorted(input_names)}')
            named = inputs
        elif len(input_names) == 1:
            named = {input_names[0]: inputs}
    if named is None:
        raise _invalid(f"the signature has inputs {sorted(input_names)}: name them in each "
                       "instance")
    return {name: _decode(values) for name, values in named.items()}


def predict_request(registry: ModelRegistry, spec: model_pb2.ModelSpec,
                    body: dict[str, Any]) -> tuple[predict_pb2.PredictRequest, bool]:
    """The PredictRequest a JSON body means, and whether it used the row format."""
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    signature_name = body.get("signature_name") or SERVING_SIGNATURE
    servable = service.resolve(registry, spec)
    signature = servable.signature_defs.get(signature_name)
    if signature is None:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{signature_name}" not found.')
    request = predict_pb2.PredictRequest(model_spec=spec)
    request.model_spec.signature_name = signature_name
    # Pin the version resolved here, so the prediction uses the signature just read.
    request.model_spec.version.value = servable.version
    for name, values in _inputs(body, sorted(signature.inputs)).items():
        request.inputs[name].CopyFrom(_tensor(values, signature.inputs[name].dtype, name))
    return request, "instances" in body


def _json_value(value: Any, alias: str) -> Any:
    if isinstance(value, list):
        return [_json_value(v, alias) for v in value]
    if isinstance(value, bytes):
        if not alias.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def predict_json(response: predict_pb2.PredictResponse, row_format: bool) -> dict[str, Any]:
    """TF Serving's JSON answer to a predict request."""
    outputs = {alias: _json_value(tf.make_ndarray(proto).tolist(), alias)
               for alias, proto in sorted(response.outputs.items())}
    if not row_format:
        return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{alias: values[i] for alias, values in outputs.items()}
                            for i in range(rows)]}


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict[str, Any]:
    """GetModelMetadata as TF Serving's REST API writes it (proto field names kept)."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[service.SIGNATURE_DEF_FIELD].Unpack(signature_map)
    options = {"preserving_proto_field_name": True, "including_default_value_fields": True}
    return {"model_spec": json_format.MessageToDict(response.model_spec, **options),
            "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)}}


class _Handler(BaseHTTPRequestHandler):
    registry: ModelRegistry
    max_request_bytes: int
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
    timeout = 60  # seconds a connection may stay silent

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            # Handshake here, in this request's thread, not in the accepting one.
            self.request.do_handshake()

    def log_message(self, message_format: str, *args: Any) -> None:
        _LOG.debug("%s " + message_format, self.address_string(), *args)

    def _reply(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, error: Exception) -> None:
        if isinstance(error, ServingError):
            self._reply(HTTP_STATUS.get(error.code, 500), {"error": error.message})
        else:
            _LOG.exception("%s %s failed", self.command, self.path)
            self._reply(500, {"error": f"internal error: {type(error).__name__}: {error}"})

    def _counted(self, method: Any) -> None:
        """Runs `method` as a request in flight; 503 once the server is stopping (UNAVAILABLE,
        as TF Serving): a request read after SIGTERM, e.g. on a kept-alive connection."""
        server: RestServer = self.server
        if not server.begin_request():
            self.close_connection = True
            declared = self.headers.get("Content-Length") or ""
            if declared.isdigit() and int(declared) <= self.max_request_bytes:
                # Read, or closing with unread bytes resets the connection before the answer.
                self.rfile.read(int(declared))
            self._reply(503, {"error": "the server is shutting down; send the request again "
                                       "to a running server"})
            return
        try:
            method()
        finally:
            server.end_request()

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        self._counted(self._get)

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        self._counted(self._post)

    def _get(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        match = STATUS_PATH.fullmatch(path)
        try:
            if not match or not match.group(1):
                raise _invalid(f"Malformed request: GET {path}")
            name, version, label, metadata = match.groups()
            spec = model_spec(name, version, label)
            if metadata:
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    model_spec=spec, metadata_field=[service.SIGNATURE_DEF_FIELD])
                self._reply(200, metadata_json(service.model_metadata(self.registry, request)))
            else:
                request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
                response = service.model_status(self.registry, request)
                self._reply(200, json_format.MessageToDict(
                    response, including_default_value_fields=True))
        except Exception as error:  # noqa: BLE001  (every failure gets a JSON answer)
            self._fail(error)

    def _post(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        match = PREDICT_PATH.fullmatch(path)
        try:
            declared = self.headers.get("Content-Length") or "-1"
            length = int(declared) if declared.lstrip("-").isdigit() else -1
            if length > self.max_request_bytes:
                self.close_connection = True  # the body stays unread
                raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f"request of {length} bytes is larger than the server's "
                                   f"limit of {self.max_request_bytes} bytes")
            if length < 0:
                self.close_connection = True
                raise _invalid("a predict request needs a valid Content-Length header")
            raw = self.rfile.read(length)
            if not match:
                raise _invalid(f"Malformed request: POST {path}")
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise _invalid(f"JSON Parse error: {error}") from None
            name, version, label, _ = match.groups()
            request, row_format = predict_request(self.registry, model_spec(name, version, label),
                                                  body)
            self._reply(200, predict_json(service.predict(self.registry, request), row_format))
        except Exception as error:  # noqa: BLE001  (every failure gets a JSON answer)
            self._fail(error)


class RestServer(ThreadingHTTPServer):
    """The REST endpoint: one thread per connection; `drain` waits for requests in flight."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._in_flight = 0
        self._stopping = False
        self._idle = threading.Condition()
        super().__init__(*args, **kwargs)

    def begin_request(self) -> bool:
        """Counts a request in; False once the server is stopping."""
        with self._idle:
            if self._stopping:
                return False
            self._in_flight += 1
            return True

    def end_request(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def drain(self, timeout_seconds: float) -> int:
        """Stops accepting connections and taking requests, waits up to `timeout_seconds` for
        those in flight; returns how many were still running then."""
        with self._idle:
            self._stopping = True
        self.shutdown()  # the accept loop ends; connection threads go on
        self.server_close()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_seconds)
            return self._in_flight

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops the connection or fails the TLS handshake is not a server error.
        _LOG.debug("connection from %s failed", client_address, exc_info=True)


def make_rest_server(registry: ModelRegistry, host: str, port: int, max_request_bytes: int,
                     tls: ServerTls | None = None) -> RestServer:
    """A bound REST server (call serve_forever); port 0 picks a free port."""
    handler = type("RestHandler", (_Handler,), {"registry": registry,
                                                "max_request_bytes": max_request_bytes})
    server_class = RestServer
    if ":" in host:  # an IPv6 address
        server_class = type("RestServer6", (RestServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler)
    if tls is not None:
        server.socket = tls.ssl_context().wrap_socket(server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
    return server

