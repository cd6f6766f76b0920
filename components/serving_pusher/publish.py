"""Publishing a directory as TF Serving's next model version, never visible half-written.

TF Serving's file-system source polls a model's base path, treats every child whose name parses
as an integer as a version and ignores the rest (`serving.layout`). So a version is staged in a
hidden directory beside the versions, `<base>/.tmp-<version>-<random>`, filled completely, and
then renamed to `<base>/<version>`: a reader polling `<base>` sees either no new version or a
complete one.

On a local filesystem the rename is one `rename(2)`, atomic. Object stores (GCS, S3) have no
rename: TensorFlow copies and deletes object by object. There each file is moved on its own,
every `saved_model.pb` last (as TFX's own Pusher copies it last), because loaders take that file
as the sign that a SavedModel is complete; a server polling mid-move can still see the version
directory early, so on object stores prefer a server that loads only complete SavedModels.

Version numbers are integers, not timestamps: two pushes in the same second would collide, and a
clock set back would go backwards. Each is the largest number ever published plus one: the
largest numeric child, or the number in `<base>/.last_version` if that is larger, so neither
retention nor an operator deleting the newest version (a rollback) makes a number come back.

One writer per base path is assumed (one pipeline pushes one model): a second writer's staging
directory would be removed as a leftover, and both could pick the same number.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable

import tensorflow as tf

from components import stop
from serving.layout import (
    LAST_VERSION_FILE,
    SAVED_MODEL_PB,
    TMP_PREFIX,
    is_version_name,
    numeric_versions,
)

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Publication:
    """What one publication did: the new version, and what it cleaned up."""

    version: int
    path: str
    removed_leftovers: tuple[str, ...]
    retired_versions: tuple[int, ...]


def is_local(path: str) -> bool:
    """True for a plain local path, where `os.rename` is atomic; URIs go through tf.io.gfile."""
    return "://" not in path


def _children(directory: str) -> list[str]:
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(directory))


def last_recorded_version(base_dir: str) -> int:
    """The number in `<base>/.last_version`, or 0 when there is none."""
    path = os.path.join(base_dir, LAST_VERSION_FILE)
    if not tf.io.gfile.exists(path):
        return 0
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read().strip()
    if not is_version_name(text):
        # Guessing here could reuse a version number; a person must decide.
        raise ValueError(f"{path} should hold the last published version number, got {text!r}; "
                         "write the largest version ever published into it")
    return int(text)


def next_version(base_dir: str) -> int:
    """One more than the largest version ever published in `base_dir` (1 for the first)."""
    return max([0, last_recorded_version(base_dir), *numeric_versions(base_dir)]) + 1


def delete(path: str) -> None:
    """Deletes a file or a directory tree."""
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    else:
        tf.io.gfile.remove(path)


def discard(path: str) -> None:
    """Best-effort delete after a failure: never hides the error that caused it."""
    try:
        if tf.io.gfile.exists(path):
            delete(path)
    except Exception:  # the caller re-raises the error that matters
        _LOG.warning("could not remove %s; the next push removes it", path, exc_info=True)


def remove_leftovers(base_dir: str) -> list[str]:
    """Deletes the hidden `.tmp-*` entries interrupted pushes left behind, and lists them."""
    leftovers = [os.path.join(base_dir, name) for name in _children(base_dir)
                 if name.startswith(TMP_PREFIX)]
    for path in leftovers:
        _LOG.warning("removing %s, left by an interrupted push", path)
        delete(path)
    return leftovers


def copy_file(src: str, dst: str) -> None:
    """Copies one file (a module-level function so tests can make a copy fail midway)."""
    tf.io.gfile.copy(src, dst, overwrite=True)


def relative_files(root: str) -> list[str]:
    """Every file under `root`, as paths relative to it, sorted."""
    root = root.rstrip("/")
    found = []
    for dirpath, _, filenames in tf.io.gfile.walk(root):
        relative_dir = dirpath.rstrip("/")[len(root):].lstrip("/")
        found.extend(os.path.join(relative_dir, name) for name in filenames)
    return sorted(found)


def copy_tree(src: str, dst: str) -> None:
    """Copies every file under `src` to the same relative path under `dst`."""
    for relative in relative_files(src):
        target = os.path.join(dst, relative)
        tf.io.gfile.makedirs(os.path.dirname(target))
        copy_file(os.path.join(src, relative), target)


def _move_tree(src: str, dst: str) -> None:
    """Makes `src` appear as `dst`: one atomic rename locally, file by file elsewhere."""
    if tf.io.gfile.exists(dst):
        raise FileExistsError(f"{dst} already exists; is another push writing to this base path?")
    if is_local(src):
        os.rename(src, dst)
        return
    # No atomic rename on object stores: move saved_model.pb files last (see the module doc).
    files = sorted(relative_files(src),
                   key=lambda rel: (os.path.basename(rel) == SAVED_MODEL_PB, rel))
    try:
        for relative in files:
            target = os.path.join(dst, relative)
            tf.io.gfile.makedirs(os.path.dirname(target))
            tf.io.gfile.rename(os.path.join(src, relative), target, overwrite=False)
    except BaseException:
        discard(dst)
        raise
    delete(src)


def _record_last_version(base_dir: str, version: int) -> None:
    # Written beside the target and renamed over it, so a crash never leaves it half-written.
    staging = os.path.join(base_dir, f"{TMP_PREFIX}last_version-{uuid.uuid4().hex[:8]}")
    with tf.io.gfile.GFile(staging, "w") as f:
        f.write(f"{version}\n")
    tf.io.gfile.rename(staging, os.path.join(base_dir, LAST_VERSION_FILE), overwrite=True)


def retire_versions(base_dir: str, keep_versions: int, protect: int) -> list[int]:
    """Deletes the oldest versions beyond `keep_versions`, never `protect`; lists them."""
    if keep_versions < 1:
        raise ValueError(f"keep_versions must be >= 1, got {keep_versions}")
    others = [v for v in numeric_versions(base_dir) if v != protect]
    retired = others[:max(0, len(others) - (keep_versions - 1))]
    for version in retired:
        path = os.path.join(base_dir, str(version))
        if is_local(base_dir):
            # Hide it first so a reader never sees a half-deleted version (object stores cannot).
            hidden = os.path.join(base_dir, f"{TMP_PREFIX}retired-{version}-{uuid.uuid4().hex[:8]}")
            os.rename(path, hidden)
            path = hidden
        delete(path)
        _LOG.info("retired version %d of %s", version, base_dir)
    return retired


def publish_version(base_dir: str, write: Callable[[str], None],
                    keep_versions: int) -> Publication:
    """Publishes what `write(directory)` writes as the next version of `base_dir`.

    Leftovers of interrupted pushes are removed first; if `write` or the rename fails, its
    staging directory is removed and the error propagates, with no new version visible.
    """
    if keep_versions < 1:
        raise ValueError(f"keep_versions must be >= 1, got {keep_versions}")
    tf.io.gfile.makedirs(base_dir)
    leftovers = remove_leftovers(base_dir)
    version = next_version(base_dir)
    final = os.path.join(base_dir, str(version))
    staging = os.path.join(base_dir, f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    tf.io.gfile.makedirs(staging)
    try:
        write(staging)
        stop.raise_if_requested()  # a stopped run makes no version visible
        _move_tree(staging, final)
    except BaseException:
        discard(staging)
        raise
    _LOG.info("published version %d at %s", version, final)
    _record_last_version(base_dir, version)
    retired = retire_versions(base_dir, keep_versions, protect=version)
    return Publication(version=version, path=final, removed_leftovers=tuple(leftovers),
                       retired_versions=tuple(retired))
