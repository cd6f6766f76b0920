"""The output folder of `imgpipe run --output`: the one place its paths are spelled."""

from __future__ import annotations

import dataclasses
from pathlib import Path

LOCK_FILE = ".imgpipe.lock"
LAST_RUN_FILE = "last_run.json"
METADATA_FILE = "metadata.sqlite"
REPORT_FILE = "report.html"


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where one `--output` folder keeps each thing a run makes."""

    root: Path

    @property
    def pipeline_root(self) -> Path:
        """Component outputs (artifacts), one folder per component and execution."""
        return self.root / "pipeline"

    @property
    def trainer_logs_dir(self) -> Path:
        """The Trainer's `model_run` artifacts (TensorBoard logs, history), one per execution."""
        return self.pipeline_root / "Trainer" / "model_run"

    @property
    def metadata_path(self) -> Path:
        """The ML Metadata SQLite database."""
        return self.root / METADATA_FILE

    @property
    def serving_dir(self) -> Path:
        """TF Serving's model base paths: `serving/<model-name>/<version>/`."""
        return self.root / "serving"

    def model_base_path(self, model_name: str) -> Path:
        """TF Serving's base path of one model; its versions are numbered folders inside."""
        return self.serving_dir / model_name

    @property
    def logs_dir(self) -> Path:
        """Full logs of each run."""
        return self.root / "logs"

    @property
    def summary_path(self) -> Path:
        """The last run's summary, as JSON."""
        return self.root / "summary.json"

    @property
    def audit_path(self) -> Path:
        """The last run's data audit findings (each run's stay in its DataAudit artifact)."""
        return self.root / "audit.json"

    @property
    def report_path(self) -> Path:
        """The last run's HTML report."""
        return self.root / REPORT_FILE

    @property
    def reports_dir(self) -> Path:
        """Every run's HTML report, `run-<stamp>.html`."""
        return self.root / "reports"

    @property
    def lock_path(self) -> Path:
        """Held while a run uses this output (`pipeline.local.lock`)."""
        return self.root / LOCK_FILE

    @property
    def last_run_path(self) -> Path:
        """What the data looked like at the last successful run (`--if-new-data`)."""
        return self.root / LAST_RUN_FILE

    def log_path(self, stamp: str) -> Path:
        """The full log of the run started at `stamp`."""
        return self.logs_dir / f"run-{stamp}.log"
