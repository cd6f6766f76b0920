"""`kill -9` during the push: no partial version is ever visible, the previous one stays served.

The pusher's own `publish_version` copies a real exported SavedModel (padded with a large
`assets.extra` file, which TF Serving ignores, so a copy takes long enough to be cut at many
points) into a serving directory, in a process of its own (publish_script.py), and the test
SIGKILLs it after a delay spread over the whole publication: before, during and after the copy,
the rename, the `.last_version` record and the retirement of old versions. After every kill,
the versions TF Serving would see are all complete and the version served before is unchanged.
Then a normal publication removes every leftover, and the served versions load and answer.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("publish_script.py")
KILLS = 15
PADDING_BYTES = 64 * 1024 * 1024
KEEP = 3


def _files(root: Path) -> dict[str, tuple[int, str]]:
    """Every file's size and digest; the padding by its size, its head and its tail."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, _digest(p))
            for p in sorted(root.rglob("*")) if p.is_file()}


_DIGESTS: dict[tuple[int, int, int], str] = {}


def _digest(path: Path) -> str:
    """sha256 of a file, remembered by inode, size and mtime (a rename keeps all three)."""
    st = path.stat()
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _read_digest(path)
    return _DIGESTS[key]


def _read_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if path.name == "padding.bin":
            digest.update(handle.read(1 << 20))
            handle.seek(-(1 << 20), os.SEEK_END)
            digest.update(handle.read())
        else:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _versions(base: Path) -> list[int]:
    return sorted(int(p.name) for p in base.iterdir() if re.fullmatch(r"[0-9]+", p.name))


class Publisher:
    """publish_script.py, one fresh process per publication."""

    def __init__(self, base: Path, source: Path) -> None:
        self.command = [sys.executable, str(SCRIPT), str(base), str(source), str(KEEP)]

    def publish(self, kill_after: float | None = None) -> tuple[str | None, float | None]:
        """Runs one publication, killed `kill_after` s after it starts; (its 'done'/'error'
        line or None, its duration)."""
        process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == "ready", "publish_script.py ended"
            if kill_after is not None:
                time.sleep(kill_after)
                process.kill()
            answer = process.stdout.readline().strip() or None
            process.wait(timeout=120)
        finally:
            process.kill()
            process.wait()
        duration = float(answer.split()[2]) if answer and answer[:4] == "done" else None
        return answer, duration

    def close(self) -> None:
        """Nothing stays running between publications."""


@pytest.fixture(scope="module")
def source(two_versions, tmp_path_factory) -> Path:
    """A real export, padded so that copying it takes a while."""
    import shutil

    padded = tmp_path_factory.mktemp("padded") / "model"
    shutil.copytree(two_versions[0], padded)
    (padded / "assets.extra").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    (padded / "assets.extra" / "padding.bin").write_bytes(rng.bytes(PADDING_BYTES))
    return padded


@pytest.fixture(scope="module")
def kills(source, tmp_path_factory):
    """Publishes twice normally, then KILLS publications killed at spread-out moments."""
    base = tmp_path_factory.mktemp("serving") / "clf"
    expected = _files(source)
    publisher = Publisher(base, source)
    observations = []
    try:
        first, _ = publisher.publish()
        assert first.startswith("done 1"), first
        second, duration = publisher.publish()  # with the files in the page cache, as later
        assert second.startswith("done 2"), second
        # Kill points from just after the fork to well past the end of a publication (later
        # ones also remove the leftovers of the one killed before), the last after its end.
        delays = [*np.linspace(0.0, duration * 1.5, KILLS - 1), duration * 4.0 + 1.0]
        for delay in delays:
            newest = max(_versions(base))
            newest_files = _files(base / str(newest))
            answer, _ = publisher.publish(kill_after=float(delay))
            visible = _versions(base)
            observations.append({
                "delay": float(delay), "answer": answer, "versions": visible,
                "complete": {v: _files(base / str(v)) == expected for v in visible},
                "previous_intact": newest in visible
                and _files(base / str(newest)) == newest_files,
                "hidden": sorted(p.name for p in base.iterdir() if p.name.startswith(".tmp-")),
                "last_version": (base / ".last_version").read_text()
                if (base / ".last_version").exists() else None,
            })
        final, _ = publisher.publish()
    finally:
        publisher.close()
    return {"base": base, "expected": expected, "duration": duration,
            "observations": observations, "final": final}


def test_kills_landed_inside_publications(kills):
    # Some kills stopped a publication (no 'done'), some came after it finished.
    answers = [o["answer"] for o in kills["observations"]]
    print(f"\n{KILLS} SIGKILLs: {sum(a is None for a in answers)} cut a publication, "
          f"{sum(a is not None for a in answers)} came after it ended; publication "
          f"{kills['duration']:.2f} s")
    assert sum(a is None for a in answers) >= KILLS // 3, answers
    assert any(a is not None for a in answers), answers
    # Cut in several places: the delays are spread over the publication's own measured length,
    # so this holds however fast the disk is (an absolute floor on that length failed on a
    # machine whose page cache made the copy 0.04 s).
    cut_at = {o["delay"] for o in kills["observations"] if o["answer"] is None}
    assert len(cut_at) >= KILLS // 3, cut_at


def test_every_visible_version_is_complete_after_every_kill(kills):
    for observation in kills["observations"]:
        assert all(observation["complete"].values()), observation


def test_the_previously_served_version_survives_every_kill(kills):
    for observation in kills["observations"]:
        assert observation["previous_intact"], observation


def test_version_numbers_only_grow_and_last_version_is_never_torn(kills):
    seen_max = 2
    for observation in kills["observations"]:
        assert max(observation["versions"]) >= seen_max
        seen_max = max(observation["versions"])
        if observation["last_version"] is not None:
            assert re.fullmatch(r"[0-9]+\n", observation["last_version"]), observation


def test_a_normal_push_then_removes_every_leftover(kills):
    base = kills["base"]
    assert kills["final"].startswith("done "), kills["final"]
    assert any(o["hidden"] for o in kills["observations"])  # kills did leave leftovers
    assert [p.name for p in base.iterdir() if p.name.startswith(".tmp-")] == []
    versions = _versions(base)
    published = 3 + sum(o["answer"] is not None for o in kills["observations"])
    assert len(versions) == min(KEEP, published)
    assert all(_files(base / str(v)) == kills["expected"] for v in versions)


def test_the_kept_versions_load_and_answer(kills):
    import tensorflow as tf

    from serving.server.servable import load_servable

    # Every kept version holds the same bytes as the source (checked above), so loading the
    # oldest one, served before most of the kills, shows they all load and answer.
    base = kills["base"]
    version = _versions(base)[0]
    servable = load_servable("clf", version, str(base / str(version)))
    image = tf.io.encode_png(tf.zeros([40, 40, 3], tf.uint8)).numpy()
    out = servable.functions["serving_default"](image_bytes=tf.constant([image]))
    assert out["probabilities"].shape == (1, 2)
