"""Each refusal carries TF Serving's status code (gRPC) and HTTP status (REST) and message."""

import base64
import json
import urllib.error
import urllib.request

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.client.grpc_client import ServingClient
from serving.client.rest_client import RestClient
from serving.client.results import ModelTarget
from serving.errors import ServingError, short_message
from serving.server.server import ModelServer, ServerOptions

MODEL = "clf"


def _request(images, name=MODEL, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
    return request


def _with_input(images, input_name="image_bytes", dtype=tf.string, shape=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(images, dtype=dtype, shape=shape))
    return request


CASES = {
    "unknown model": (lambda img: _request([img], name="nope"),
                      grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    "unknown version": (lambda img: _request([img], version=7),
                        grpc.StatusCode.NOT_FOUND, "Specific(clf, 7)"),
    "unknown label": (lambda img: _request([img], version_label="beta"),
                      grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label"),
    "undecodable image": (lambda img: _request([img, b"not an image"]),
                          grpc.StatusCode.INVALID_ARGUMENT, "not a JPEG, PNG, BMP or GIF image"),
    "unknown input": (lambda img: _with_input([img], input_name="pixels"),
                      grpc.StatusCode.INVALID_ARGUMENT, "Sent extra: {pixels}"),
    "wrong dtype": (lambda img: _with_input([1.0], dtype=tf.float32),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Expected input image_bytes to be string but received float32"),
    "wrong shape": (lambda img: _with_input([[img]], shape=[1, 1]),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "input image_bytes has shape [1,1], the signature expects [-1]"),
    "unknown signature": (lambda img: _request([img], signature_name="classify_me"),
                          grpc.StatusCode.FAILED_PRECONDITION,
                          'Serving signature key "classify_me" not found.'),
}


@pytest.fixture(scope="module")
def stub(grpc_address):
    with grpc.insecure_channel(grpc_address) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.mark.parametrize("case", sorted(CASES))
def test_predict_refusals_have_tf_servings_codes(stub, images, case):
    make, code, message = CASES[case]
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(make(images["circle.jpeg"]), 10.0)
    assert raised.value.code() == code
    assert message in raised.value.details()
    assert "\n" not in raised.value.details()  # one line, no graph trace


def test_status_of_an_unknown_model_or_version_is_not_found(grpc_address):
    with grpc.insecure_channel(grpc_address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        for spec, message in (({"name": "nope"}, "Could not find any versions of model nope"),
                              ({"name": MODEL, "version": 9}, "Could not find version 9")):
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = spec["name"]
            if "version" in spec:
                request.model_spec.version.value = spec["version"]
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetModelStatus(request, 10.0)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert message in raised.value.details()


def test_an_oversized_request_is_resource_exhausted(grpc_address, server, images):
    # The session's server takes requests up to its limit (64 MiB by default); one byte more
    # is refused by gRPC itself, before the model sees it.
    oversized = b"\xff" * (server.options.max_request_bytes + 1)
    with ServingClient(grpc_address) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([oversized], ModelTarget(MODEL))
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_our_client_reports_the_code_and_message(grpc_address, images):
    with ServingClient(grpc_address) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([b"GIF89a\x01\x00\x01\x00 broken"], ModelTarget(MODEL))  # 1x1
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message.startswith("Invalid GIF data")


def _post(rest_address, path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{rest_address}{path}", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _b64(data):
    return {"b64": base64.b64encode(data).decode()}


@pytest.mark.parametrize("path,body,status,message", [
    ("/v1/models/nope:predict", "ok", 404, "Latest(nope)"),
    ("/v1/models/clf/versions/7:predict", "ok", 404, "Specific(clf, 7)"),
    ("/v1/models/clf/labels/beta:predict", "ok", 400, "Unrecognized servable version label"),
    ("/v1/models/clf:predict", "bad image", 400, "not a JPEG, PNG, BMP or GIF image"),
    ("/v1/models/clf:predict", b"{not json", 400, "JSON Parse error"),
    ("/v1/models/clf:predict", {"instances": []}, 400, "non-empty"),
    ("/v1/models/clf:predict", {"instances": [{"pixels": 1}]}, 400, "image_bytes"),
    ("/v1/models/clf:predict", {"instances": [{"b64": "%%%"}]}, 400, "base64"),
    ("/v1/models/clf:predict", {"signature_name": "x", "instances": [1]}, 400,
     'Serving signature key "x" not found.'),
    ("/v1/models/clf:explain", "ok", 400, "Malformed request"),
])
def test_rest_refusals_have_tf_servings_http_status(rest_address, images, path, body, status,
                                                   message):
    if body == "ok":
        body = {"instances": [_b64(images["circle.png"])]}
    elif body == "bad image":
        body = {"instances": [_b64(b"not an image")]}
    code, answer = _post(rest_address, path, body)
    assert code == status
    assert message in answer["error"]


def test_rest_status_of_an_unknown_model_is_404(rest_address):
    with pytest.raises(ServingError) as raised:
        RestClient(rest_address).model_status("nope")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_an_oversized_rest_request_is_refused_unread(registry, images):
    small = ModelServer(registry, ServerOptions(grpc_port=0, rest_port=0, max_request_bytes=2000))
    small.start()
    try:
        body = {"instances": [_b64(images["circle.png"])] * 4}
        code, answer = _post(f"127.0.0.1:{small.rest_port}", "/v1/models/clf:predict", body)
    finally:
        small.stop(grace_seconds=0)
    assert code == 429  # TF Serving's HTTP status for RESOURCE_EXHAUSTED
    assert "larger than the server's limit of 2000 bytes" in answer["error"]


def test_short_message_keeps_the_kernels_words():
    message = ("Graph execution error:\n\nDetected at node DecodeImage defined at (most recent "
               "call last):\n  File \"x.py\", line 1\n\nUnknown image file format. One of JPEG, "
               "PNG, GIF, BMP required.\n\t [[{{node DecodeImage}}]] [Op:__inference_fn_12]")
    assert short_message(message) == "Unknown image file format. One of JPEG, PNG, GIF, BMP " \
                                     "required."


def test_a_port_in_use_is_refused(registry, server):
    for options in (ServerOptions(grpc_port=server.grpc_port, rest_port=None),
                    ServerOptions(grpc_port=0, rest_port=server.rest_port)):
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1:"):
            ModelServer(registry, options).start()
