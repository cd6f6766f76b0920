"""Which versions are served, and when they change: TF Serving's version policies and manager.

The manager's decisions are checked with a stand-in loader (no TensorFlow load), so each rule is
tested on its own and fast; hot_swap_test.py runs the same manager with real loads.
"""

import os
import time

import grpc
import pytest

from serving.errors import ServingError
from serving.server.manager import ModelManager, ModelSource, State
from serving.server.servable import Servable
from serving.server.versions import VersionPolicy


def _version(base, name, complete=True):
    (base / name).mkdir(parents=True)
    if complete:
        (base / name / "saved_model.pb").write_bytes(b"graph")


@pytest.mark.parametrize("policy,selected", [
    (VersionPolicy(), [9]),
    (VersionPolicy("latest", num_versions=2), [3, 9]),
    (VersionPolicy("all"), [1, 3, 9]),
    (VersionPolicy("specific", versions=(1, 4)), [1]),
])
def test_version_policies(policy, selected):
    assert policy.select([3, 1, 9]) == selected


@pytest.mark.parametrize("kwargs", [{"kind": "newest"}, {"num_versions": 0},
                                    {"kind": "specific"}])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        VersionPolicy(**kwargs)


class _Loader:
    """Loads instantly; versions in `broken` fail as a corrupt SavedModel would."""

    def __init__(self):
        self.broken: set[int] = set()
        self.loads: list[int] = []

    def __call__(self, name, version, path):
        self.loads.append(version)
        if version in self.broken:
            raise ValueError(f"{path}/saved_model.pb is not a SavedModel")
        return Servable(name, version, path, signature_defs={}, functions={}, loaded=None)


def _manager(base, policy=None, labels=None):
    loader = _Loader()
    source = ModelSource("clf", str(base), policy or VersionPolicy(), labels or {})
    return ModelManager(source, warmup=False, load=loader), loader


def _states(manager):
    return {v: State.Name(s.state) for v, s in manager.states().items()}


def test_a_new_version_replaces_the_old_one(tmp_path):
    _version(tmp_path, "1")
    manager, loader = _manager(tmp_path)
    manager.refresh()
    _version(tmp_path, "2")
    manager.refresh()
    assert manager.served_versions == [2]
    assert manager.servable().version == 2
    assert _states(manager) == {1: "END", 2: "AVAILABLE"}
    manager.refresh()
    assert loader.loads == [1, 2]  # nothing is loaded twice


def test_a_failed_version_leaves_the_old_one_serving_until_it_is_fixed(tmp_path):
    _version(tmp_path, "1")
    manager, loader = _manager(tmp_path)
    manager.refresh()
    loader.broken.add(2)
    _version(tmp_path, "2")
    manager.refresh()
    assert manager.served_versions == [1]
    assert manager.servable().version == 1
    assert _states(manager) == {1: "AVAILABLE", 2: "END"}
    assert "not a SavedModel" in manager.states()[2].error_message
    manager.refresh()
    assert loader.loads == [1, 2]  # not retried while its files are unchanged
    loader.broken.clear()
    later = time.time() + 5
    os.utime(tmp_path / "2" / "saved_model.pb", (later, later))  # the version is pushed again
    manager.refresh()
    assert manager.served_versions == [2]
    assert _states(manager) == {1: "END", 2: "AVAILABLE"}


def test_removing_the_newest_version_rolls_back(tmp_path):
    _version(tmp_path, "1")
    _version(tmp_path, "2")
    manager, _ = _manager(tmp_path)
    manager.refresh()
    (tmp_path / "2" / "saved_model.pb").unlink()
    (tmp_path / "2").rmdir()
    manager.refresh()
    assert manager.served_versions == [1]


def test_versions_and_labels_resolve_to_served_versions(tmp_path):
    for name in ("1", "2", "3"):
        _version(tmp_path, name)
    manager, _ = _manager(tmp_path, VersionPolicy("latest", num_versions=2),
                          {"stable": 2, "canary": 3, "old": 1})
    manager.refresh()
    assert manager.servable(label="stable").version == 2
    assert manager.servable(version=3).version == 3
    with pytest.raises(ServingError) as unknown_label:
        manager.servable(label="beta")
    assert unknown_label.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ServingError) as unserved_label:
        manager.servable(label="old")  # version 1 is not served under latest 2
    assert unserved_label.value.code == grpc.StatusCode.NOT_FOUND
    assert "Specific(clf, 1)" in unserved_label.value.message


def test_no_version_yet_is_not_found(tmp_path):
    manager, _ = _manager(tmp_path)
    manager.refresh()
    with pytest.raises(ServingError) as raised:
        manager.servable()
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert raised.value.message == "Servable not found for request: Latest(clf)"
