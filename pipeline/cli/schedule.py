"""`imgpipe schedule`: `imgpipe run` on a cron schedule, in the foreground, one run at a time."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from pathlib import Path

import click

from pipeline.cli.options import check_cron
from pipeline.cli.run import run
from pipeline.errors import UserError
from pipeline.local.schedule import run_on_schedule


@click.command("schedule", context_settings={"ignore_unknown_options": True,
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
