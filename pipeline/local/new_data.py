"""`imgpipe run --if-new-data`: what the data looked like at the last successful run, and now.

After each successful run, OUTPUT/last_run.json records the data's latest span or, for data
without spans, a fingerprint of its file listing; the next run compares the data with it.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from pathlib import Path

from components.image_example_gen.files import SPAN_FOLDER
from pipeline.local.disk_space import write_whole
from pipeline.local.layout import OutputLayout


@dataclasses.dataclass(frozen=True)
class DataState:
    """What the data looked like: its latest span, or for data without spans, its files."""

    data: str
    latest_span: int | None = None
    fingerprint: str | None = None  # of the file listing, when the data has no spans

    def describe(self) -> str:
        """A few words for the messages."""
        return (f"latest span {self.latest_span}" if self.latest_span is not None
                else f"files {self.fingerprint[:12] if self.fingerprint else 'unknown'}")


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether `--if-new-data` runs the pipeline, and why, in one line."""

    run: bool
    reason: str


def listing_fingerprint(root: Path) -> str:
    """SHA-256 of every file's relative path, size and modification time under `root`."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def data_state(data: Path) -> DataState:
    """The data's state now: the largest N of its span-<N> folders, else its listing's hash."""
    root = data.resolve()
    spans = [int(m.group(1)) for child in root.iterdir()
             if (m := SPAN_FOLDER.fullmatch(child.name)) and child.is_dir()]
    if spans:
        return DataState(str(root), latest_span=max(spans))
    return DataState(str(root), fingerprint=listing_fingerprint(root))


def new_data_decision(current: DataState, last: DataState | None) -> Decision:
    """Runs when no run was recorded, the data folder changed, a later span arrived, or (without
    spans) any file was added, removed or changed since the recorded run."""
    if last is None:
        return Decision(True, "no earlier run is recorded")
    if current.data != last.data:
        return Decision(True, f"the data folder changed ({last.data} -> {current.data})")
    if current.latest_span is not None:
        if last.latest_span is None or current.latest_span > last.latest_span:
            return Decision(True, f"span {current.latest_span} arrived since the last run "
                                  f"({last.describe()})")
        return Decision(False, f"no new span since the last run (latest span "
                               f"{current.latest_span}, already read)")
    if current.fingerprint != last.fingerprint:
        return Decision(True, "files under the data folder changed since the last run")
    return Decision(False, "no file under the data folder changed since the last run")


def read_last_run(output: Path) -> DataState | None:
    """The state recorded by the last successful run, or None (none, or unreadable)."""
    try:
        record = json.loads(OutputLayout(output).last_run_path.read_text(encoding="utf-8"))
        return DataState(str(record["data"]), record.get("latest_span"),
                         record.get("fingerprint"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_run(output: Path, state: DataState) -> None:
    """Writes OUTPUT/last_run.json in one atomic step."""
    record = {**dataclasses.asdict(state),
              "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    write_whole(OutputLayout(output).last_run_path,
                (json.dumps(record, indent=2) + "\n").encode("utf-8"))
