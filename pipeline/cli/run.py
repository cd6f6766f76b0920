"""`imgpipe run`: check the inputs, run the pipeline on this machine, print and save the summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import (
    Destination,
    build_pipeline_config,
    check_model_name,
    hparams_from_options,
    in_flag_names,
    model_options,
    pipeline_options,
    tune_config,
)
from pipeline.errors import UserError
from pipeline.local import runner

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.local.dataset import DatasetScan
    from pipeline.local.layout import OutputLayout
    from pipeline.results.summary import RunSummary


def echo_scan(scan: DatasetScan, window: int = 1) -> None:
    """What the run will read, and every file it will not, before anything runs."""
    where = f"span {scan.span} of {len(scan.spans)}" if scan.span is not None else "data"
    if window > 1 and scan.span is not None:
        earlier = [n for n in scan.spans if scan.span - window < n < scan.span]
        if earlier:
            where += " (with span" + ("s " if len(earlier) > 1 else " ") + ", ".join(
                str(n) for n in earlier) + f" in a window of {window})"
    layout = "given train/ and eval/ folders" if scan.given_splits else "hash-split"
    click.echo(f"{where}: {scan.image_count} images in {len(scan.class_names)} classes ("
               + ", ".join(f"{name} {n}" for name, n in scan.images_per_class.items())
               + f"), {layout}")
    if scan.skipped:
        click.echo(f"skipped {len(scan.skipped)} system files (hidden, .DS_Store, Thumbs.db, "
                   "desktop.ini; not data, never counted as quarantined):")
        for path in scan.skipped:
            click.echo(f"  {path}")
    if scan.left_out:
        click.echo(f"left out {len(scan.left_out)} files that are not images in a class folder "
                   "(quarantined if in a folder read):")
        for path in scan.left_out:
            click.echo(f"  {path}")


def run_and_summarize(config: PipelineConfig, layout: OutputLayout, with_report: bool = True
                      ) -> tuple[RunSummary, str]:
    """`runner.run_and_summarize`, talking to this terminal."""
    return runner.run_and_summarize(config, layout, with_report, echo=click.echo,
                                    terminal=click.get_text_stream("stdout"))


@click.command("run")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="A folder of class folders: DATA/<class>/<image>.")
@click.option("--output", "output_dir", required=True, type=click.Path(path_type=Path),
              help="Where artifacts, ML Metadata, logs and the served model go.")
@click.option("--model-name", default="image_classifier", show_default=True,
              help="Name under OUTPUT/serving/ (TF Serving's model name).")
@pipeline_options
@click.option("--window", default=1, show_default=True, type=click.IntRange(1),
              help="With DATA/span-<N>/ folders: train and evaluate on the last K spans up to "
                   "the one read (a rolling window); 1 is that span alone.")
@click.option("--infra-validation", type=click.Choice(["local", "docker"]), default="local",
              show_default=True,
              help="How the model is loaded and queried before the push: in a fresh Python "
                   "process, or in TF Serving's Docker image through TFX's InfraValidator.")
@click.option("--if-new-data", is_flag=True,
              help="Skip the run (exit 0) when no new span or changed file arrived since the "
                   "last successful run on this output (OUTPUT/last_run.json).")
@click.option("--no-report", is_flag=True,
              help="Do not write OUTPUT/report.html (it loads the trained model once more).")
@model_options
def run(data_dir: Path, output_dir: Path, model_name: str, window: int, infra_validation: str,
        if_new_data: bool, no_report: bool, weights: str, **options) -> None:
    """Ingest, validate, train, evaluate and push, on this machine."""
    from pipeline.local.disk_space import disk_full_error, is_disk_full
    from pipeline.local.interrupt import as_stopped, stop_on_signals
    from pipeline.local.layout import OutputLayout
    from pipeline.local.lock import output_lock
    from pipeline.local.new_data import data_state, new_data_decision, read_last_run, record_run
    from pipeline.local.preflight import (
        check_data_names,
        check_data_readable,
        check_docker,
        check_metadata_store,
        check_output_writable,
        check_paths,
        check_weights,
        resolve_weights,
    )

    check_model_name(model_name, "--model-name")
    tune_config(options)  # a --tune-space file that cannot be used is refused before any work
    span = options["span"]
    weights = resolve_weights(weights)
    check_paths(data_dir, output_dir)  # before the lock, which creates the output folder
    check_output_writable(output_dir)
    if if_new_data and span is not None:
        raise UserError("--if-new-data looks for a span later than the last run's; drop --span")
    check_data_readable(data_dir)
    check_data_names(data_dir)
    # The lock is taken before TFX loads (pipeline.local.dataset imports it), so a second run
    # refuses at once: one run per output at a time, the checks too, under it.
    try:
        with stop_on_signals(), output_lock(output_dir):
            check_metadata_store(output_dir)
            from pipeline.local.dataset import scan_dataset

            scan = scan_dataset(data_dir, span)
            if window > 1 and not scan.spans:
                raise UserError(f"--window {window} needs the data in span folders "
                                f"({data_dir}/span-<N>/...), and there are none; drop --window")
            state = data_state(data_dir)  # before the run: files arriving during it count as new
            if if_new_data:
                decision = new_data_decision(state, read_last_run(output_dir))
                if not decision.run:
                    click.echo(f"skipped: {decision.reason} (--if-new-data)")
                    return
            hparams = hparams_from_options(scan.class_names, weights, options)
            echo_scan(scan, window)
            if infra_validation == "docker":
                check_docker()
            application = check_weights(hparams)
            from pipeline.local.input_scaling import resolve_input_scaling

            try:
                hparams, resolution = resolve_input_scaling(hparams, scan.read_root, application)
            except ValueError as error:
                raise UserError(in_flag_names(str(error))) from None
            del application  # not held in memory while the pipeline runs
            click.echo(f"base input scaling: {resolution.describe()}")
            if resolution.warning:
                click.echo(f"warning: {in_flag_names(resolution.warning)}", err=True)

            layout = OutputLayout(output_dir.resolve())
            destination = Destination(
                pipeline_name=model_name, pipeline_root=str(layout.pipeline_root),
                data_root=str(data_dir.resolve()),
                serving_model_dir=str(layout.model_base_path(model_name)))
            config = build_pipeline_config(destination, hparams, options, spans=bool(scan.spans),
                                           given_splits=scan.given_splits, window=window,
                                           infra_validation=infra_validation)
            summary, report = run_and_summarize(config, layout, with_report=not no_report)
            for line in summary.lines():
                click.echo(line)
            if report:
                click.echo(f"report: {report}")
            record_run(output_dir, state)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM, SIGHUP: the CLI prints one line
        raise as_stopped(interrupt) from None
    except Exception as error:  # a disk that filled outside a step (the lock, the summary)
        if isinstance(error, UserError) or not is_disk_full(error):
            raise
        raise disk_full_error(error, output_dir, "while imgpipe run wrote its own files"
                              ) from None
