"""One run with `--tflite float16,int8`: each model checked against the SavedModel, pushed
inside the version, named in the summary, and usable by `imgpipe predict --tflite`."""

import json

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.local.sample_data import write_sample_data
from serving import layout

MODEL = "shapes"

pytestmark = pytest.mark.slow


def test_a_run_with_tflite_pushes_both_formats_beside_the_saved_model(run_pipeline, tmp_path):
    write_sample_data(tmp_path / "data", ("circle", "square"), 16, 75, seed=3)
    # With random weights every answer is near 0.5, so int8's rounding may flip any image: the
    # tolerance is opened here (its refusals are tests/components/tflite_export_test.py's).
    summary, run = run_pipeline(tmp_path / "data", tmp_path / "out", MODEL,
                                pipeline={"tflite": ("float16", "int8"), "tflite_tolerance": 100.0},
                                dense_units=(16,))
    assert run.states["TFLiteExport"] == "complete" and run.states["Pusher"] == "complete"
    base = tmp_path / "out" / "serving" / MODEL
    assert layout.numeric_versions(str(base)) == [1]  # TF Serving sees one version, complete
    assert summary.pushed_path == str(base / "1")
    tflite_dir = base / "1" / "assets.extra" / "tflite"
    assert summary.pushed_tflite == {fmt: str(tflite_dir / f"model_{fmt}.tflite")
                                     for fmt in ("float16", "int8")}
    compared = summary.tflite
    assert compared["eval_images"] == summary.examples_per_split["eval"]
    assert compared["tolerance_points"] == 100.0
    # The same images, decoded the same way: the SavedModel's accuracy is the Evaluator's.
    assert compared["saved_model"]["accuracy"] == pytest.approx(summary.eval_accuracy, abs=1e-6)
    for fmt in ("float16", "int8"):
        entry = compared[fmt]
        assert entry["accepted"], entry
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["latency_ms"] > 0
        assert (tflite_dir / f"model_{fmt}.tflite").stat().st_size == entry["size_bytes"]
        assert json.loads((tflite_dir / f"model_{fmt}.json").read_text())["class_names"] == [
            "circle", "square"]
    assert (tflite_dir / "labels.txt").read_text() == "circle\nsquare\n"
    assert any(line.startswith("TFLite int8: ") and "pushed: " in line
               for line in summary.lines())

    images = sorted((tmp_path / "data" / "square").iterdir())[:2]
    result = CliRunner().invoke(cli, ["predict", "--tflite", summary.pushed_tflite["int8"],
                                      *map(str, images)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[1:3]]
    assert [row[0] for row in rows] == [str(image) for image in images]
    assert all(row[1] in ("circle", "square") and 0.5 <= float(row[2]) <= 1.0 for row in rows)
