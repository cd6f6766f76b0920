"""`imgpipe run --tune 3`: TFX's Tuner searches on the cache before the Trainer, which trains and
exports the model with the best trial's values; the summary and the report show the trials."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.local.sample_data import write_sample_data
from pipeline.results.metadata import read_latest_run
from trainer.contract import HPARAMS_FILE, SERVING_SUBDIR

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
MODEL = "shapes"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    write_sample_data(root / "data", ("circle", "square"), 16, 75, seed=3)
    (root / "space.json").write_text(json.dumps({
        "dense_units": [8, 16, 32], "head_batch_size": [4, 8], "dropout": [0.0, 0.4]}))
    result = subprocess.run(
        [IMGPIPE, "run", "--data", str(root / "data"), "--output", str(root / "out"),
         "--weights", "none", "--image-size", "75", "--epochs", "2", "--batch-size", "8",
         "--accuracy-threshold", "0", "--model-name", MODEL, "--no-audit",
         "--tune", "3", "--tune-space", str(root / "space.json")],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_the_tuner_ran_before_the_trainer_and_the_summary_shows_its_trials(tuned_run):
    root, result = tuned_run
    run = read_latest_run(root / "out" / "metadata.sqlite", MODEL)
    assert run.states["Tuner"] == "complete" and run.states["Trainer"] == "complete"
    assert "tuning: 3 of 3 trials completed, random search" in result.stdout
    assert "tuning: best trial " in result.stdout
    tuning = json.loads((root / "out" / "summary.json").read_text())["tuning"]
    assert len(tuning["trials"]) == 3 and tuning["best_trial_id"] is not None
    assert all(t["status"] == "COMPLETED" and t["seconds"] > 0 for t in tuning["trials"])
    assert {t["values"]["dense_units"] for t in tuning["trials"]} <= {8, 16, 32}
    assert tuning["cache"]["train"]["records"] + tuning["cache"]["eval"]["records"] == 32
    assert ">Tuning</h2>" in (root / "out" / "report.html").read_text()


def test_the_exported_model_was_trained_with_the_best_trials_values(tuned_run):
    root, _ = tuned_run
    run = read_latest_run(root / "out" / "metadata.sqlite", MODEL)
    best_dir = Path(run.artifacts("Tuner", "best_hyperparameters")[0].uri)
    best = json.loads((best_dir / "best_hyperparameters.txt").read_text())["values"]
    trials = json.loads((root / "out" / "summary.json").read_text())["tuning"]
    assert best == next(t["values"] for t in trials["trials"]
                        if t["trial_id"] == trials["best_trial_id"])
    model_dir = Path(run.artifacts("Trainer", "model")[0].uri) / SERVING_SUBDIR
    exported = json.loads((model_dir / HPARAMS_FILE).read_text())
    assert exported["dense_units"] == [best["dense_units"]]
    assert exported["dropout_rate"] == pytest.approx(best["dropout"])
    assert exported["learning_rate"] == pytest.approx(best["learning_rate"])
    assert exported["pooling"] == best["pooling"]
    assert exported["batch_size"] == best["head_batch_size"]  # no cache: the training batch
    assert exported["epochs"] == 2  # the rest as the flags say
