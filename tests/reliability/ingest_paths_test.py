"""Hostile data through the image ExampleGen: every file accounted for, nothing written outside.

One run of the real executor (example_gen_script.py, in its own process under strace) on a data
folder holding one file of every bad kind, file names built to escape (`..`, look-alike slashes,
a backslash, a newline), and symbolic links to files and folders outside the data. strace
records every path the process and its children create, write, rename or delete.

The executor's own accounting is tested in tests/components/image_example_gen_test.py
(`test_every_file_is_ingested_or_quarantined_with_its_reason`); here the same promise is checked
on hostile names, with the process's file writes watched.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("example_gen_script.py")
WRITE_CALLS = ("open", "openat", "creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2",
               "unlink", "unlinkat", "rmdir", "symlink", "symlinkat", "link", "linkat",
               "truncate", "chmod", "fchmodat")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
# Fixed paths that libraries write whatever the data is called (never built from a name).
ALLOWED_FILES = {
    "/var/lib/libuuid/clock.txt": "libuuid's clock state for time-based UUIDs (uuid1)",
}
CALL = re.compile(r"^(?:\[pid\s+)?\d*\]?\s*(\w+)\((.*)\)\s+=\s+(-?\d+)")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


# Names that try to leave their folder: look-alike slashes and dots, a backslash, a newline.
ESCAPING_NAMES = ("a\u2215b.jpg", "\uff0e\uff0e\u2215\uff0e\uff0e\u2215escape.jpg",
                  "back\\..\\slash.jpg", "new\nline.jpg",
                  "%2e%2e%2fpct.jpg", "x" * 200 + ".jpg")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, image_files) -> dict:
    """The data, what each file should become, and everything the executor wrote."""

    def image(seed: int, fmt: str) -> bytes:
        return image_files.encode(image_files.rgb(seed), fmt)

    root = tmp_path_factory.mktemp("hostile")
    data, outside, out = root / "data", root / "outside", root / "out"
    good: dict[str, str] = {}  # relative path -> class
    bad: dict[str, str] = {}  # relative path -> kind
    system: set[str] = set()  # hidden names: skipped, not quarantined
    for c, name in enumerate(("cats", "dogs")):
        (data / name).mkdir(parents=True)
        for i in range(4):
            (data / name / f"{i}.jpg").write_bytes(image(10 * c + i, "JPEG"))
            good[f"{name}/{i}.jpg"] = name
        for file_name, (content, kind) in image_files.bad_files().items():
            (data / name / file_name).write_bytes(content)
            bad[f"{name}/{file_name}"] = kind
    for i, file_name in enumerate(ESCAPING_NAMES):
        (data / "cats" / file_name).write_bytes(image(50 + i, "PNG"))
        good[f"cats/{file_name}"] = "cats"
    misplaced = {".DS_Store": None, "cats/..%2f..%2fevil.jpg": None,
                 "cats/..\u2044..\u2044x.jpg": None, "dogs/.\u2215hidden.jpg": None,
                 ".git/..%2fhead": None, "LICENSE.txt": "not_in_class",
                 "cats/sub/deep.jpg": "nested"}
    for relative, kind in misplaced.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_bytes(image(70, "JPEG"))
        if kind is None:
            system.add(relative)
        else:
            bad[relative] = kind
    # Links out of the data folder: a file, and a whole class folder.
    (outside / "more").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(image(80, "JPEG"))
    for i in range(3):
        (outside / "more" / f"{i}.jpg").write_bytes(image(90 + i, "JPEG"))
        good[f"linked/{i}.jpg"] = "linked"
    (data / "dogs" / "link.jpg").symlink_to(outside / "secret.jpg")
    good["dogs/link.jpg"] = "dogs"
    (data / "linked").symlink_to(outside / "more", target_is_directory=True)

    work, home, tmp = root / "cwd", root / "home", root / "tmp"
    for folder in (work, home, tmp):
        folder.mkdir()
    before = {p: _listing(p) for p in (data, outside, work)}
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1",
           "MPLCONFIGDIR": str(home / "mpl"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    trace = root / "strace.log"
    command = ["strace", "-f", "-qq", "--seccomp-bpf", "-s", "4096", "-o", str(trace),
               "-e", "trace=" + ",".join(WRITE_CALLS), sys.executable, str(SCRIPT), str(data),
               str(out)]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return {"data": data, "outside": outside, "out": out, "work": work, "home": home,
            "tmp": tmp, "good": good, "bad": bad, "system": system, "record": record,
            "before": before,
            "written": _written_paths(trace.read_text(encoding="utf-8"), work)}


def _listing(root: Path) -> dict[str, tuple]:
    return {p.relative_to(root).as_posix(): (p.lstat().st_mode, p.lstat().st_size,
                                             p.lstat().st_mtime_ns)
            for p in [root, *root.rglob("*")]}


def _unescape(text: str) -> str:
    raw = codecs.escape_decode(text.encode("latin-1", "backslashreplace"))[0]
    return raw.decode("utf-8", "surrogateescape")


def _written_paths(trace: str, cwd: Path) -> list[str]:
    """Every path a write-class call named (opened for writing, created, renamed, removed)."""
    paths = []
    for line in trace.splitlines():
        match = CALL.match(line)
        if not match or match.group(1) not in WRITE_CALLS:
            continue
        call, arguments = match.group(1), match.group(2)
        if call in ("open", "openat") and not any(f in arguments for f in WRITE_FLAGS):
            continue
        for text in STRING.findall(arguments):
            path = _unescape(text)
            paths.append(os.path.normpath(path if path.startswith("/") else cwd / path))
    return paths


def _under(path: str, folder: Path) -> bool:
    return path == str(folder) or path.startswith(str(folder) + os.sep)


def test_the_trace_saw_the_executor_write(hostile):
    # The watch works: the examples and the report were written where expected.
    written = hostile["written"]
    assert any(p.endswith("quarantine.jsonl") for p in written)
    assert any("Split-train" in p for p in written)


def test_nothing_is_written_outside_the_output(hostile):
    allowed = (hostile["out"], hostile["tmp"], hostile["home"], Path("/dev"), Path("/proc/self"))
    outside = sorted({p for p in hostile["written"] if p not in ALLOWED_FILES
                      and not any(_under(p, folder) for folder in allowed)})
    assert outside == []


def test_no_data_file_name_reaches_a_path_written_outside_the_output(hostile):
    names = {Path(relative).name
             for relative in [*hostile["good"], *hostile["bad"], *hostile["system"]]}
    names -= {"0.jpg", "1.jpg", "2.jpg", "3.jpg"}  # too common to attribute
    leaked = [p for p in hostile["written"] if not _under(p, hostile["out"])
              and any(name in p for name in names)]
    assert leaked == []


def test_data_outside_and_working_folders_are_unchanged(hostile):
    for folder, listing in hostile["before"].items():
        assert _listing(folder) == listing, folder


def test_every_file_is_ingested_quarantined_with_its_kind_or_skipped(hostile):
    record, good, bad, system = (hostile["record"], hostile["good"], hostile["bad"],
                                 hostile["system"])
    assert record["files_found"] == len(good) + len(bad) + len(system)
    assert record["ingested"] == len(good)
    assert record["quarantined"] == len(bad)
    assert record["skipped"] == len(system)
    report_path = Path(record["quarantine_report"])
    assert _under(str(report_path), hostile["out"])
    report = [json.loads(line) for line in report_path.read_text(encoding="utf-8").splitlines()]
    assert {r["path"]: r["kind"] for r in report} == bad
    skipped_path = Path(record["skipped_report"])
    assert _under(str(skipped_path), hostile["out"])
    listed = [json.loads(line) for line in skipped_path.read_text(encoding="utf-8").splitlines()]
    assert {r["path"] for r in listed} == system
    per_class = json.loads(record["ingested_per_class"])
    expected = {name: sum(1 for c in good.values() if c == name) for name in per_class}
    assert per_class == expected and set(per_class) == {"cats", "dogs", "linked"}


@pytest.fixture(scope="module", autouse=True)
def _no_strace():
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed: the file writes cannot be watched")
