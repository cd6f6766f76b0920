"""Versions pushed while clients are calling: picked up, switched atomically, never a failed call.

One scenario runs once for the module, with real loads and real gRPC: four clients call a server
polling every 0.1 s; our pusher (`publish_version`, the ServingPusher's own function) publishes
version 2 and retires version 1, then a version 3 whose saved_model.pb is truncated. The tests
read what the clients and the server's log saw.
"""

import dataclasses
import itertools
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from components.serving_pusher.publish import copy_tree, publish_version
from serving.client.grpc_client import ClientOptions, ServingClient
from serving.client.results import ModelTarget
from serving.server.manager import ModelRegistry, ModelSource, State
from serving.server.server import ModelServer, ServerOptions

MODEL = "clf"
CLIENTS = 4
PAUSE_SECONDS = 0.05
TIMEOUT_SECONDS = 180  # loads take seconds; a loaded CI machine may take many


@dataclasses.dataclass
class Scenario:
    # Per client, in order: (version, image name, class name, probabilities).
    answers: list[list[tuple[int, str, str, tuple[float, ...]]]]
    errors: list[BaseException]
    states: dict
    log: list[str]
    base: Path


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _wait(condition, what):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _truncated_copy(source: Path):
    """A version whose saved_model.pb was cut short, as an interrupted copy leaves it."""

    def write(directory: str) -> None:
        copy_tree(str(source), directory)
        graph = Path(directory, "saved_model.pb")
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])

    return write


@pytest.fixture(scope="module")
def scenario(link_versions, model_store, images, tmp_path_factory):
    base = link_versions(tmp_path_factory.mktemp("swap") / MODEL, (1,))
    logger = logging.getLogger("serving.server.manager")
    collect, saved_level = _Collect(), logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    registry = ModelRegistry([ModelSource(MODEL, str(base))], poll_seconds=0.1)
    registry.load()
    server = ModelServer(registry, ServerOptions(grpc_port=0, rest_port=None))
    server.start()
    registry.start_polling()
    answers = [[] for _ in range(CLIENTS)]
    errors = []
    stop = threading.Event()

    def call(index):
        names = itertools.cycle(sorted(images))
        with ServingClient(f"127.0.0.1:{server.grpc_port}",
                           ClientOptions(timeout_seconds=60)) as client:
            while not stop.is_set():
                name = next(names)
                try:
                    (answer,) = client.predict([images[name]], ModelTarget(MODEL))
                except BaseException as error:  # noqa: BLE001  (every failure is a finding)
                    errors.append(error)
                    return
                answers[index].append((answer.model_version, name, answer.class_name,
                                       answer.probabilities))
                # Steady traffic, not a saturating one: the loads need the CPU too.
                stop.wait(PAUSE_SECONDS)

    def seen(version, count):
        return all(sum(a[0] == version for a in client) >= count for client in answers) \
            or errors

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        _wait(lambda: seen(1, 3), "answers from version 1")
        publish_version(str(base), lambda d: copy_tree(str(model_store / "2"), d),
                        keep_versions=1)
        _wait(lambda: seen(2, 3), "answers from version 2")
        publish_version(str(base), _truncated_copy(model_store / "2"), keep_versions=2)
        manager = registry.managers[MODEL]
        _wait(lambda: manager.states().get(3) is not None
              and manager.states()[3].error_message, "version 3 to fail")
        counts = [len(a) for a in answers]
        _wait(lambda: all(len(a) >= c + 3 for a, c in zip(answers, counts, strict=True))
              or errors, "answers after version 3 failed")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop(grace_seconds=0)
        registry.stop()
        logger.removeHandler(collect)
        logger.setLevel(saved_level)
    return Scenario(answers, errors, registry.managers[MODEL].states(), collect.messages, base)


def test_no_call_failed_while_versions_changed(scenario):
    assert scenario.errors == []
    assert all(len(a) >= 9 for a in scenario.answers)


def test_each_client_moved_from_version_1_to_2_once_and_never_saw_3(scenario):
    for answers in scenario.answers:
        versions = [a[0] for a in answers]
        assert versions == sorted(versions)  # one switch, no going back and forth
        assert set(versions) == {1, 2}


def test_every_answer_is_its_versions_own(scenario, expected):
    for answers in scenario.answers:
        for version, name, class_name, probabilities in answers:
            classes, expected_probabilities = expected(version, [name])
            assert class_name == classes[0]
            np.testing.assert_allclose(probabilities, expected_probabilities[0], rtol=1e-6)


def test_the_new_version_was_warmed_up_with_the_pushers_requests(scenario):
    assert "warmed up version 2 of clf with 2 requests" in scenario.log


def test_the_retired_version_is_unloaded_and_the_failed_one_reported(scenario):
    states = {v: (State.Name(s.state), s.error_code.name) for v, s in scenario.states.items()}
    assert states == {1: ("END", "OK"), 2: ("AVAILABLE", "OK"), 3: ("END", "UNKNOWN")}
    assert str(scenario.base / "3" / "saved_model.pb") in scenario.states[3].error_message
    failed = [m for m in scenario.log if m.startswith("version 3 of clf failed to load")]
    assert failed and "still serving [2]" in failed[0]


def test_the_pusher_left_tf_servings_layout(scenario):
    names = sorted(p.name for p in scenario.base.iterdir())
    assert names == [".last_version", "2", "3"]

