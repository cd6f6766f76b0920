"""Retraining on one machine: a cron loop, one run at a time per output, and a new-data check.

`imgpipe schedule` runs `imgpipe run` at the times a cron expression names, in the foreground.
Every `imgpipe run` holds an exclusive lock on OUTPUT/.imgpipe.lock while it runs, so a second
run on the same output, scheduled or by hand, refuses at once. After each successful run,
OUTPUT/last_run.json records what the data looked like; `imgpipe run --if-new-data` compares the
data with it and skips the run when nothing new arrived.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from pipeline.cli import cli
from pipeline.errors import UserError

LOCK_FILE = ".imgpipe.lock"
LAST_RUN_FILE = "last_run.json"
SPAN_FOLDER = re.compile(r"^span-([0-9]+)$")
MAX_SLEEP_SECONDS = 60.0  # wake up often: a suspended machine or a clock change is noticed
TIME_ZONE_PREFIX = re.compile(r"^(CRON_)?TZ=[A-Za-z0-9_+\-/]+\s+")


def check_cron(cron: str, fields: int, time_zone: bool = False) -> str:
    """`cron` normalized to single spaces; a wrong field count or value is a one-line error.

    Six fields put seconds first (KFP's robfig/cron). With `time_zone`, a leading `TZ=<zone> `
    or `CRON_TZ=<zone> ` (Vertex AI's) is kept.
    """
    from croniter import croniter

    text, prefix = cron.strip(), ""
    zone = TIME_ZONE_PREFIX.match(text)
    if zone and not time_zone:
        raise UserError(f"--cron {cron!r}: no time zone prefix here; the schedule follows this "
                        "machine's local time")
    if zone:
        prefix, text = zone.group(0).strip() + " ", text[zone.end():]
    body = " ".join(text.split())
    example = "'0 0 3 * * *' (03:00 daily)" if fields == 6 else "'0 3 * * *' (03:00 daily)"
    if len(body.split()) != fields:
        raise UserError(f"--cron {cron!r} has {len(body.split())} fields; this scheduler takes "
                        f"{fields}, e.g. {example}")
    if not croniter.is_valid(body, second_at_beginning=fields == 6):
        raise UserError(f"--cron {cron!r} is not a valid cron expression; e.g. {example}")
    return prefix + body


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Holds OUTPUT/.imgpipe.lock exclusively, or fails at once if another process holds it.

    The kernel releases a flock when its process ends, however it ends, so a killed run never
    leaves a stale lock; the file itself stays and only says who holds it. When the body fails
    in a folder this call created and nothing but the lock was written, the folder is removed:
    a refused run leaves no output behind.
    """
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    fd = os.open(output / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise UserError(f"another imgpipe run is using {output} ({holder}); wait for it to "
                            "finish, or pass another --output") from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        try:
            yield
        except BaseException:
            if created and os.listdir(output) == [LOCK_FILE]:
                os.unlink(output / LOCK_FILE)  # still locked: nobody else can hold it now
                output.rmdir()
            raise
    finally:
        os.close(fd)


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
             if (m := SPAN_FOLDER.match(child.name)) and child.is_dir()]
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
        record = json.loads((output / LAST_RUN_FILE).read_text(encoding="utf-8"))
        return DataState(str(record["data"]), record.get("latest_span"),
                         record.get("fingerprint"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_run(output: Path, state: DataState) -> None:
    """Writes OUTPUT/last_run.json in one atomic step."""
    record = {**dataclasses.asdict(state),
              "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    partial = output / f".{LAST_RUN_FILE}.partial"
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, output / LAST_RUN_FILE)


def run_on_schedule(cron: str, run_once: Callable[[], int],
                    now: Callable[[], datetime.datetime], sleep: Callable[[float], None],
                    echo: Callable[[str], None], max_runs: int | None = None) -> int:
    """Calls `run_once` at each time `cron` names, never two at once; returns how many ran.

    A run that lasts past later scheduled times skips them (they are reported), so runs never
    pile up. `now` must return time-zone-aware datetimes; `max_runs` None runs until stopped.
    """
    from croniter import croniter

    runs = 0
    due = croniter(cron, now()).get_next(datetime.datetime)
    while max_runs is None or runs < max_runs:
        echo(f"next run at {due:%Y-%m-%d %H:%M %Z}".rstrip())
        while (remaining := (due - now()).total_seconds()) > 0:
            sleep(min(remaining, MAX_SLEEP_SECONDS))
        code = run_once()
        runs += 1
        finished = now()
        times = croniter(cron, due)
        missed = 0
        while (following := times.get_next(datetime.datetime)) <= finished:
            missed += 1
        echo(f"run due at {due:%Y-%m-%d %H:%M} ended at {finished:%H:%M} with exit code {code}"
             + (f"; skipped {missed} scheduled time(s) it overlapped" if missed else ""))
        due = following
    return runs


@cli.command("schedule", context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})
@click.option("--cron", required=True,
              help="Five fields, this machine's local time: '0 3 * * *' is 03:00 daily.")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="As for imgpipe run.")
@click.option("--output", "output_dir", required=True, type=click.Path(path_type=Path),
              help="As for imgpipe run.")
@click.pass_context
def schedule(ctx: click.Context, cron: str, data_dir: Path, output_dir: Path) -> None:
    """Run `imgpipe run` on a cron schedule, in the foreground; other flags go to `run`."""
    from pipeline.run_command import run

    cron = check_cron(cron, 5)
    run_args = ["--data", str(data_dir), "--output", str(output_dir), *ctx.args]
    try:  # the flags are checked now, not at three in the morning
        run.make_context("run", list(run_args))
    except click.ClickException as error:
        raise UserError(f"imgpipe run would refuse these flags: {error.format_message()}"
                        ) from None
    command = [sys.executable, "-c", "from pipeline.cli import main; main()", "run", *run_args]
    click.echo(f"scheduled 'imgpipe run {' '.join(run_args)}' at '{cron}' (local time); "
               "Ctrl-C stops")

    def run_once() -> int:
        return subprocess.run(command, check=False).returncode

    def echo(line: str) -> None:
        click.echo(f"[{datetime.datetime.now():%Y-%m-%d %H:%M:%S}] {line}")

    run_on_schedule(cron, run_once, lambda: datetime.datetime.now().astimezone(), time.sleep,
                    echo)
