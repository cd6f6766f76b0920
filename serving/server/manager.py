"""Loading, switching and unloading versions as TF Serving's manager does, without failed requests.

Each poll lists the base path, asks the version policy which versions to serve, loads the missing
ones completely (SavedModel, then the warmup requests of `assets.extra`, as
`--enable_model_warmup` does) and only then publishes the new set of versions in one assignment:
a request sees either the old set or the new one, and a request already running keeps the version
it started with. A version that fails to load is logged and reported by GetModelStatus (state END
with its error), and whatever was served before stays served; it is tried again only when its
`saved_model.pb` changes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2

from serving.errors import ServingError, short_message
from serving.layout import SAVED_MODEL_PB, version_dirs
from serving.server import inference
from serving.server.servable import Servable, load_servable, read_warmup_requests
from serving.server.versions import VersionPolicy

_LOG = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """One model as a ModelConfig of TF Serving describes it."""

    name: str
    base_path: str
    policy: VersionPolicy = dataclasses.field(default_factory=VersionPolicy)
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VersionState:
    """A version's state as GetModelStatus reports it, with the error of a failed load."""

    state: int
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


def _stamp(path: str) -> int:
    """When the version's saved_model.pb last changed (-1 if it is gone)."""
    try:
        return tf.io.gfile.stat(os.path.join(path, SAVED_MODEL_PB)).mtime_nsec
    except tf.errors.OpError:
        return -1


def warm_up(servable: Servable) -> int:
    """Replays the version's warmup requests (TF Serving's model warmup); returns how many."""
    requests = read_warmup_requests(servable.path)
    for request in requests:
        inference.predict(servable, request)
    return len(requests)


class ModelManager:
    """The versions of one model: which are served, and every version's state."""

    def __init__(self, source: ModelSource, warmup: bool = True,
                 load: Callable[[str, int, str], Servable] = load_servable) -> None:
        self.source = source
        self._warmup = warmup
        self._load = load
        # Replaced by one assignment, never mutated, so readers take no lock.
        self._served: Mapping[int, Servable] = {}
        self._states: dict[int, VersionState] = {}
        self._states_lock = threading.Lock()  # GetModelStatus reads while a poll writes
        self._failed: dict[int, int] = {}  # version -> saved_model.pb stamp of the failed load
        self._refresh_lock = threading.Lock()

    @property
    def served_versions(self) -> list[int]:
        """The versions requests can use now, ascending."""
        return sorted(self._served)

    def states(self) -> dict[int, VersionState]:
        """Every version seen since start, with its state."""
        with self._states_lock:
            return dict(self._states)

    def _set_state(self, version: int, state: VersionState) -> None:
        with self._states_lock:
            self._states[version] = state

    def _load_version(self, version: int, path: str) -> Servable | None:
        self._set_state(version, VersionState(State.LOADING))
        _LOG.info("loading version %d of %s from %s", version, self.source.name, path)
        try:
            servable = self._load(self.source.name, version, path)
            warmed = warm_up(servable) if self._warmup else 0
        except Exception as error:  # noqa: BLE001  (any failure: keep serving what we had)
            message = f"{type(error).__name__}: {short_message(str(error))}"
            code = error.code if isinstance(error, ServingError) else grpc.StatusCode.UNKNOWN
            self._set_state(version, VersionState(State.END, code, message))
            self._failed[version] = _stamp(path)
            _LOG.error("version %d of %s failed to load, still serving %s: %s", version,
                       self.source.name, self.served_versions or "nothing", message)
            return None
        if warmed:
            _LOG.info("warmed up version %d of %s with %d requests", version, self.source.name,
                      warmed)
        return servable

    def refresh(self) -> None:
        """One poll of the base path: load, switch and unload as the version policy says."""
        with self._refresh_lock:
            found = version_dirs(self.source.base_path)
            aspired = self.source.policy.select(list(found))
            served = self._served
            ready = {v: served[v] for v in aspired if v in served}
            failed = False
            for version in sorted(set(aspired) - set(ready), reverse=True):
                path = found[version]
                if self._failed.get(version) == _stamp(path):
                    failed = True
                    continue
                servable = self._load_version(version, path)
                if servable is None:
                    failed = True
                else:
                    ready[version] = servable
                    self._failed.pop(version, None)
            if failed:
                # A failed new version must not take the old ones down with it.
                ready.update({v: s for v, s in served.items() if v in found})
            self._served = dict(sorted(ready.items()))
            for version in ready:
                self._set_state(version, VersionState(State.AVAILABLE))
            for version in set(served) - set(ready):
                self._set_state(version, VersionState(State.END))
                _LOG.info("unloaded version %d of %s", version, self.source.name)
            if set(ready) != set(served):
                _LOG.info("%s now serves versions %s", self.source.name, self.served_versions)

    def servable(self, version: int | None = None, label: str | None = None) -> Servable:
        """The version a request asks for (the latest when none); NOT_FOUND if not served."""
        served = self._served  # one snapshot for the whole lookup
        name = self.source.name
        if label:
            if label not in self.source.labels:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Unrecognized servable version label: {label}")
            version = self.source.labels[label]
        if version is None:
            if not served:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Latest({name})")
            return served[max(served)]
        if version not in served:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({name}, {version})")
        return served[version]


class ModelRegistry:
    """Every model the server serves, and the thread that polls their base paths."""

    def __init__(self, sources: Sequence[ModelSource], poll_seconds: float = 1.0,
                 warmup: bool = True) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        self.managers = {s.name: ModelManager(s, warmup) for s in sources}
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """The first poll of every model, before the server takes requests."""
        for manager in self.managers.values():
            manager.refresh()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            for manager in self.managers.values():
                try:
                    manager.refresh()
                except Exception:  # the poller must outlive a bad poll (e.g. a vanished mount)
                    _LOG.exception("polling %s failed", manager.source.base_path)

    def start_polling(self) -> None:
        """Polls every `poll_seconds` in a daemon thread (0 or less: never)."""
        if self.poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="version-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stops polling (waits for a poll under way to finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def model(self, name: str) -> ModelManager:
        """The manager of `name`; NOT_FOUND as TF Serving when it is not served."""
        if name not in self.managers:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Latest({name})")
        return self.managers[name]
