"""Hostile data through the image ExampleGen: every file accounted for, nothing written outside.

One run of the real executor (example_gen_script.py, in its own process under strace) on a data
folder holding one file of every bad kind, file names built to escape (`..`, look-alike slashes,
a backslash, a newline), and symbolic links to files and folders outside the data. strace
records every path the process, its threads and its children create, write, rename or delete
(`-f`); a call split in the log by another thread's (`<unfinished ...>`, then `<... resumed>`)
is joined before it is read, and paths relative to a directory descriptor are resolved through
it (`-y`). The parser itself is tested on a real trace of threads and a child, and on lines
written out by hand.

The executor's own accounting is tested in tests/components/image_example_gen_test.py
(`test_every_file_is_ingested_or_quarantined_with_its_reason`); here the same promise is checked
on hostile names, with the process's file writes watched.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("example_gen_script.py")
# Every call that can create, change or remove a file by its path or by a descriptor's.
WRITE_CALLS = ("open", "openat", "openat2", "creat", "mkdir", "mkdirat", "mknod", "mknodat",
               "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "symlink",
               "symlinkat", "link", "linkat", "truncate", "ftruncate", "chmod", "fchmod",
               "fchmodat", "chown", "fchown", "lchown", "fchownat", "utimensat")
OPEN_CALLS = ("open", "openat", "openat2")  # writes only when opened with one of these flags:
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
# Fixed paths that libraries write whatever the data is called (never built from a name).
ALLOWED_FILES = {
    "/var/lib/libuuid/clock.txt": "libuuid's clock state for time-based UUIDs (uuid1)",
}
# strace -f: every thread and child; -y: a descriptor printed with its path, `3</data/cats>`
# (AT_FDCWD with the process's working folder); -s: whole paths.
STRACE = ("strace", "-f", "-y", "-qq", "--seccomp-bpf", "-s", "4096",
          "-e", "trace=" + ",".join(WRITE_CALLS))
LINE = re.compile(r"(?:\[pid\s+(?P<bracketed>\d+)\]|(?P<pid>\d+))?\s*(?P<rest>.*)")
RESUMED = re.compile(r"<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)")
UNFINISHED = " <unfinished ...>"
DESCRIPTOR = re.compile(r"(?P<number>AT_FDCWD|\d+)<(?P<path>.*)>")


# Names that try to leave their folder: look-alike slashes and dots, a backslash, a newline.
ESCAPING_NAMES = ("a\u2215b.jpg", "\uff0e\uff0e\u2215\uff0e\uff0e\u2215escape.jpg",
                  "back\\..\\slash.jpg", "new\nline.jpg",
                  "%2e%2e%2fpct.jpg", "x" * 200 + ".jpg")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, image_files, required_tool) -> dict:
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
    command = [required_tool("strace"), *STRACE[1:], "-o", str(trace), sys.executable,
               str(SCRIPT), str(data), str(out)]
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


def _arguments(text: str) -> list[str]:
    """The arguments of a call, `text` starting after its '(': split at the commas outside
    strings, `<path>`s and brackets, up to the call's own ')' (or the end of an unfinished one)."""
    arguments, current, depth, i = [], "", 0, 0
    while i < len(text):
        c = text[i]
        if c == '"':  # a string: up to the next quote that is not escaped
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            current, i = current + text[i:end + 1], end + 1
            continue
        if c == "<" and DESCRIPTOR.fullmatch(current.strip() + "<>"):  # strace escapes '>'
            end = text.find(">", i)
            end = len(text) if end < 0 else end + 1
            current, i = current + text[i:end], end
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            arguments.append(current.strip())
            current, i = "", i + 1
            continue
        current, i = current + c, i + 1
    return [*arguments, current.strip()]


def _call_paths(call: str, arguments: list[str], cwd: str) -> list[tuple[str, str]]:
    """(call, absolute path) of each file one write-class call acts on; [] for other calls."""
    if call not in WRITE_CALLS:
        return []
    flags = " ".join(a for a in arguments if not a.startswith('"'))  # not a name's letters
    if call in OPEN_CALLS and not any(flag in flags for flag in WRITE_FLAGS):
        return []
    found, folder = [], None  # folder: the directory descriptor a next name is relative to
    for index, argument in enumerate(arguments):
        descriptor = DESCRIPTOR.fullmatch(argument)
        if argument.startswith('"'):
            name = _unescape(argument[1:argument.rindex('"')])
            found.append((call, os.path.normpath(os.path.join(folder or cwd, name))))
            folder = None
        elif descriptor:
            folder = _unescape(descriptor["path"])
            named = index + 1 < len(arguments) and arguments[index + 1].startswith('"')
            if not named and descriptor["number"] != "AT_FDCWD":
                found.append((call, os.path.normpath(folder)))  # fchmod(3</x>), utimensat(3, NULL)
        else:
            folder = None
    return found


def _write_calls(trace: str, cwd: Path) -> list[tuple[str, str]]:
    """(call, absolute path) of every write-class call in an `strace -f -y` log.

    Each line is `PID call(arguments) = result` (or `[pid PID] ...`, or no PID in an `-ff` file).
    A call that blocks while another thread or process makes one is split: `PID call(arguments
    <unfinished ...>`, then later `PID <... call resumed>rest`; the two are joined before the
    call is read. A call never resumed (its process died in it) is read as it began. A relative
    name is resolved against the descriptor printed before it, else the working folder
    (AT_FDCWD's, last printed for that process).
    """
    found, pending, folders = [], {}, {}
    for line in trace.splitlines():
        match = LINE.fullmatch(line)
        pid, rest = match["pid"] or match["bracketed"] or "", match["rest"]
        resumed = RESUMED.fullmatch(rest)
        if resumed:
            began = pending.pop(pid, None)
            if began is None:  # began before strace attached: its arguments were never printed
                continue
            rest = began + resumed["rest"]
        if rest.endswith(UNFINISHED):
            pending[pid] = rest[: -len(UNFINISHED)]
            continue
        call, parenthesis, text = rest.partition("(")
        if not parenthesis or not call.isidentifier():
            continue  # signals (--- SIGCHLD ---), exits (+++ exited +++)
        arguments = _arguments(text)
        working = DESCRIPTOR.fullmatch(arguments[0])
        if working and working["number"] == "AT_FDCWD":
            folders[pid] = _unescape(working["path"])
        found.extend(_call_paths(call, arguments, folders.get(pid, str(cwd))))
    for pid, began in pending.items():
        call, _, text = began.partition("(")
        found.extend(_call_paths(call, _arguments(text), folders.get(pid, str(cwd))))
    return found


def _written_paths(trace: str, cwd: Path) -> list[str]:
    """Every path a write-class call named (opened for writing, created, changed, removed)."""
    return [path for _, path in _write_calls(trace, cwd)]


# Lines as `strace -f -y -o` writes them (pids first), three threads and a child interleaved.
TRACE_BY_HAND = r"""
101 openat(AT_FDCWD</work>, "/out/a", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666 <unfinished ...>
102 openat(AT_FDCWD</work>, "/lib/x.so", O_RDONLY|O_CLOEXEC) = 3</lib/x.so>
102 renameat2(AT_FDCWD</work>, "tmp/b", 7</else>, "c", RENAME_NOREPLACE <unfinished ...>
[pid   103] mkdir("made, here", 0777 <unfinished ...>
101 <... openat resumed>)             = 4</out/a>
102 <... renameat2 resumed>)          = 0
[pid   103] <... mkdir resumed>)      = 0
103 unlinkat(5</data/cats>, "x\n\342\210\225.jpg", 0) = 0
104 fchmod(6</data/dogs/0.jpg>, 0777) = 0
104 openat(AT_FDCWD</work>, "O_WRONLY.jpg", O_RDONLY) = 3</work/O_WRONLY.jpg>
104 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=105, si_status=0} ---
105 openat(AT_FDCWD</work/sub>, "rel", O_RDONLY|O_DIRECTORY) = 3</work/sub/rel>
105 mkdir("late", 0700)               = 0
106 <... write resumed>)              = 5
106 openat(AT_FDCWD</work>, "/killed/mid-call", O_RDWR|O_CREAT, 0600 <unfinished ...>
106 +++ killed by SIGKILL +++
"""


def test_the_trace_parser_joins_calls_split_by_other_threads():
    assert sorted(_write_calls(TRACE_BY_HAND, Path("/start"))) == sorted([
        ("openat", "/out/a"),  # split by thread 102's call
        ("renameat2", "/work/tmp/b"), ("renameat2", "/else/c"),
        ("mkdir", "/start/made, here"),  # 103 printed no folder yet: the one strace began in
        ("unlinkat", "/data/cats/x\n\u2215.jpg"),  # relative to its directory descriptor
        ("fchmod", "/data/dogs/0.jpg"),  # a descriptor's own file
        ("mkdir", "/work/sub/late"),  # 105 works in /work/sub
        ("openat", "/killed/mid-call"),  # never resumed: its process died in it
    ])  # not /lib/x.so nor O_WRONLY.jpg, opened read-only


def test_the_trace_parser_sees_every_write_of_threads_and_a_child_in_a_real_trace(
        tmp_path, required_tool):
    # A thread blocks opening a FIFO for writing until the main thread opens it for reading,
    # so strace must split a call; a forked child writes; names relative to a descriptor.
    script = """if True:
        import os, sys, threading, time
        root = sys.argv[1]
        def writer(name):
            with open(os.path.join(root, name), "w") as handle:
                handle.write("x")
        threads = [threading.Thread(target=writer, args=(n,)) for n in ("fifo", "t1", "t2")]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        for i in range(3):
            open(os.path.join(root, f"main-{i}"), "w").close()
        with open(os.path.join(root, "fifo")) as handle:
            handle.read()
        for thread in threads:
            thread.join()
        child = os.fork()
        if child == 0:
            open(os.path.join(root, "from-child"), "w").close()
            os._exit(0)
        os.waitpid(child, 0)
        folder = os.open(root, os.O_RDONLY)
        os.unlink("main-0", dir_fd=folder)
        os.fchmod(os.open(os.path.join(root, "main-1"), os.O_RDONLY), 0o600)
    """
    root, trace = tmp_path / "root", tmp_path / "strace.log"
    root.mkdir()
    os.mkfifo(root / "fifo")
    subprocess.run([required_tool("strace"), *STRACE[1:], "-o", str(trace), sys.executable,
                    "-c", script, str(root)], check=True, timeout=120)
    log = trace.read_text(encoding="utf-8")
    assert UNFINISHED in log and " resumed>" in log  # the case this parser exists for
    calls = set(_write_calls(log, tmp_path))
    expected = {("openat", str(root / name))
                for name in ("fifo", "t1", "t2", "main-0", "main-1", "main-2", "from-child")}
    expected |= {("unlinkat", str(root / "main-0")), ("fchmod", str(root / "main-1"))}
    assert expected <= calls, expected - calls


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
