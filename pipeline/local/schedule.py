"""Retraining on one machine: `imgpipe run` at the times a cron expression names, one at a time.

Each run holds the output's lock (`pipeline.local.lock`), so a second run on the same output,
scheduled or by hand, refuses at once; `--if-new-data` skips runs when nothing new arrived.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

MAX_SLEEP_SECONDS = 60.0  # wake up often: a suspended machine or a clock change is noticed


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
