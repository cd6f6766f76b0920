"""Scheduled retraining on one machine: the cron loop, the output lock, and `--if-new-data`."""

import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeline.cli.schedule as schedule_module
from pipeline.cli import cli
from pipeline.cli.options import check_cron
from pipeline.errors import UserError
from pipeline.local.lock import output_lock
from pipeline.local.new_data import (
    DataState,
    data_state,
    new_data_decision,
    read_last_run,
    record_run,
)
from pipeline.local.schedule import run_on_schedule

UTC = datetime.timezone.utc
HOLD_LOCK = ("import sys\nfrom pathlib import Path\nfrom pipeline.local.lock import output_lock\n"
             "with output_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n"
             "    sys.stdin.readline()\n")


class FakeClock:
    """A clock that moves only when the scheduler sleeps or a fake run takes time."""

    def __init__(self, start: datetime.datetime) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> datetime.datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += datetime.timedelta(seconds=seconds)


def _images(root: Path, classes=("cats", "dogs")) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "1.jpg").write_bytes(b"\xff\xd8\xff")
    return root


def test_runs_at_each_cron_time_and_skips_the_times_a_long_run_overlapped():
    clock = FakeClock(datetime.datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    durations = iter([datetime.timedelta(hours=1), datetime.timedelta(hours=50),
                      datetime.timedelta(minutes=5)])
    started, lines = [], []

    def run_once() -> int:
        started.append(clock.now())
        clock.time += next(durations)
        return 0 if len(started) != 2 else 2

    runs = run_on_schedule("0 3 * * *", run_once, clock.now, clock.sleep, lines.append,
                           max_runs=3)
    assert runs == 3
    assert started == [datetime.datetime(2026, 3, d, 3, 0, tzinfo=UTC) for d in (2, 3, 6)]
    assert max(clock.sleeps) <= 60.0  # short sleeps: a suspended machine is noticed
    assert "ended at 05:00 with exit code 2; skipped 2 scheduled time(s)" in lines[3]


@pytest.mark.parametrize("cron,fields,expected", [
    ("0 3 * * *", 5, "0 3 * * *"), ("0  0 3 * * *", 6, "0 0 3 * * *"),
    ("0 0 3 ? * *", 6, "0 0 3 ? * *"),
])
def test_cron_accepted(cron, fields, expected):
    assert check_cron(cron, fields) == expected


@pytest.mark.parametrize("cron,fields,expected", [
    ("0 0 3 * * *", 5, "has 6 fields"), ("0 3 * *", 5, "has 4 fields"),
    ("0 27 * * *", 5, "not a valid cron"), ("@daily", 5, "has 1 fields"),
])
def test_cron_refused(cron, fields, expected):
    with pytest.raises(UserError, match=expected):
        check_cron(cron, fields)


@pytest.mark.parametrize("current,last,runs,reason", [
    (DataState("/d", latest_span=3), None, True, "no earlier run"),
    (DataState("/d", latest_span=3), DataState("/d", latest_span=2), True, "span 3 arrived"),
    (DataState("/d", latest_span=3), DataState("/d", latest_span=3), False, "no new span"),
    (DataState("/d", latest_span=2), DataState("/d", latest_span=3), False, "no new span"),
    (DataState("/d", latest_span=1), DataState("/d", fingerprint="ab"), True, "span 1 arrived"),
    (DataState("/e", latest_span=3), DataState("/d", latest_span=3), True, "data folder changed"),
    (DataState("/d", fingerprint="ab"), DataState("/d", fingerprint="ab"), False, "no file"),
    (DataState("/d", fingerprint="cd"), DataState("/d", fingerprint="ab"), True, "files under"),
])
def test_new_data_decision(current, last, runs, reason):
    decision = new_data_decision(current, last)
    assert decision.run is runs
    assert reason in decision.reason


def test_data_state_reads_the_latest_span_or_fingerprints_the_files(tmp_path):
    spans = tmp_path / "spans"
    for n in (1, 2, 10):
        _images(spans / f"span-{n}")
    (spans / "span-11").write_text("a file, not a span folder")
    assert data_state(spans) == DataState(str(spans.resolve()), latest_span=10)

    flat = _images(tmp_path / "flat")
    before = data_state(flat)
    assert before.latest_span is None and before.fingerprint
    assert data_state(flat) == before
    (flat / "cats" / "2.jpg").write_bytes(b"\xff\xd8\xff")
    added = data_state(flat)
    assert added.fingerprint != before.fingerprint
    os.utime(flat / "cats" / "1.jpg", ns=(1, 1))
    assert data_state(flat).fingerprint != added.fingerprint


def test_last_run_record_round_trips_and_a_broken_one_means_none(tmp_path):
    state = DataState("/data", latest_span=4)
    assert read_last_run(tmp_path) is None
    record_run(tmp_path, state)
    assert read_last_run(tmp_path) == state
    (tmp_path / "last_run.json").write_text("{not json")
    assert read_last_run(tmp_path) is None


def test_lock_is_exclusive_across_processes_and_freed_when_its_holder_dies(tmp_path):
    data, out = _images(tmp_path / "images"), tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"another imgpipe run is using .*pid {holder.pid}"):
            with output_lock(out):
                pass
        result = CliRunner().invoke(cli, ["run", "--data", str(data), "--output", str(out),
                                          "--weights", "none"])
        assert isinstance(result.exception, UserError)  # main() prints it as one line, exit 2
        assert str(result.exception).startswith(f"another imgpipe run is using {out} (pid")
        assert "\n" not in str(result.exception)
        assert not (out / "pipeline").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with output_lock(out):  # the kernel let go of the killed holder's lock
        assert (out / ".imgpipe.lock").read_text().startswith(f"pid {os.getpid()},")


def test_run_if_new_data_skips_in_one_line_when_nothing_changed(tmp_path):
    data, out = _images(tmp_path / "images"), tmp_path / "out"
    out.mkdir()
    record_run(out, data_state(data))
    result = CliRunner().invoke(cli, ["run", "--data", str(data), "--output", str(out),
                                      "--weights", "none", "--if-new-data"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.output.strip() == ("skipped: no file under the data folder changed since "
                                     "the last run (--if-new-data)")
    assert not (out / "pipeline").exists()


def test_run_if_new_data_skips_when_no_span_arrived_since_the_last_run(tmp_path):
    data, out = tmp_path / "spans", tmp_path / "out"
    for span in (1, 2):
        _images(data / f"span-{span}")
    out.mkdir()
    record_run(out, data_state(data))
    result = CliRunner().invoke(cli, ["run", "--data", str(data), "--output", str(out),
                                      "--weights", "none", "--if-new-data"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.output.strip() == ("skipped: no new span since the last run (latest span 2, "
                                     "already read) (--if-new-data)")
    assert not (out / "pipeline").exists()


def test_schedule_checks_run_flags_first_and_runs_imgpipe_run_with_them(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(schedule_module.subprocess, "run", lambda command, check: (
        commands.append(command) or subprocess.CompletedProcess(command, 0)))
    monkeypatch.setattr(schedule_module, "run_on_schedule",
                        lambda cron, run_once, *args: run_once())
    base = ["schedule", "--cron", "0 3 * * *", "--data", str(tmp_path / "d"), "--output",
            str(tmp_path / "o")]
    result = CliRunner().invoke(cli, [*base, "--epochs", "0"])
    assert "imgpipe run would refuse these flags" in str(result.exception)
    assert commands == []
    result = CliRunner().invoke(cli, [*base, "--if-new-data", "--weights", "none"])
    assert result.exit_code == 0, (result.output, result.exception)
    (command,) = commands
    assert command[0] == sys.executable
    assert command[3:] == ["run", "--data", str(tmp_path / "d"), "--output",
                           str(tmp_path / "o"), "--if-new-data", "--weights", "none"]


def test_a_refused_run_leaves_no_output_folder_but_an_existing_one_stays(tmp_path):
    new, existing = tmp_path / "new", tmp_path / "existing"
    existing.mkdir()
    for out in (new, existing):
        with pytest.raises(UserError, match="refused"):
            with output_lock(out):
                raise UserError("refused")
    assert not new.exists()
    assert existing.is_dir()
