"""The whole pipeline on LocalDagRunner: the `imgpipe run` smoke test, then a re-run of the same
pipeline, asserted from ML Metadata through the public reader.

The base is a no-top InceptionV3 .h5 whose BatchNorm statistics were learned from images fed in
[0, 1] and whose file does not say so (a base pretrained elsewhere), passed with no
--input-scaling: `imgpipe run` must detect `unit`, and the re-run's Trainer, given `auto` as a
compiled pipeline is, must detect it too (issue 19)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipeline.local.sample_data import write_sample_data
from pipeline.results.metadata import read_runs
from pipeline.results.summary import read_run_summary
from trainer import eval_features, scaling
from trainer.bases import build_application, get_base_spec

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
COMPONENTS = {"ImageExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema",
              "ExampleValidator", "DataAudit", "DataGate", "Transform",
              "Trainer", "latest_blessed_model_resolver", "Evaluator", "ModelLoadCheck", "Pusher"}
MODEL = "shapes"

pytestmark = pytest.mark.slow


def _unit_base(source: Path, path: Path) -> Path:
    """A random InceptionV3 whose every BatchNorm layer holds the statistics of images fed as
    x / 255, saved with no record: what a pretraining in [0, 1] leaves in those layers. One pass
    in training mode at momentum 0 (Keras' own update) sets them; its features stay random."""
    application = build_application(get_base_spec("inception_v3"), 75, "none")
    for layer in application.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    files = sorted(p for p in source.rglob("*") if p.is_file())
    images = np.stack([tf.image.resize(tf.io.decode_image(f.read_bytes(), channels=3,
                                                          expand_animations=False), [75, 75])
                       for f in files])
    application(scaling.apply(scaling.UNIT, np.clip(np.round(images), 0, 255)), training=True)
    application.save_weights(str(path), save_format="h5")
    assert scaling.recorded_convention(str(path)) is None
    return path


def _run(data: Path, output: Path, weights: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [IMGPIPE, "run", "--data", str(data), "--output", str(output), "--weights", str(weights),
         "--image-size", "75", "--epochs", "1", "--batch-size", "8",
         "--accuracy-threshold", "0", "--model-name", MODEL],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_sample_data(root / "data", ("circle", "square"), 16, 75, seed=3)
    (root / "data" / "circle" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_sample_data(root / "source", ("ring", "stripes", "star", "diamond"), 8, 75, seed=4)
    _unit_base(root / "source", root / "unit.h5")
    result = _run(root / "data", root / "out", root / "unit.h5")
    return root, result


def _history(root: Path, index: int) -> dict:
    runs = sorted((root / "out" / "pipeline" / "Trainer" / "model_run").iterdir(),
                  key=lambda p: int(p.name))
    return json.loads((runs[index] / "history.json").read_text())


def test_imgpipe_run_detected_the_unit_fed_base_without_a_flag(first_run):
    root, result = first_run
    assert re.search(r"base input scaling: unit \(detected: unit \d", result.stdout), result.stdout
    record = _history(root, 0)["input_scaling"]  # the Trainer kept what imgpipe run decided
    assert (record["convention"], record["how"]) == ("unit", "detected")
    assert record["description"].startswith("unit (detected: unit ")
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["input_scaling"].startswith("unit (detected: unit ")


def test_the_trainer_validated_the_head_on_the_audits_eval_features(first_run):
    root, _ = first_run
    history = _history(root, 0)
    summary = json.loads((root / "out" / "summary.json").read_text())
    record = history["validation"]
    assert record["on"] == eval_features.VALIDATED_ON_FEATURES, record
    assert record["records"] == summary["examples_per_split"]["eval"]
    assert record["largest_difference"] <= eval_features.TOLERANCE
    assert len(history["history"]["val_loss"]) == len(history["history"]["loss"])


def test_every_component_ran_and_the_model_was_blessed(first_run):
    root, result = first_run
    runs = read_runs(root / "out" / "metadata.sqlite", MODEL)
    assert len(runs) == 1
    assert set(runs[0].states) == COMPONENTS
    assert set(runs[0].states.values()) == {"complete"}
    blessings = runs[0].artifacts("Evaluator", "blessing")
    assert [b.custom_properties["blessed"].int_value for b in blessings] == [1]
    assert len(runs[0].artifacts("Pusher", "pushed_model")) == 1
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["blessed"] is True
    assert summary["not_blessed_because"] == []
    assert summary["load_check_failure"] is None
    assert sum(summary["examples_per_split"].values()) == 32
    by_class = summary["examples_per_split_and_class"]
    assert sum(by_class["train"].values()) + sum(by_class["eval"].values()) == 32
    assert by_class["train"]["circle"] + by_class["eval"].get("circle", 0) == 16
    assert {"accuracy", "auc", "precision", "recall", "example_count"} <= set(
        summary["eval_metrics"])
    assert summary["eval_example_count"] == summary["examples_per_split"]["eval"]
    assert set(summary["per_class_accuracy"]) <= {"circle", "square"}
    assert "blessed: yes" in result.stdout
    # Finder's .DS_Store is skipped, listed and not quarantined, before and after the run.
    assert summary["ingestion"]["skipped"] == 1 and summary["ingestion"]["quarantined"] == 0
    assert "skipped 1 system files" in result.stdout
    assert re.search(r"ingested from .*: 32 of 33 files, 0 quarantined, 1 system files skipped",
                     result.stdout)


def test_the_data_audit_ran_on_every_image_and_its_findings_are_in_the_output(first_run):
    root, result = first_run
    audit = json.loads((root / "out" / "audit.json").read_text())
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert audit["images"] == {"train": summary["examples_per_split"]["train"],
                               "eval": summary["examples_per_split"]["eval"]}
    # The sample shapes hold no copies: nothing found, and nothing stopped the push for it.
    assert audit["duplicates"] == [] and audit["leaks"] == []
    assert summary["audit"]["leaked_eval_images"] == 0
    assert summary["audit"]["suspected_mislabels"] == len(audit["suspected_mislabels"])
    assert re.search(r"data audit: 0 duplicate group\(s\), 0 of \d+ eval images with a copy "
                     r"in train \(0\.0%\), \d+ suspected mislabel", result.stdout), result.stdout


def test_pushed_version_serves_one_probability_per_jpeg(first_run):
    root, _ = first_run
    versions = [p for p in (root / "out" / "serving" / MODEL).iterdir() if p.name.isdigit()]
    assert [v.name for v in versions] == ["1"]
    assert (versions[0] / "saved_model.pb").is_file()
    warmup = versions[0] / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(warmup)))
    assert 1 <= len(records) <= 8
    loaded = tf.saved_model.load(str(versions[0]))
    serve = loaded.signatures["serving_default"]
    jpegs = sorted((root / "data").rglob("*.jpg"))[:5]
    outputs = serve(image_bytes=tf.constant([p.read_bytes() for p in jpegs]))
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert set(outputs["classes"].numpy().tolist()) <= {b"circle", b"square"}


def test_evaluator_signature_takes_the_examples_examplegen_wrote(first_run):
    root, _ = first_run
    version = next(p for p in (root / "out" / "serving" / MODEL).iterdir() if p.name.isdigit())
    serve = tf.saved_model.load(str(version)).signatures["from_examples"]
    files = sorted((root / "out" / "pipeline" / "ImageExampleGen").rglob("*.gz"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP").take(3)]
    assert serve(examples=tf.constant(records))["probability"].shape == (3, 1)


def test_a_rerun_reuses_upstream_steps_and_warm_starts_from_the_blessed_model(first_run,
                                                                               run_pipeline):
    root, _ = first_run
    # The same pipeline as the smoke test's (its upstream steps' inputs and settings), built by
    # the CLI's own PipelineConfig builder and run in this process. A learning rate of 0 keeps
    # the warm-started head as it was: the model answers exactly as the blessed one, so the gate
    # (no worse than it) blesses it, and the report tests below read a pushed run.
    # It also evaluates on the eval split as DropLeakedEval rewrites it (no leaks in these
    # shapes: every eval image kept), so the same accuracy says the Evaluator read all of it.
    summary, _ = run_pipeline(root / "data", root / "out", MODEL, weights=str(root / "unit.h5"),
                              learning_rate=0.0, pipeline={"drop_leaked_eval": True})
    first = json.loads((root / "out" / "summary.json").read_text())
    assert summary.blessed and summary.eval_accuracy == pytest.approx(first["eval_accuracy"])
    runs = read_runs(root / "out" / "metadata.sqlite", MODEL)
    assert len(runs) == 2
    states = runs[-1].states
    for name in ("ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform"):
        assert states[name] == "cached", name
    assert states["DropLeakedEval"] == "complete"
    assert summary.audit["dropped_eval_images"] == 0
    # The Trainer's inputs now include the blessed model, so it trains again, from that model.
    assert states["Trainer"] == "complete"
    record = _history(root, -1)
    # Given `auto` (as a compiled pipeline is), the Trainer detected from Transform's output.
    assert (record["input_scaling"]["convention"], record["input_scaling"]["how"]) == (
        "unit", "detected")
    first_model = sorted((root / "out" / "pipeline" / "Trainer" / "model").iterdir(),
                         key=lambda p: int(p.name))[0]
    assert record["warm_start_from"].startswith(str(first_model))
    assert sorted(record["warm_started_weights"]) == [
        "dense_0/bias:0", "dense_0/kernel:0", "probability/bias:0", "probability/kernel:0"]


def _latest_summary(root: Path) -> dict:
    """The latest run's summary, read from ML Metadata (the re-run writes no summary.json)."""
    return read_run_summary(root / "out" / "metadata.sqlite", MODEL, 0.0).to_json()


@pytest.fixture(scope="module")
def latest_report(first_run):
    """The report's data and page for the latest run (the re-run's, once that test ran)."""
    from pipeline.results.report.collect import collect
    from pipeline.results.report.render import render_html

    root, _ = first_run
    data = collect(root / "out", MODEL, max_eval_images=8, augment_images=2,
                   augment_variants=2, gradcam_per_class=1)
    return data, render_html(data)


def test_the_run_report_has_every_section_from_the_latest_run(first_run, latest_report):
    import base64
    import io

    from PIL import Image

    from pipeline.results.report import SECTION_TITLES

    root, _ = first_run
    _, page = latest_report
    assert re.findall(r"<h2>([^<]*)</h2>", page) == list(SECTION_TITLES)
    assert "Not available" not in page, re.findall(r"Not available: [^<]*", page)
    summary = _latest_summary(root)
    assert f"run {summary['run_id']}" in page
    for split, by_class in summary["examples_per_split_and_class"].items():
        row = "".join(f"<td>{n}</td>" for _, n in sorted(by_class.items()))
        assert f"<td>{split}</td>{row}" in page
    assert "No file was quarantined." in page
    assert f"Pushed: {summary['pushed_path']}" in page
    sources = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', page)
    assert len(sources) >= 7  # a misclassified grid only when the model errs
    for source in sources:
        Image.open(io.BytesIO(base64.b64decode(source, validate=True))).load()


def test_the_report_predicts_a_balanced_eval_sample_and_reads_the_trainers_history(
        first_run, latest_report):
    root, _ = first_run
    data, _ = latest_report
    summary = _latest_summary(root)
    eval_by_class = summary["examples_per_split_and_class"]["eval"]
    predictions = data.predictions
    assert predictions.class_names == ("circle", "square")
    expected = {name: min(4, eval_by_class.get(name, 0)) for name in ("circle", "square")}
    assert {name: int((predictions.labels == i).sum()) for i, name in
            enumerate(predictions.class_names)} == expected
    assert predictions.confusion.sum() == sum(expected.values())
    assert predictions.images.shape[1:] == (75, 75, 3)
    # The served model's answers are its own: the pushed version gives the same classes.
    version = tf.saved_model.load(summary["pushed_path"]).signatures["serving_default"]
    files = [root / "data" / name for name in predictions.filenames]
    served = version(image_bytes=tf.constant([f.read_bytes() for f in files]))["classes"]
    assert [c.decode() for c in served.numpy()] == [
        predictions.class_names[i] for i in predictions.predicted]
    runs = sorted((root / "out" / "pipeline" / "Trainer" / "model_run").iterdir(),
                  key=lambda p: int(p.name))
    assert data.history == json.loads((runs[-1] / "history.json").read_text())["history"]
    assert len(data.augmentation) == 2 and len(data.augmentation[0]) == 3
    assert len(data.gradcam) == 2 * sum(1 for n in expected.values() if n)
