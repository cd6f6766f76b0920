"""`imgpipe run`: check the inputs, run the pipeline locally, print and save the summary."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli import MODEL_NAME, cli
from pipeline.errors import UserError
from pipeline.model_options import hparams_from_options, model_options

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.dataset import DatasetScan
    from pipeline.local_runner import OutputLayout
    from pipeline.summary import RunSummary
    from trainer.hparams import HParams


def resolve_weights(value: str) -> str:
    """'imagenet', 'none' or an absolute path of an existing .h5 file; anything else is an error."""
    if value in ("imagenet", "none"):
        return value
    path = Path(value)
    if path.suffix.lower() != ".h5":
        raise UserError(f"unknown --weights value {value!r}: use imagenet, none or the path of "
                        "an .h5 weights file")
    if not path.is_file():
        raise UserError(f"weights file {value} does not exist; pass an existing .h5 file, "
                        "or make one with 'imgpipe pretrain-base'")
    return str(path.resolve())


def check_weights(hp: HParams) -> None:
    """Fails early, before any component runs, on weights the Trainer could not load.

    This builds the base once with the weights: for 'imagenet' Keras downloads its no-top weights
    into its cache now (the Trainer then reads them from there); a local file is checked against
    its pinned digest and loaded, so a file that is not HDF5 or does not fit the base stops the
    run here, with one line.
    """
    from trainer.bases import build_application, check_weights_file

    if hp.weights == "imagenet":
        try:
            build_application(hp.base_spec, hp.image_size, "imagenet")
        except Exception as error:  # noqa: BLE001  (any failure means: no weights)
            lines = str(error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            raise UserError(f"could not get ImageNet weights for {hp.base} ({reason}); without "
                            "internet pass --weights PATH.h5 (e.g. from 'imgpipe pretrain-base')"
                            ) from None
    elif hp.weights != "none":
        try:
            check_weights_file(hp.weights, hp.weights_sha256)
        except ValueError as error:
            raise UserError(f"{error}; pass the pinned file or correct --weights-sha256") from None
        try:
            build_application(hp.base_spec, hp.image_size, hp.weights)
        except Exception as error:  # noqa: BLE001  (h5py, Keras and our check raise various)
            lines = str(error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            raise UserError(f"weights file {hp.weights} does not fit the {hp.base} base "
                            f"({reason}); pass a no-top {hp.base} .h5 file") from None


def check_docker() -> None:
    """A Docker engine must answer before `--infra-validation docker` starts the pipeline."""
    import docker

    try:
        docker.from_env(timeout=10).ping()
    except Exception as error:  # noqa: BLE001  (docker raises several kinds when unreachable)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--infra-validation docker needs a Docker engine, and none answers "
                        f"({reason[:160]}); start Docker or use --infra-validation local"
                        ) from None


def check_paths(data: Path, output: Path) -> None:
    """The data and output folders must not contain each other."""
    data, output = data.resolve(), output.resolve()
    if data == output or data in output.parents or output in data.parents:
        raise UserError(f"--data {data} and --output {output} overlap; put the output folder "
                        "outside the data folder")


def eval_buckets(eval_percent: int) -> tuple[int, int]:
    """(train, eval) hash buckets for an eval share in percent, in lowest terms: 20 -> (4, 1)."""
    divisor = math.gcd(100 - eval_percent, eval_percent)
    return (100 - eval_percent) // divisor, eval_percent // divisor


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
        click.echo(f"skipped {len(scan.skipped)} files that are not images in a class folder:")
        for path in scan.skipped:
            click.echo(f"  {path}")


@contextlib.contextmanager
def stderr_to(log_path: Path, *also: logging.Handler) -> Iterator[None]:
    """Sends file descriptor 2 (TensorFlow's C++ logs, Beam, absl) and Python logging to a file.

    Handlers in `also` receive Python logging too (e.g. the terminal's progress lines).
    absl's verbosity is set to INFO as well: TensorFlow's SavedModel writer sets it back to the
    value of absl's `--verbosity` flag (WARNING unless given) after each save, which from
    Transform's first save on would drop TFX's own INFO lines ("Component X is finished.").
    """
    from absl import logging as absl_logging

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log_file:
        saved_fd = os.dup(2)
        handler = logging.StreamHandler(log_file)
        root = logging.getLogger()
        saved_handlers, root.handlers = root.handlers, [handler, *also]
        saved_level = root.level
        saved_verbosity = absl_logging.get_verbosity()
        root.setLevel(logging.INFO)
        absl_logging.set_verbosity(absl_logging.INFO)
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            log_file.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            root.handlers = saved_handlers
            root.setLevel(saved_level)
            absl_logging.set_verbosity(saved_verbosity)


@cli.command("run")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="A folder of class folders: DATA/<class>/<image>.")
@click.option("--output", "output_dir", required=True, type=click.Path(path_type=Path),
              help="Where artifacts, ML Metadata, logs and the served model go.")
@click.option("--accuracy-threshold", default=0.8, show_default=True,
              type=click.FloatRange(0.0, 1.0), help="Eval accuracy needed to bless and push.")
@click.option("--model-name", default="image_classifier", show_default=True,
              help="Name under OUTPUT/serving/ (TF Serving's model name).")
@click.option("--keep-versions", default=5, show_default=True, type=click.IntRange(1, 10_000),
              help="Newest pushed versions kept in OUTPUT/serving/<model-name>/.")
@click.option("--no-cache", is_flag=True, help="Re-run every component, even if unchanged.")
@click.option("--span", default=None, type=click.IntRange(0),
              help="With DATA/span-<N>/ folders: the span to read (default: the latest).")
@click.option("--window", default=1, show_default=True, type=click.IntRange(1),
              help="With DATA/span-<N>/ folders: train and evaluate on the last K spans up to "
                   "the one read (a rolling window); 1 is that span alone.")
@click.option("--eval-percent", default=20, show_default=True, type=click.IntRange(1, 99),
              help="Share of DATA/<class>/ images held out for evaluation (by a hash of the "
                   "path); not used with DATA/train/ and DATA/eval/ folders.")
@click.option("--max-quarantined", default=0.05, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="Stop when more than this fraction of the files found cannot be used.")
@click.option("--max-pixels", default=50_000_000, show_default=True,
              type=click.IntRange(1), help="Images with more pixels are quarantined unread.")
@click.option("--max-class-drift", default=0.25, show_default=True,
              type=click.FloatRange(0.0, 1.0, min_open=True),
              help="Largest change of any class's share against the previous span (L-infinity)"
                   " before the push is stopped.")
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
def run(data_dir: Path, output_dir: Path, accuracy_threshold: float, model_name: str,
        keep_versions: int, no_cache: bool, span: int | None, window: int, eval_percent: int,
        max_quarantined: float, max_pixels: int, max_class_drift: float,
        infra_validation: str, if_new_data: bool, no_report: bool, weights: str,
        **options) -> None:
    """Ingest, validate, train, evaluate and push, on this machine."""
    from pipeline.preflight import check_data_readable, check_metadata_store
    from pipeline.schedule import (
        data_state,
        new_data_decision,
        output_lock,
        read_last_run,
        record_run,
    )

    if not MODEL_NAME.match(model_name):
        raise UserError(f"--model-name {model_name!r} must be letters, digits, '_', '.' or '-'")
    weights = resolve_weights(weights)
    check_paths(data_dir, output_dir)  # before the lock, which creates the output folder
    if if_new_data and span is not None:
        raise UserError("--if-new-data looks for a span later than the last run's; drop --span")
    check_data_readable(data_dir)
    # Taken before TFX loads (pipeline.dataset imports it), so a second run refuses at once.
    with output_lock(output_dir):  # one run per output at a time; the check too, under it
        check_metadata_store(output_dir)
        from pipeline.dataset import scan_dataset

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
        check_weights(hparams)

        from components.image_example_gen.component import ImageLayout
        from components.image_example_gen.executor import IngestSettings
        from pipeline.config import DataCheckConfig, GateConfig, PipelineConfig, PushConfig
        from pipeline.local_runner import OutputLayout

        layout = OutputLayout(output_dir.resolve())
        config = PipelineConfig(
            pipeline_name=model_name,
            pipeline_root=str(layout.pipeline_root),
            data_root=str(data_dir.resolve()),
            serving_model_dir=str(layout.serving_dir / model_name),
            hparams=hparams,
            gate=GateConfig(accuracy_threshold=accuracy_threshold),
            layout=ImageLayout(spans=bool(scan.spans), given_splits=scan.given_splits, span=span,
                               train_eval_buckets=eval_buckets(eval_percent), window=window),
            ingest=IngestSettings(max_pixels=max_pixels,
                                  max_quarantined_fraction=max_quarantined),
            data=DataCheckConfig(max_class_drift=max_class_drift),
            push=PushConfig(keep_versions=keep_versions, infra_validation=infra_validation),
            enable_cache=not no_cache,
        )
        summary, report = run_and_summarize(config, layout, with_report=not no_report)
        for line in summary.lines():
            click.echo(line)
        if report:
            click.echo(f"report: {report}")
        record_run(output_dir, state)


def write_run_report(layout: OutputLayout, summary: RunSummary, stamp: str,
                     log_path: Path) -> str:
    """Writes the run's HTML report; returns its path, or why there is none (never raises)."""
    from pipeline.report import write_report

    with stderr_to(log_path):  # loading the model is noisy on file descriptor 2
        try:
            return str(write_report(layout.root, summary.pipeline_name, summary, stamp=stamp))
        except Exception as error:  # noqa: BLE001  (a report must never fail the run)
            logging.exception("the run report could not be written")
            return f"not written ({type(error).__name__}: {error}); see {log_path}"


def run_and_summarize(config: PipelineConfig, layout: OutputLayout, with_report: bool = True
                      ) -> tuple[RunSummary, str]:
    """Runs the pipeline with its logs in a file, then reads back and saves the run's summary
    and writes its report; returns the summary and the report's path ('' without a report)."""
    from pipeline.local_runner import run_local
    from pipeline.progress import ProgressHandler
    from pipeline.summary import read_run_summary

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = layout.logs_dir / f"run-{stamp}.log"
    click.echo(f"running the pipeline (full log: {log_path})")
    failure = None
    progress = ProgressHandler(click.get_text_stream("stdout"))
    with stderr_to(log_path, progress):
        try:
            run_local(config, layout.metadata_path)
        except Exception as error:  # noqa: BLE001  (reported below, with its component)
            logging.exception("pipeline failed")
            failure = error
    progress.finish(failed=failure is not None)
    threshold = config.gate.accuracy_threshold
    try:
        summary = read_run_summary(layout.metadata_path, config.pipeline_name, threshold)
    except LookupError:
        summary = None
    report = ""
    if with_report:
        report = write_run_report(layout, summary, stamp, log_path) if summary else "not written"
    if failure is not None:
        failed = [name for name, state in (summary.components if summary else {}).items()
                  if state == "failed"]
        where = f"component {failed[0]}" if failed else "the pipeline"
        message = str(failure).strip().splitlines()
        raise UserError(f"{where} failed: {type(failure).__name__}: "
                        f"{message[-1] if message else ''}; full log: {log_path}"
                        + (f"; report: {report}" if report else ""))
    layout.summary_path.write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary, report
