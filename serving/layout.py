"""TF Serving's base-path layout, `<base_path>/<version>/`, coded once for the pusher and servers.

TF Serving's file-system source lists a model's base path and treats every child whose name is an
integer as a version; anything else is ignored, which is why the pusher stages a version in a
hidden `.tmp-*` directory and keeps its counter in `.last_version`. A version is complete once its
`saved_model.pb` exists: on object stores, where a push is not one atomic rename, that file is
written last, so a version directory without it is skipped, not failed.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf

SAVED_MODEL_PB = "saved_model.pb"  # written last: its presence marks a complete version
TMP_PREFIX = ".tmp-"  # the pusher's staging entries; hidden, and not a version name
LAST_VERSION_FILE = ".last_version"  # the largest version ever published, so none is reused

_VERSION_NAME = re.compile(r"[0-9]+")


def is_version_name(name: str) -> bool:
    """True for a name TF Serving reads as a version number: ASCII digits only."""
    return _VERSION_NAME.fullmatch(name) is not None


def _version_names(base_path: str) -> list[str]:
    """The integer-named children of `base_path`, as named; [] when it is missing."""
    if not tf.io.gfile.isdir(base_path):
        return []
    return [name for name in sorted(entry.rstrip("/") for entry in tf.io.gfile.listdir(base_path))
            if is_version_name(name)]


def numeric_versions(base_path: str) -> list[int]:
    """Every integer-named child of `base_path`, complete or not, ascending; [] if it is missing.

    The pusher numbers versions from these, so a half-written version's number is never reused.
    """
    return sorted(int(name) for name in _version_names(base_path))


def is_complete(version_dir: str) -> bool:
    """True when `version_dir` holds its `saved_model.pb`, the file a push writes last."""
    return tf.io.gfile.exists(os.path.join(version_dir, SAVED_MODEL_PB))


def version_dirs(base_path: str) -> dict[int, str]:
    """Every complete version under `base_path`: {version: directory}; {} when it is missing."""
    found: dict[int, str] = {}
    for name in _version_names(base_path):
        path = os.path.join(base_path, name)
        if is_complete(path):
            found[int(name)] = path
    return found
