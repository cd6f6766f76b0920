"""`imgpipe tensorboard`: TensorBoard on the Trainer's logs of every run of one output folder.

The Trainer writes TensorBoard logs (its `TensorBoard` callback, `train/` and `validation/`) into
its `model_run` artifact, `OUTPUT/pipeline/Trainer/model_run/<execution id>/`. Each such folder
holding event files becomes one run named `execution-<id>`.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline.errors import UserError
from pipeline.local.layout import OutputLayout

TRAINER_LOGS = OutputLayout(Path()).trainer_logs_dir  # relative to the output folder
EVENT_FILES = "events.out.tfevents.*"
HOST = "127.0.0.1"


def _order(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 62, path.name)


def find_log_dirs(output_dir: Path) -> dict[str, Path]:
    """The Trainer's log folders under an `imgpipe run --output` folder, by run name.

    Raises:
        UserError: when the folder does not exist or holds no Trainer logs.
    """
    if not output_dir.is_dir():
        raise UserError(f"--output {output_dir} is not a folder; pass the folder given to "
                        "'imgpipe run --output'")
    root = output_dir / TRAINER_LOGS
    runs = {}
    if root.is_dir():
        for child in sorted(root.iterdir(), key=_order):
            if child.is_dir() and next(child.rglob(EVENT_FILES), None) is not None:
                runs[f"execution-{child.name}"] = child.resolve()
    if not runs:
        raise UserError(f"no Trainer logs under {root}: no run on this output has trained yet; "
                        f"run 'imgpipe run --output {output_dir}' first")
    return runs


def tensorboard_args(runs: dict[str, Path], port: int) -> list[str]:
    """TensorBoard's flags: one named run per log folder, served on loopback at `port`."""
    spec = ",".join(f"{name}:{path}" for name, path in runs.items())
    if any("," in str(path) for path in runs.values()):
        # TensorBoard splits --logdir_spec on commas; the parent folder names runs by id too.
        logdir = ["--logdir", str(next(iter(runs.values())).parent)]
    else:
        logdir = ["--logdir_spec", spec]
    return [*logdir, "--host", HOST, "--port", str(port)]


@click.command("tensorboard")
@click.option("--output", "output_dir", required=True, type=click.Path(path_type=Path),
              help="An 'imgpipe run --output' folder.")
@click.option("--port", default=6006, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0 picks a free one).")
def tensorboard(output_dir: Path, port: int) -> None:
    """TensorBoard on the Trainer's logs, one run per Trainer execution; Ctrl-C stops it."""
    runs = find_log_dirs(output_dir)
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, *tensorboard_args(runs, port)])
    try:
        url = board.launch()
    except program.TensorBoardServerException as error:
        raise UserError(f"TensorBoard could not start on {HOST}:{port} ({error.msg}); pass "
                        "another --port") from None
    click.echo(f"TensorBoard on {len(runs)} Trainer run(s) ({', '.join(runs)}): {url}")
    click.echo("press Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopped")
