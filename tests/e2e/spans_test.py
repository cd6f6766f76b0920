"""Data in spans on LocalDagRunner: the latest span is read, checked against the previous one,
bad files are quarantined and counted, and a class-balance drift stops the push."""

import json
import shutil
from pathlib import Path

import pytest

from pipeline.local.sample_data import write_sample_data

MODEL = "spans"

pytestmark = pytest.mark.slow


@pytest.fixture
def run(run_pipeline):
    def run(data: Path, output: Path) -> dict:
        summary, record = run_pipeline(data, output, MODEL)
        assert set(record.states.values()) <= {"complete", "cached"}, record.states
        return {**summary.to_json(), "lines": "\n".join(summary.lines())}

    return run


def _versions(output: Path) -> list[str]:
    return sorted(p.name for p in (output / "serving" / MODEL).iterdir() if p.name.isdigit())


def test_a_drifted_span_is_reported_and_not_pushed(tmp_path, run):
    data, output = tmp_path / "data", tmp_path / "out"
    write_sample_data(data / "span-1", ("circle", "square"), 12, 75, seed=1)
    first = run(data, output)
    assert first["ingestion"]["folders_read"] == [str(data / "span-1")]
    assert first["ingestion"]["quarantined"] == 0
    assert first["data_problems"] == [] and first["data_compared_with"] == ""
    assert first["pushed_path"] == str(output / "serving" / MODEL / "1")

    # Span 2: mostly circles (20 of 23: the circle share moves from 0.5 to 0.87), and one
    # truncated file, which is quarantined (1 of 24 files, under the 5% limit).
    write_sample_data(data / "span-2", ("circle", "square"), 20, 75, seed=2)
    for extra in sorted((data / "span-2" / "square").iterdir())[3:]:
        extra.unlink()
    good = next((data / "span-2" / "circle").glob("*.jpg"))
    (data / "span-2" / "circle" / "broken.jpg").write_bytes(
        good.read_bytes()[:good.stat().st_size // 2])
    second = run(data, output)
    assert second["ingestion"]["folders_read"] == [str(data / "span-2")]
    assert second["ingestion"]["files_found"] == 24
    assert (second["ingestion"]["ingested"], second["ingestion"]["quarantined"]) == (23, 1)
    report = Path(second["ingestion"]["quarantine_report"]).read_text().splitlines()
    assert [json.loads(line)["path"] for line in report] == ["span-2/circle/broken.jpg"]
    assert second["data_compared_with"] == "span 1"
    assert len(second["data_problems"]) == 1
    assert second["data_problems"] == [
        "span 2 against span 1: the class balance moved by 0.37 (L-infinity), more than 0.25: "
        "circle went from 50% to 87% of the images"]
    assert second["pushed_path"] is None
    assert second["not_pushed_because"].startswith("the data has 1 problem(s)")
    assert "data checks: 1 problem(s):" in second["lines"]
    assert "quarantined (truncated 1" in second["lines"]
    assert _versions(output) == ["1"]  # the serving directory is unchanged
    # Retraining semantics: span 2's Trainer started from the blessed model of span 1, and the
    # Evaluator compared against it.
    runs = sorted((output / "pipeline" / "Trainer" / "model_run").iterdir(),
                  key=lambda p: int(p.name))
    history = json.loads((runs[-1] / "history.json").read_text())
    first_model = sorted((output / "pipeline" / "Trainer" / "model").iterdir(),
                         key=lambda p: int(p.name))[0]
    assert history["warm_start_from"].startswith(str(first_model))
    assert second["accuracy_change"] is not None
    shutil.rmtree(tmp_path)
