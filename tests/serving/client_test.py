"""Our gRPC client against the local server: answers, versions, labels, batches, retries, deadlines.

Retries and deadlines are checked against small real gRPC servers whose PredictionService fails
or stalls on purpose, so what is measured is gRPC's own retry policy and deadline handling.
"""

import json
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.client.grpc_client import ClientOptions, RetryPolicy, ServingClient
from serving.client.results import ModelTarget, batches
from serving.errors import ServingError
from serving.server import service
from serving.server.server import ModelServer, ServerOptions

MODEL = "clf"
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.05, max_backoff_seconds=0.1)


@pytest.fixture(scope="module")
def client(grpc_address):
    with ServingClient(grpc_address) as opened:
        yield opened


@pytest.mark.parametrize("target,version", [
    (ModelTarget(MODEL), 2),  # no version: the latest served
    (ModelTarget(MODEL, version=1), 1),
    (ModelTarget(MODEL, version_label="stable"), 1),
    (ModelTarget(MODEL, version_label="canary"), 2),
])
def test_predict_answers_as_the_model_in_process(client, images, expected, target, version):
    names = list(images)
    answers = client.predict([images[n] for n in names], target)
    classes, probabilities = expected(version, names)
    assert [a.class_name for a in answers] == classes
    np.testing.assert_allclose([a.probabilities for a in answers], probabilities, rtol=1e-6)
    assert [a.probability for a in answers] == pytest.approx(probabilities.max(axis=1).tolist())
    assert {a.model_version for a in answers} == {version}


def test_predict_files_reads_the_files_in_order(client, images, expected, tmp_path):
    names = sorted(images)
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(images[name])
        paths.append(tmp_path / name)
    answers = client.predict_files(paths, ModelTarget(MODEL))
    assert [a.class_name for a in answers] == expected(2, names)[0]


def test_model_status_lists_every_version(client):
    assert [(s.version, s.state, s.error_code) for s in client.model_status(MODEL)] == [
        (1, "AVAILABLE", "OK"), (2, "AVAILABLE", "OK")]
    assert [s.version for s in client.model_status(MODEL, version_label="stable")] == [1]


def test_model_metadata_describes_the_signatures(client):
    metadata = client.model_metadata(ModelTarget(MODEL, version=1))
    assert (metadata.model_name, metadata.version) == (MODEL, 1)
    serving = metadata.signatures["serving_default"]
    assert [(t.name, t.dtype, t.shape) for t in serving.inputs] == [
        ("image_bytes", "string", (None,))]
    assert [(t.name, t.dtype, t.shape) for t in serving.outputs] == [
        ("classes", "string", (None,)), ("probabilities", "float32", (None, 3))]
    assert "from_examples" in metadata.signatures


def test_batches_split_a_list_in_order():
    assert [list(b) for b in batches(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        list(batches([1], 0))


def test_long_lists_go_in_batches_under_the_servers_message_limit(registry, images, expected):
    names = list(images)
    encoded = [images[n] for n in names]
    two_largest = sum(sorted(len(e) for e in encoded)[-2:])
    # A server that takes two images per request at most (RESOURCE_EXHAUSTED beyond that).
    small = ModelServer(registry, ServerOptions(grpc_port=0, rest_port=None,
                                                max_request_bytes=two_largest + 1024))
    small.start()
    try:
        address = f"127.0.0.1:{small.grpc_port}"
        with ServingClient(address, ClientOptions(batch_size=2)) as batched:
            answers = batched.predict(encoded, ModelTarget(MODEL))
        assert [a.class_name for a in answers] == expected(2, names)[0]
        with ServingClient(address, ClientOptions(batch_size=len(encoded))) as whole:
            with pytest.raises(ServingError) as raised:
                whole.predict(encoded, ModelTarget(MODEL))
        assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        small.stop(grace_seconds=0)


def test_retry_policy_is_grpc_service_config():
    config = json.loads(RetryPolicy().service_config())["methodConfig"][0]
    assert {n["service"] for n in config["name"]} == {
        "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"}
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["retryPolicy"]["maxAttempts"] == 5
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=9)


class _Flaky(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Fails the first `failures` calls with `code`, then answers as the real service."""

    def __init__(self, registry, failures, code, delay=0.0):
        self.registry, self.failures, self.code, self.delay = registry, failures, code, delay
        self.calls = 0
        self.lock = threading.Lock()

    def Predict(self, request, context):  # noqa: N802  (the service's name)
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.failures
        time.sleep(self.delay)
        if failing:
            context.abort(self.code, "not now")
        return service.predict(self.registry, request)


@pytest.fixture
def flaky_server(registry):
    servers = []

    def start(failures, code, delay=0.0):
        servicer = _Flaky(registry, failures, code, delay)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return servicer, f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def test_unavailable_is_retried_with_backoff_until_it_answers(flaky_server, images, expected):
    servicer, address = flaky_server(2, grpc.StatusCode.UNAVAILABLE)
    with ServingClient(address, ClientOptions(retry=FAST_RETRY)) as client:
        answers = client.predict([images["star.png"]], ModelTarget(MODEL))
    assert servicer.calls == 3
    assert answers[0].class_name == expected(2, ["star.png"])[0][0]


def test_retries_stop_at_max_attempts(flaky_server, images):
    servicer, address = flaky_server(100, grpc.StatusCode.UNAVAILABLE)
    with ServingClient(address, ClientOptions(retry=FAST_RETRY)) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([images["star.png"]], ModelTarget(MODEL))
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == FAST_RETRY.max_attempts


def test_other_errors_are_not_retried(flaky_server, images):
    servicer, address = flaky_server(1, grpc.StatusCode.INVALID_ARGUMENT)
    with ServingClient(address, ClientOptions(retry=FAST_RETRY)) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([images["star.png"]], ModelTarget(MODEL))
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert servicer.calls == 1


def test_every_call_has_a_deadline(flaky_server, images):
    _, address = flaky_server(0, grpc.StatusCode.OK, delay=3.0)
    started = time.monotonic()
    with ServingClient(address, ClientOptions(timeout_seconds=0.3)) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([images["star.png"]], ModelTarget(MODEL))
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.0


def test_a_version_and_a_label_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        ModelTarget(MODEL, version=1, version_label="stable")
