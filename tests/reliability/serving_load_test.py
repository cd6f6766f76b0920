"""`imgpipe serve` under load: 16 clients, a version pushed mid-load, hostile requests, loopback.

One `imgpipe serve` process (the real console script, default host) serves a real export. 16 gRPC
clients (`serving.client.grpc_client.ServingClient`, one channel each) call it without pause for
STEADY_SECONDS while the server's resident memory is sampled; then the next version is published
with the pusher's own `publish_version` while the clients keep calling, until every client has
been answered by it. Then malformed, empty and oversized requests, each followed by a good one.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import threading
import time

import grpc
import numpy as np
import psutil
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components.serving_pusher.publish import copy_tree, publish_version
from serving.client.grpc_client import ClientOptions, ServingClient
from serving.client.results import ModelTarget

MODEL = "clf"
CLIENTS = 16
STEADY_SECONDS = 30.0
SWAP_SECONDS = 25.0  # at most, after the publication
START_SECONDS = 300
RSS_FACTOR, RSS_SLACK_MB = 1.2, 50.0
MAX_REQUEST_MB = 1


def _images() -> list[bytes]:
    encoded = []
    for seed in range(6):
        pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG" if seed % 2 else "JPEG")
        encoded.append(buffer.getvalue())
    return encoded


@pytest.fixture(scope="module")
def server(two_versions, tmp_path_factory, start_serve):
    """`imgpipe serve` on version 1 of a fresh model folder, default host, free ports."""
    root = tmp_path_factory.mktemp("load")
    base = root / MODEL
    publish_version(str(base), lambda d: copy_tree(str(two_versions[0]), d), keep_versions=2)
    served = start_serve(base, MODEL, root / "serve.log", "--file-system-poll-wait-seconds",
                         "0.5", "--max-request-mb", str(MAX_REQUEST_MB))
    yield served
    served.stop()


@dataclasses.dataclass
class Load:
    answers: list[list[tuple[float, int]]]  # per client: (time, version)
    errors: list[str]
    rss_mb: list[tuple[float, float]]  # (time, MB) during the steady phase
    published_at: float
    ended_at: float
    started_at: float


@pytest.fixture(scope="module")
def load(server, two_versions) -> Load:
    images = _images()
    answers: list[list[tuple[float, int]]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    stop = threading.Event()
    address = f"127.0.0.1:{server.grpc_port}"

    def call(index: int) -> None:
        with ServingClient(address, ClientOptions(timeout_seconds=60)) as client:
            n = index
            while not stop.is_set():
                n += 1
                try:
                    (answer,) = client.predict([images[n % len(images)]], ModelTarget(MODEL))
                except Exception as error:  # noqa: BLE001  (every failure is a finding)
                    errors.append(f"client {index}: {type(error).__name__}: {error}")
                    continue
                answers[index].append((time.monotonic(), answer.model_version))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CLIENTS)]
    process = psutil.Process(server.process.pid)
    rss: list[tuple[float, float]] = []
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        while time.monotonic() - started < STEADY_SECONDS:
            rss.append((time.monotonic() - started, process.memory_info().rss / 2**20))
            time.sleep(0.5)
        published = time.monotonic()
        publish_version(str(server.base), lambda d: copy_tree(str(two_versions[1]), d),
                        keep_versions=2)
        while time.monotonic() - published < SWAP_SECONDS:
            if all(sum(v == 2 for _, v in a) >= 2 for a in answers):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    ended = time.monotonic()
    return Load(answers, errors, rss, published, ended, started)


def test_no_request_failed_under_load_or_during_the_push(load):
    assert load.errors == []
    total = sum(len(a) for a in load.answers)
    steady = sum(t < load.published_at for a in load.answers for t, _ in a)
    print(f"\n{CLIENTS} clients: {total} requests in {load.ended_at - load.started_at:.1f} s, "
          f"{steady / STEADY_SECONDS:.1f}/s steady, 0 failed")
    assert all(len(a) >= 10 for a in load.answers)  # every client was served, repeatedly


def test_memory_stays_flat_under_load(load):
    values = [mb for _, mb in load.rss_mb]
    third = len(values) // 3
    first, last = np.mean(values[:third]), np.mean(values[-third:])
    print(f"\nserver RSS: first third {first:.0f} MB, last third {last:.0f} MB, "
          f"max {max(values):.0f} MB ({len(values)} samples)")
    assert last <= RSS_FACTOR * first + RSS_SLACK_MB


def test_the_pushed_version_takes_over_without_going_back(load):
    for answers in load.answers:
        versions = [v for _, v in answers]
        assert versions == sorted(versions)  # 1 ... 1 2 ... 2, one switch per client
        assert versions[0] == 1 and versions[-1] == 2


def _request(**inputs: tf.Tensor) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(tensor))
    return request


def _cases() -> dict[str, tuple]:
    image = _images()[0]
    oversized = np.array([b"\xff" * (MAX_REQUEST_MB * 2**20 + 1024)], dtype=object)
    nameless = predict_pb2.PredictRequest()
    nameless.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image]))
    return {
        "wrong dtype": (_request(image_bytes=tf.constant([1.5])),
                        grpc.StatusCode.INVALID_ARGUMENT, "to be string but received float"),
        "missing input": (_request(), grpc.StatusCode.INVALID_ARGUMENT,
                          "Missing but required: {image_bytes}"),
        "unknown input": (_request(pixels=tf.constant([image])),
                          grpc.StatusCode.INVALID_ARGUMENT, "Sent extra: {pixels}"),
        "wrong rank": (_request(image_bytes=tf.constant([[image]])),
                       grpc.StatusCode.INVALID_ARGUMENT, "the signature expects [-1]"),
        # What TF Serving answers too: the model's graph cannot stack zero decoded images.
        "empty batch": (_request(image_bytes=tf.constant([], dtype=tf.string)),
                        grpc.StatusCode.INVALID_ARGUMENT, "empty list"),
        "no model name": (nameless, grpc.StatusCode.NOT_FOUND, "Servable not found"),
        "undecodable image": (_request(image_bytes=tf.constant([b"\x89PNG garbage"])),
                              grpc.StatusCode.INVALID_ARGUMENT, ""),
        "oversized": (_request(image_bytes=tf.constant(oversized.astype(bytes))),
                      grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    }


CASES = _cases()


@pytest.fixture(scope="module")
def channel(server, load):  # after the load: these requests must not disturb its figures
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=[
            ("grpc.max_send_message_length", 64 * 2**20)]) as opened:
        yield opened


def _good_request_answers(channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(_request(image_bytes=tf.constant(_images()[1:3])), timeout=60)
    assert tf.make_ndarray(response.outputs["probabilities"]).shape == (2, 2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_requests_get_their_code_and_the_server_keeps_serving(channel, server, case):
    request, code, words = CASES[case]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=60)
    got, details = raised.value.code(), raised.value.details() or ""
    assert got == code, (got, details)
    assert words in details
    assert "\n" not in details  # one line, no graph trace
    _good_request_answers(channel)
    assert server.process.poll() is None


def test_a_request_that_is_not_a_protobuf_is_refused(channel, server):
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                              request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\xff\xfe not a PredictRequest \x00\x01", timeout=30)
    assert raised.value.code() == grpc.StatusCode.INTERNAL  # gRPC's own answer to a bad body
    _good_request_answers(channel)
    assert server.process.poll() is None


def test_it_listens_on_loopback_only_by_default(server):
    listening = [c.laddr for c in psutil.Process(server.process.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert len(listening) == 2  # gRPC and REST
    for address in listening:
        ip = ipaddress.ip_address(address.ip)
        ip = getattr(ip, "ipv4_mapped", None) or ip  # an IPv6 socket on ::ffff:127.0.0.1
        assert ip == ipaddress.ip_address("127.0.0.1"), address
