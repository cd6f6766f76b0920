"""End-to-end runs, as TFX's penguin tests make them: the real `create_pipeline` on
LocalDagRunner in a temporary folder, then assertions on ML Metadata through the public reader
(`pipeline.results.metadata`) and the run summary it feeds. `tests/e2e/pipeline_test.py` also
keeps one `imgpipe run` smoke test of the whole command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from pipeline.cli.options import Destination, build_pipeline_config, pipeline_options
from pipeline.local.dataset import scan_dataset
from pipeline.local.layout import OutputLayout
from pipeline.local.runner import run_local
from pipeline.results.metadata import PipelineRun, read_latest_run
from pipeline.results.summary import RunSummary, read_run_summary
from trainer.hparams import HParams

# What `imgpipe run` passes for the pipeline flags the tests leave alone, read from the flags
# themselves; the gate is lowered, as in TFX's penguin tests.
_FLAGS = click.command()(pipeline_options(lambda **_: None))
PIPELINE_DEFAULTS = {**{param.name: param.get_default(click.Context(_FLAGS))
                        for param in _FLAGS.params},
                     "accuracy_threshold": 0.0}


def _run_pipeline(data: Path, output: Path, model: str, pipeline: dict[str, Any] | None = None,
                 **hparams: Any) -> tuple[RunSummary, PipelineRun]:
    """Runs the pipeline on `data` into `output` as `imgpipe run --weights none` would; returns
    the run's summary and its record in ML Metadata. `pipeline` overrides PIPELINE_DEFAULTS,
    `hparams` the HParams (weights none, image size 75, one epoch, batch 8; otherwise the flags'
    defaults)."""
    scan = scan_dataset(data, (pipeline or {}).get("span"))
    layout = OutputLayout(output.resolve())
    hp = HParams(class_names=scan.class_names,
                 **{"weights": "none", "image_size": 75, "epochs": 1, "batch_size": 8, **hparams})
    options = {**PIPELINE_DEFAULTS, **(pipeline or {})}
    config = build_pipeline_config(
        Destination(model, str(layout.pipeline_root), str(data.resolve()),
                    str(layout.model_base_path(model))),
        hp, options, spans=bool(scan.spans), given_splits=scan.given_splits)
    run_local(config, layout.metadata_path)
    summary = read_run_summary(layout.metadata_path, model, options["accuracy_threshold"])
    return summary, read_latest_run(layout.metadata_path, model)


@pytest.fixture(scope="session")
def run_pipeline():
    """`run_pipeline(data, output, model, pipeline=None, **hparams) -> (RunSummary, PipelineRun)`:
    the pipeline as `imgpipe run --weights none` builds it, run in this process."""
    return _run_pipeline
