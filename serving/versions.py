"""Which versions of a model TF Serving would serve: its file-system source and version policy.

TF Serving's file-system source lists a model's base path and treats every child directory whose
name is an integer as a version; anything else (our pusher's hidden `.tmp-*` staging folders,
`.last_version`, stray files) is ignored. The version policy then picks the versions to serve
among them: the latest N (TF Serving's default is the latest one), all, or specific numbers.
"""

from __future__ import annotations

import dataclasses
import os
import re

import tensorflow as tf

SAVED_MODEL_PB = "saved_model.pb"
_VERSION_NAME = re.compile(r"[0-9]+")


def version_dirs(base_path: str) -> dict[int, str]:
    """Every complete version under `base_path`: {version: directory}; {} when it is missing.

    A version directory without `saved_model.pb` yet is skipped, not failed: on object stores,
    where a push is not one atomic rename, that file is written last.
    """
    if not tf.io.gfile.isdir(base_path):
        return {}
    found: dict[int, str] = {}
    for entry in sorted(tf.io.gfile.listdir(base_path)):
        name = entry.rstrip("/")
        if not _VERSION_NAME.fullmatch(name):
            continue
        path = os.path.join(base_path, name)
        if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_PB)):
            found[int(name)] = path
    return found


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: `latest` N, `all`, or `specific` versions."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"version policy must be latest, all or specific, got {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"latest needs num_versions >= 1, got {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("a specific version policy needs at least one version")

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve among `available`, ascending."""
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.num_versions:]

    def describe(self) -> str:
        """Short text for logs and the CLI, e.g. 'latest 1' or 'specific 3, 4'."""
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        if self.kind == "specific":
            return "specific " + ", ".join(str(v) for v in self.versions)
        return "all"
