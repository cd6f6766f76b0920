"""Reliability tests' set-up: the real CLI, data folders, their fingerprints, a small export.

`cli` runs the real console entry point `pipeline.cli.main` in this process (its `os._exit`
turned into an exception), so refusals are tested as users meet them without a TensorFlow
import per case; `imgpipe` runs the installed console script in a subprocess, for the cases
that need a process of their own (a user without read rights, a kill, a lock held elsewhere).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
SERVE_START_SECONDS = 300
# Root ignores file modes through these two capabilities; without them chmod 000 holds for root
# too (the kernel's own permission check), so CI running as root still tests unreadable files.
# setpriv's options that drop them.
NO_DAC = ["--bounding-set=-dac_override,-dac_read_search",
          "--inh-caps=-dac_override,-dac_read_search"]


def user_env(**extra: str) -> dict[str, str]:
    """The environment a user runs imgpipe in: without the test session's TF log setting."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(extra)
    return env




@dataclasses.dataclass(frozen=True)
class CliResult:
    """What one `imgpipe` invocation did: its exit code and what it printed."""

    code: int | None
    stdout: str
    stderr: str

    def assert_one_line_error(self, expected: str) -> str:
        """Exit code 2, exactly one line on stderr that contains `expected`, no traceback."""
        assert self.code == 2, (self.code, self.stdout, self.stderr)
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("imgpipe: error: "), lines[0]
        assert expected in lines[0], lines[0]
        assert "Traceback" not in self.stdout + self.stderr
        return lines[0]


# A shell starts a background job with SIGINT ignored (`make test &`, a CI step run that way),
# its children inherit that, and Python then installs no Ctrl-C handler: a test that sends
# SIGINT would see it ignored. A terminal's foreground job has it at its default, so the
# console script is started through this, which sets that default and execs the command.
AS_IN_A_TERMINAL = (sys.executable, "-c", "import os, signal, sys; "
                    "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], "
                    "sys.argv[1:])")


class Imgpipe:
    """The installed `imgpipe` console script in subprocesses, as a user runs it."""

    executable = IMGPIPE
    env = staticmethod(user_env)

    @staticmethod
    def start(*args: str, prefix: list[str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Starts `imgpipe ARGS` (under `prefix`, e.g. setpriv) in its own process group, with
        Ctrl-C's SIGINT at its default as in a terminal, however pytest itself was started."""
        return subprocess.Popen([*AS_IN_A_TERMINAL, *(prefix or []), IMGPIPE, *args],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=user_env(), cwd=cwd,
                                start_new_session=True)

    @staticmethod
    def finish(process: subprocess.Popen, timeout: float = 300) -> CliResult:
        """Waits for `process` and returns what it did."""
        stdout, stderr = process.communicate(timeout=timeout)
        return CliResult(process.returncode, stdout, stderr)

    def run(self, *args: str, prefix: list[str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> CliResult:
        """Runs `imgpipe ARGS` to its end."""
        return self.finish(self.start(*args, prefix=prefix, cwd=cwd), timeout)


@contextlib.contextmanager
def tmpfs_mounts(root: Path) -> Iterator[Callable[..., Path]]:
    """`mount(name, size="1m", options="")`: a tmpfs mounted at root/name; all unmounted on
    exit. Mounting needs root, which CI has: without it the test fails, it does not skip."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount tmpfs file systems, which needs root (CI runs as root)",
                    pytrace=False)
    mounted: list[Path] = []

    def mount(name: str, size: str = "1m", options: str = "") -> Path:
        point = root / name
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(filter(None, [
            f"size={size}", options])), "tmpfs", str(point)], check=True, timeout=30)
        mounted.append(point)
        return point

    try:
        yield mount
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "-l", str(point)], check=False, timeout=30)


@pytest.fixture(scope="session")
def tmpfs_under() -> Callable[[Path], contextlib.AbstractContextManager[Callable[..., Path]]]:
    """`with tmpfs_under(root) as mount:`, for fixtures that keep a mount beyond one test."""
    return tmpfs_mounts


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[..., Path]]:
    """`tmpfs(name, size="1m", options="")`: a tmpfs mounted at tmp_path/name, unmounted after."""
    with tmpfs_mounts(tmp_path) as mount:
        yield mount


@pytest.fixture(scope="session")
def imgpipe() -> Imgpipe:
    """Runs the installed console script in subprocesses."""
    return Imgpipe()


@pytest.fixture(scope="session")
def unprivileged(required_tool) -> list[str]:
    """The command prefix under which chmod 000 stops reads: [] when this user is not root;
    as root, setpriv without the two capabilities (the test fails if setpriv is missing)."""
    if os.geteuid() != 0:
        return []
    return [required_tool("setpriv"), *NO_DAC]


class _Exit(BaseException):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def cli(capfd) -> Callable[..., CliResult]:
    """Runs `imgpipe ARGS` through the real entry point in this process.

    An exception escaping `main` fails the test with its traceback, which is what a user
    would have seen.
    """
    from pipeline.cli import main

    def fake_exit(code: int) -> None:
        raise _Exit(code)

    def pipeline_started(*args, **kwargs):
        raise AssertionError("the pipeline started: the input was not refused before it")

    def invoke(*args: str, on_pipeline: Callable | None = None) -> CliResult:
        """`on_pipeline(config, layout)` replaces running the pipeline, if given."""
        from pipeline.cli import run as run_command

        capfd.readouterr()
        code = None
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", ["imgpipe", *args])
            patch.setattr(os, "_exit", fake_exit)
            patch.setattr(run_command, "run_and_summarize", on_pipeline or pipeline_started)
            try:
                main()
            except (_Exit, SystemExit) as stop:
                code = stop.code
        out, err = capfd.readouterr()
        return CliResult(code, out, err)

    return invoke


def encoded_image(seed: int, size: int = 32, fmt: str = "JPEG") -> bytes:
    """A small random image, encoded."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _write_classes(root: Path, classes: tuple[str, ...] = ("cats", "dogs"),
                  per_class: int = 3) -> Path:
    """ROOT/<class>/<i>.jpg|png: small valid images."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = "PNG" if i % 3 == 2 else "JPEG"
            (root / name / f"{i}.{fmt.lower()}").write_bytes(encoded_image(10 * c + i, fmt=fmt))
    return root


def _tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under `root` (itself included): type, mode, size, mtime and content digest.

    Links are not followed. A file this process cannot read is fingerprinted by its metadata.
    """
    state: dict[str, tuple] = {}
    if not root.exists() and not root.is_symlink():
        return state
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        st = path.lstat()
        digest = None
        if path.is_file() and not path.is_symlink():
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:
                digest = "unreadable"
        target = os.readlink(path) if path.is_symlink() else None
        state[path.relative_to(root).as_posix()] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                     digest, target)
    return state


@pytest.fixture(scope="session")
def tree_state() -> Callable[[Path], dict[str, tuple]]:
    """Fingerprints a folder: every entry's type, mode, size, mtime and content digest."""
    return _tree_state


@pytest.fixture(scope="session")
def write_classes() -> Callable[..., Path]:
    """Writes ROOT/<class>/<i>.jpg|png: small valid images (classes cats, dogs by default)."""
    return _write_classes


@pytest.fixture(scope="session")
def export_model(transform_output) -> Callable[[Path, int], None]:
    """Writes a SavedModel of a 2-class classifier at 75 px (random frozen base), like the
    serving tests' export; `variant` changes only the head, so answers tell versions apart."""
    import tensorflow as tf

    from trainer import export
    from trainer import model as model_lib
    from trainer.augment import AugmentConfig
    from trainer.hparams import HParams

    classes = ("cat", "dog")
    hp = HParams(class_names=classes, image_size=75, weights="none", dense_units=(16,),
                 augment=AugmentConfig.off())
    tf.keras.utils.set_random_seed(0)
    model = model_lib.build_model(hp)
    module, signatures = export.build_serving_module(model, transform_output, classes, 75)
    head = model.get_layer("probability")
    kernel, bias = head.get_weights()
    saved: dict[int, Path] = {}

    def write(path: Path, variant: int = 1) -> None:
        if variant in saved:
            shutil.copytree(saved[variant], path)
            return
        head.set_weights([np.roll(kernel * 100.0, variant - 1, axis=1), bias])
        tf.saved_model.save(module, str(path), signatures=signatures)
        saved[variant] = path

    return write


@pytest.fixture(scope="session")
def two_versions(export_model, tmp_path_factory) -> tuple[Path, Path]:
    """Two complete exports (different heads) to publish or serve."""
    root = tmp_path_factory.mktemp("exports")
    export_model(root / "a", 1)
    export_model(root / "b", 2)
    return root / "a", root / "b"


@dataclasses.dataclass
class Served:
    """An `imgpipe serve` process and its ports."""

    process: subprocess.Popen
    grpc_port: int
    rest_port: int | None
    log: Path
    lines: queue.Queue  # what it prints on stdout after "listening on ...", line by line
    base: Path  # the model's folder of numbered versions

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then its exit code (killed if it does not exit within `timeout`)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _start_serve(base: Path, model: str, log: Path, *args: str) -> Served:
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [IMGPIPE, "serve", "--model-base-path", str(base), "--model-name", model,
             "--port", "0", "--rest-port", "0", *args],
            stdout=subprocess.PIPE, stderr=log_file, text=True, env=user_env())
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    seen = []
    try:
        while not (seen and seen[-1].startswith("listening on")):
            seen.append(lines.get(timeout=SERVE_START_SECONDS))
    except queue.Empty:
        process.kill()
        pytest.fail(f"imgpipe serve did not start: {seen} {log.read_text()[-2000:]}")
    rest = re.search(r":(\d+) \(REST\)", seen[-1])
    return Served(process, int(re.search(r":(\d+) \(gRPC\)", seen[-1]).group(1)),
                  int(rest.group(1)) if rest else None, log, lines, base)


@pytest.fixture(scope="session")
def start_serve() -> Callable[..., Served]:
    """`start_serve(base, model, log, *flags)`: `imgpipe serve` (the console script, default
    host, free ports) on BASE's numbered versions, once it listens."""
    return _start_serve


class RunRecord:
    """What a run of `imgpipe run` left in its output folder, read as the stop and full-disk
    tests check it: its log, ML Metadata's executions, the lock, SQLite's integrity."""

    TIMEOUT_SECONDS = 600

    @staticmethod
    def wait_for_log(process: subprocess.Popen, output: Path, marker: str) -> None:
        """Returns once `marker` is in the run's latest log; fails if the run ends first."""
        deadline = time.monotonic() + RunRecord.TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, f"the run ended before {marker!r}"
            assert time.monotonic() < deadline, f"{marker!r} never appeared in the run's log"
            logs = sorted((output / "logs").glob("run-*.log")) if (output / "logs").is_dir() else []
            if logs and marker in logs[-1].read_text(errors="replace"):
                return
            time.sleep(0.05)

    @staticmethod
    def executions(metadata: Path, model: str) -> dict[str, list[str]]:
        """Component id -> the states of its executions, oldest first, read with ML Metadata."""
        from pipeline.results.metadata import STATE_NAMES, open_store

        store = open_store(metadata)
        states: dict[str, list[str]] = {}
        for execution in sorted(store.get_executions(), key=lambda e: e.id):
            nodes = [c.name for c in store.get_contexts_by_execution(execution.id)
                     if c.name.startswith(f"{model}.")]
            if nodes:
                states.setdefault(nodes[0][len(model) + 1:], []).append(
                    STATE_NAMES.get(execution.last_known_state, "unknown"))
        return states

    @staticmethod
    def integrity(metadata: Path) -> str:
        """SQLite's `PRAGMA integrity_check` of ML Metadata's file ("ok" when intact)."""
        with sqlite3.connect(f"{metadata.as_uri()}?mode=ro", uri=True) as connection:
            return connection.execute("PRAGMA integrity_check").fetchone()[0]

    @staticmethod
    def lock_is_free(output: Path) -> bool:
        """True when no process holds the output folder's run lock."""
        fd = os.open(output / ".imgpipe.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)


@pytest.fixture(scope="session")
def run_record() -> type[RunRecord]:
    return RunRecord
