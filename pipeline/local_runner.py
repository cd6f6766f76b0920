"""Runs the pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam's DirectRunner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where one `--output` folder keeps each thing a run makes."""

    root: Path

    @property
    def pipeline_root(self) -> Path:
        """Component outputs (artifacts), one folder per component and execution."""
        return self.root / "pipeline"

    @property
    def metadata_path(self) -> Path:
        """The ML Metadata SQLite database."""
        return self.root / "metadata.sqlite"

    @property
    def serving_dir(self) -> Path:
        """TF Serving's model base paths: `serving/<model-name>/<version>/`."""
        return self.root / "serving"

    @property
    def logs_dir(self) -> Path:
        """Full logs of each run."""
        return self.root / "logs"

    @property
    def summary_path(self) -> Path:
        """The last run's summary, as JSON."""
        return self.root / "summary.json"


def run_local(config: PipelineConfig, metadata_path: Path) -> None:
    """Runs `create_pipeline(config)` to completion; raises if a component fails."""
    metadata_path.parent.mkdir(parents=True, exist_ok=True)
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata_path))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))
