"""The run report rendered from small fabricated inputs, and its example reading."""

import base64
import dataclasses
import html.parser
import io
import json
import re
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.image_example_gen.reader import make_example
from pipeline.results.report import SECTION_TITLES, plots
from pipeline.results.report.audit import AuditGallery, read_gallery
from pipeline.results.report.collect import (
    AUGMENTATION,
    CONFUSION,
    CURVES,
    EVALUATION,
    GRADCAM,
    MISCLASSIFIED,
    Predictions,
    ReportData,
    Tile,
    _model_sections,
    read_examples,
)
from pipeline.results.report.render import render_html
from pipeline.results.summary import RunSummary, device_plan_description, trainer_record

CLASSES = ("circle", "square")


def _summary(**changes) -> RunSummary:
    values = dict(
        pipeline_name="shapes", run_id="2026-11-23T10:00:00", components={
            "ImageExampleGen": "complete", "Trainer": "complete", "Evaluator": "complete",
            "Pusher": "complete"},
        ingestion={"folders_read": ["/data"], "class_names": list(CLASSES), "files_found": 11,
                   "ingested": 10, "quarantined": 1, "quarantined_per_kind": {"empty": 1},
                   "quarantine_report": "/out/quarantine.jsonl"},
        examples_per_split={"train": 6, "eval": 4},
        examples_per_split_and_class={"train": {"circle": 3, "square": 3},
                                      "eval": {"circle": 2, "square": 2}},
        eval_accuracy=0.75, eval_example_count=4, accuracy_threshold=0.8, accuracy_change=-0.05,
        eval_metrics={"accuracy": 0.75, "auc": 0.8, "example_count": 4.0},
        per_class_accuracy={"circle": 1.0, "square": 0.5}, blessed=False,
        not_blessed_because=["accuracy 0.750 < threshold 0.800"], load_check_failure=None,
        pushed_path=None, not_pushed_because="not blessed")
    values.update(changes)
    return RunSummary(**values)


def _image(value: int) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _full_data() -> ReportData:
    images = np.stack([_image(i) for i in range(4)])
    predictions = Predictions(
        class_names=CLASSES, labels=np.array([0, 0, 1, 1]), predicted=np.array([0, 1, 1, 1]),
        confidence=np.array([0.9, 0.6, 0.8, 0.7], dtype=np.float32),
        filenames=("circle/a.png", "circle/b<x>.png", "square/c.png", "square/d.png"),
        images=images, eval_split_size=4)
    return ReportData(
        pipeline_name="shapes", run_id="2026-11-23T10:00:00", created="now",
        components=_summary().components, summary=_summary(), class_names=CLASSES,
        quarantined=[{"path": "circle/empty.jpg", "kind": "empty", "reason": "empty file"}],
        quarantine_report="/out/quarantine.jsonl",
        history={"loss": [0.9, 0.5], "val_loss": [0.8, 0.7], "accuracy": [0.5, 0.8],
                 "val_accuracy": [0.5, 0.75]},
        augmentation=[[Tile(_image(9), "circle"), Tile(_image(10), "augmented 1")]],
        predictions=predictions,
        gradcam=[Tile(images[0], "circle"), Tile(images[0], "for circle (0.90)")],
        audit=_gallery())


def _gallery() -> AuditGallery:
    findings = {
        "images": {"train": 6, "eval": 4},
        "duplicates": [{"files": ["circle/a.png", "circle/a2.png", "circle/a3.png"],
                        "kind": "exact", "similarity": 1.0}],
        "leaks": [{"eval_file": "square/c.png", "train_file": "square/t.png",
                   "similarity": 0.97}],
        "suspected_mislabels": [{"file": "circle/m.png", "given": "circle",
                                 "suggested": "square", "score": 0.93}],
        "mislabel_check": {"judged": True}}
    return AuditGallery(findings, "/out/pipeline/DataAudit/findings/7/audit.json",
                        leaks=[Tile(_image(20), "eval"), Tile(_image(20), "train")],
                        duplicates=[Tile(_image(21), "exact"), Tile(_image(21), "copy")],
                        mislabels=[Tile(_image(22), "circle -> square (0.93)")])


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings, self.images, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        self._in_h2 = tag == "h2"
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def _decoded(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))
    image.load()
    return image


def test_every_section_renders_with_its_figures_embedded():
    page = render_html(_full_data())
    parsed = _parse(page)
    assert parsed.headings == list(SECTION_TITLES)
    # Class counts, curves, metrics, confusion, per-class accuracy, three image grids, and the
    # audit's three: leaks, duplicates, suspected mislabels.
    assert len(parsed.images) == 11
    for src in parsed.images:
        image = _decoded(src)
        assert image.format == "PNG" and image.width > 50 and image.height > 50
    assert "Not available" not in page and "Sections without data" not in page
    assert "10 of 11 files ingested, 1 quarantined (empty 1)" in page
    assert "circle/empty.jpg" in page and "empty file" in page
    assert "circle/b&lt;x&gt;.png" in page  # file names are escaped
    assert "accuracy 0.750 &lt; threshold 0.800" in page
    assert "Nothing pushed: not blessed" in page
    assert "(its accuracy 0.800, change -0.050)" in page  # the baseline's, from the change
    assert "<script" not in page and "http" not in page  # nothing loaded from elsewhere


def _paired(lost: int, gained: int, p_value: float, level: float, worse: bool) -> dict:
    return {"lost": lost, "gained": gained, "p_value": p_value, "level": level,
            "significantly_worse": worse,
            "description": f"{lost} lost, {gained} gained, McNemar exact p {p_value:.3f}"}


def test_the_interval_and_the_paired_test_are_in_the_summary_and_the_page():
    paired = {"overall": _paired(3, 1, 0.625, 0.05, False),
              "per_class": {"circle": _paired(0, 1, 1.0, 0.025, False),
                            "square": _paired(3, 0, 0.25, 0.025, False)}}
    summary = _summary(accuracy_interval=[0.194, 0.994], paired_test=paired, blessed=True,
                       not_blessed_because=[])
    lines = summary.lines()
    assert ("eval accuracy 0.750 (95% interval 0.194-0.994) < threshold 0.800 on 4 images"
            in lines)
    assert ("against the last blessed model (its accuracy 0.800, change -0.050) on the same "
            "images: 3 lost, 1 gained, McNemar exact p 0.625") in lines
    assert ("against it per class: circle 0 lost, 1 gained, McNemar exact p 1.000; square 3 "
            "lost, 0 gained, McNemar exact p 0.250") in lines
    assert summary.to_json()["paired_test"]["overall"]["p_value"] == 0.625
    data = _full_data()
    data.summary = summary
    page = render_html(data)
    assert "Eval accuracy 0.750 (95% interval 0.194-0.994)" in page
    assert "<th>against the last blessed model</th>" in page
    assert "<td>3 lost, 0 gained, McNemar exact p 0.250</td>" in page
    first = _summary(accuracy_change=None, accuracy_interval=[0.194, 0.994])
    assert any(line.endswith("judged on the threshold alone") for line in first.lines())
    assert "against the last blessed model" not in render_html(
        dataclasses.replace(_full_data(), summary=first))


def test_skipped_system_files_are_counted_apart_in_the_summary_and_the_page():
    ingestion = {**_summary().ingestion, "files_found": 14, "skipped": 3,
                 "skipped_report": "/out/skipped.jsonl"}
    data = _full_data()
    data.summary = _summary(ingestion=ingestion)
    assert ("ingested from /data: 10 of 14 files, 1 quarantined (empty 1; list: "
            "/out/quarantine.jsonl), 3 system files skipped (not counted; list: "
            "/out/skipped.jsonl)") in data.summary.lines()
    assert "10 of 14 files ingested, 1 quarantined (empty 1), 3 system files skipped" in (
        render_html(data))
    assert "skipped" not in "".join(_summary().lines())  # none skipped: nothing said


def test_a_run_that_stopped_before_training_renders_what_it_has_and_says_what_is_missing():
    data = _full_data()
    data.history = data.predictions = data.augmentation = data.gradcam = None
    data.summary = _summary(eval_accuracy=None, eval_metrics={}, blessed=None,
                            not_blessed_because=[], not_pushed_because="")
    reason = "the run did not get as far as the Trainer"
    for title in (AUGMENTATION, CURVES, EVALUATION, CONFUSION, MISCLASSIFIED, GRADCAM):
        data.missing[title] = reason
    page = render_html(data)
    assert _parse(page).headings == list(SECTION_TITLES)
    assert page.count(f"Not available: {reason}.") == 6
    assert re.search(r"Sections without data: Augmentation preview, Training curves, "
                     r"Evaluation, Confusion matrix", page)
    # The class counts and the audit's three grids (the audit runs before training).
    assert len(_parse(page).images) == 4
    assert "Nothing pushed: no evaluation" in page


def test_the_pushed_version_and_a_run_without_misclassified_images():
    data = _full_data()
    data.summary = _summary(pushed_path="/out/serving/shapes/3", blessed=True,
                            not_blessed_because=[], not_pushed_because="")
    data.predictions = Predictions(
        class_names=CLASSES, labels=np.array([0, 1]), predicted=np.array([0, 1]),
        confidence=np.array([0.9, 0.9]), filenames=("a", "b"),
        images=np.stack([_image(0), _image(1)]), eval_split_size=None)
    page = render_html(data)
    assert "Pushed: /out/serving/shapes/3" in page
    assert "every one of these images was classified right" in page


def test_confusion_matrix_and_per_class_accuracy_count_true_by_predicted():
    predictions = Predictions(
        class_names=("a", "b", "c"), labels=np.array([0, 0, 1, 1, 1]),
        predicted=np.array([0, 2, 1, 1, 0]), confidence=np.ones(5), filenames=("",) * 5,
        images=np.zeros((5, 2, 2, 3), np.uint8), eval_split_size=5)
    np.testing.assert_array_equal(predictions.confusion, [[1, 0, 1], [1, 2, 0], [0, 0, 0]])
    assert predictions.per_class_accuracy == {"a": 0.5, "b": pytest.approx(2 / 3), "c": None}


def test_read_examples_keeps_each_class_even_when_the_split_is_stored_class_by_class(tmp_path):
    path = tmp_path / "data_tfrecord-00000-of-00001.gz"
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for label, name in enumerate(CLASSES):
            for i in range(10):
                writer.write(make_example(b"img%d" % i, label, name,
                                          f"{name}/{i}.png").SerializeToString())
    examples = read_examples(str(tmp_path), 6, num_classes=2)
    assert [e.label for e in examples] == [0, 0, 0, 1, 1, 1]
    assert [e.filename for e in examples][:2] == ["circle/0.png", "circle/1.png"]
    assert examples[3].label_name == "square" and examples[3].image_bytes == b"img0"
    assert len(read_examples(str(tmp_path), 5)) == 5  # no class quota: the first five
    assert read_examples(str(tmp_path / "none"), 5) == []


def test_model_sections_say_why_when_the_trainer_left_no_model():
    data = ReportData(pipeline_name="shapes", run_id="r", created="now",
                      components={"ImageExampleGen": "complete", "Transform": "failed"})
    _model_sections(data, {}, None, None, {})
    assert data.missing == dict.fromkeys(
        (AUGMENTATION, CONFUSION, MISCLASSIFIED, GRADCAM),
        "the run did not get as far as the Trainer")


def test_figures_stay_readable_in_size_with_many_classes():
    names = [f"class_{i}" for i in range(40)]
    matrix = np.random.default_rng(0).integers(0, 5, (40, 40))
    for png in (plots.confusion_matrix(matrix, names),
                plots.per_class_accuracy(dict.fromkeys(names, 0.5)),
                plots.class_counts({"train": dict.fromkeys(names, 3),
                                    "eval": dict.fromkeys(names, 1)})):
        image = Image.open(io.BytesIO(png))
        assert max(image.size) <= plots.MAX_INCHES * plots.DPI * 1.2, image.size


def test_write_report_keeps_each_runs_page_and_the_latest_as_report_html(tmp_path, monkeypatch):
    from pipeline.results.report import collect as collect_module
    from pipeline.results.report import write_report

    calls = []

    def fake_collect(output_dir, pipeline_name, summary, threshold, max_eval_images):
        calls.append((output_dir, pipeline_name, max_eval_images))
        return _full_data()

    monkeypatch.setattr(collect_module, "collect", fake_collect)
    first = write_report(tmp_path, "shapes", stamp="20261123-100000", max_eval_images=8)
    page = first.read_text(encoding="utf-8")
    second = write_report(tmp_path, "shapes", stamp="20261123-110000")
    assert first == second == tmp_path / "report.html"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "run-20261123-100000.html", "run-20261123-110000.html"]
    assert (tmp_path / "reports" / "run-20261123-100000.html").read_text(encoding="utf-8") == page
    assert calls == [(tmp_path, "shapes", 8), (tmp_path, "shapes", 64)]


def test_a_disk_that_fills_while_the_report_is_copied_leaves_the_last_one_whole(
        tmp_path, monkeypatch):
    import errno
    import shutil

    from pipeline.results.report import collect as collect_module
    from pipeline.results.report import write_report

    monkeypatch.setattr(collect_module, "collect", lambda *args: _full_data())
    last = write_report(tmp_path, "shapes", stamp="20261123-100000").read_bytes()

    def copy_half(src, dst):
        with open(src, "rb") as source, open(dst, "wb") as target:
            target.write(source.read()[:100])
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(shutil, "copyfile", copy_half)
    with pytest.raises(OSError, match="No space left"):
        write_report(tmp_path, "shapes", stamp="20261123-110000")
    assert (tmp_path / "report.html").read_bytes() == last
    assert not list(tmp_path.glob(".*partial"))


DEVICES = "1 GPU: mixed_float16, XLA on, default strategy"


def test_the_summary_and_the_report_say_what_the_device_plan_chose(tmp_path):
    # As trainer/run.py writes it beside the model (trainer/devices.py DevicePlan.to_record).
    (tmp_path / "history.json").write_text(json.dumps({"history": {}, "device_plan": {
        "gpus": 1, "precision": "mixed_float16", "xla": "step", "strategy": "default strategy",
        "description": DEVICES}}))
    model_run = types.SimpleNamespace(uri=str(tmp_path))
    assert device_plan_description([model_run]) == DEVICES
    assert device_plan_description([]) == ""
    summary = _summary(devices=device_plan_description([model_run]))
    lines = summary.lines()
    assert lines[lines.index(f"trained on {DEVICES}") - 1].startswith("examples: ")
    assert "trained on" not in "\n".join(_summary().lines())  # older runs recorded no plan
    data = _full_data()
    data.summary = summary
    assert f"epoch(s) on {DEVICES}." in render_html(data)


def test_the_summary_and_the_report_show_class_weights_the_feature_check_and_a_head_at_chance(
        tmp_path):
    # As trainer/run.py writes them into history.json.
    (tmp_path / "history.json").write_text(json.dumps({
        "history": {"accuracy": [0.9]},
        "class_weights": {"mode": "auto", "largest_over_smallest": 9.0,
                          "weights": {"circle": 0.5556, "square": 5.0}},
        "health": {"images": 64, "units": 100, "measures": {}, "errors": [],
                   "warnings": ["the base's first BatchNorm layers see inputs unlike those"]},
        "chance": {"best_train_accuracy": 0.9, "chance_accuracy": 0.9, "best_train_loss": 0.33,
                   "chance_loss": 0.325, "at_chance": True,
                   "likely_causes": ["a wrong input scaling for the base's weights",
                                     "labels that do not match the images"]}}))
    record = trainer_record([types.SimpleNamespace(uri=str(tmp_path))])
    summary = _summary(class_weights=record["class_weights"], feature_check=record["health"],
                       chance=record["chance"])
    lines = summary.lines()
    expected = [
        "class weights: circle 0.56, square 5.00 (--class-weights auto; the largest class has "
        "9.0 times the examples of the smallest)",
        "feature check warning: the base's first BatchNorm layers see inputs unlike those",
        "the head ended at chance on its own training data (best training accuracy 0.900, "
        "always answering the largest class 0.900; best loss 0.330, a constant answer 0.325); "
        "likely causes: a wrong input scaling for "
        "the base's weights; labels that do not match the images"]
    start = lines.index(expected[0])
    assert lines[start:start + 3] == expected
    assert lines[start + 3].startswith("eval accuracy 0.750 < threshold")
    assert "eval recall per class (accuracy on its own images): circle 1.000, square 0.500" in (
        lines)
    data = _full_data()
    data.summary = summary
    page = render_html(data)
    for line in expected:
        assert f"<li>{html.escape(line)}</li>" in page
    assert ("<tr><th>class</th><th>recall</th><th>eval images</th></tr><tr><td>circle</td>"
            "<td>1.000</td><td>2</td></tr><tr><td>square</td><td>0.500</td><td>2</td></tr>"
            ) in page
    # Unweighted, a passed check and no chance: one line each, nothing at chance.
    plain = _summary(class_weights={"mode": "none", "largest_over_smallest": 1.2,
                                    "weights": None},
                     feature_check={"images": 64, "errors": [], "warnings": []},
                     chance={"at_chance": False}).training_lines()
    assert plain == ["class weights: none (--class-weights none; the largest class has 1.2 "
                     "times the examples of the smallest)",
                     "feature check on 64 training images: passed"]
    failed = _summary(feature_check={"images": 8, "errors": ["every feature is zero"]})
    assert failed.training_lines() == [
        "feature check on 8 training images: failed: every feature is zero"]
    assert _summary().training_lines() == []  # runs before these were recorded
    # What the head was validated on: said when the audit's features were given.
    shared = {"on": "the data audit's features of the eval images", "given": True,
              "records": 400, "largest_difference": 3e-6}
    assert _summary(validation=shared).training_lines() == [
        "validated on the data audit's features of the 400 eval images (the base not run again)"]
    refused = {"on": "the eval images", "given": True, "reason": "they are of other images"}
    assert _summary(validation=refused).training_lines() == [
        "validated on the eval images, not the data audit's features: they are of other images"]
    no_audit = {"on": "the eval images", "given": False, "reason": "no data audit"}
    assert _summary(validation=no_audit).training_lines() == []


def test_the_summary_counts_the_audits_findings_and_says_nothing_without_an_audit():
    audit = {"duplicate_groups": 3, "leaked_eval_images": 2, "eval_images": 40,
             "train_images": 160, "suspected_mislabels": 7, "findings": "/out/audit.json"}
    lines = _summary(audit=audit).lines()
    assert ("data audit: 3 duplicate group(s), 2 of 40 eval images with a copy in train (5.0%), "
            "7 suspected mislabel(s) (details: audit.json)") in lines
    assert not any(line.startswith("data audit") for line in _summary().lines())
    dropped = _summary(audit={**audit, "dropped_eval_images": 2}).lines()
    assert any("with a copy in train (5.0%), 2 left out of evaluation (--drop-leaked-eval), 7 "
               "suspected" in line for line in dropped)


def test_the_audit_section_names_its_findings_and_reads_thumbnails_back_by_file_name(tmp_path):
    page = render_html(_full_data())
    assert "Eval images with a copy in train (1)" in page and "Duplicate groups (1)" in page
    assert "Suspected mislabels (1), most suspect first: given -&gt; suggested (score)" in page
    assert "Audited 6 train and 4 eval images" in page
    data = _full_data()
    data.audit = AuditGallery({**_gallery().findings, "duplicates": [], "leaks": [],
                               "suspected_mislabels": [],
                               "mislabel_check": {"judged": False, "why": "chance"}},
                              "/a.json", [], [], [])
    page = render_html(data)
    assert "No duplicates, no eval image with a copy in train, no suspected mislabel." in page
    assert "Labels not judged: chance." in page
    # Thumbnails come from the examples, found by their file name in any split.
    split = tmp_path / "Split-eval"
    split.mkdir()
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(split / "data.gz"), options) as writer:
        for i, name in enumerate(("square/c.png", "square/t.png", "circle/m.png", "other.png")):
            buffer = io.BytesIO()
            Image.fromarray(_image(i)).save(buffer, "PNG")
            writer.write(make_example(buffer.getvalue(), 1, "square", name).SerializeToString())
    findings = tmp_path / "audit.json"
    findings.write_text(json.dumps(_gallery().findings))
    gallery = read_gallery(str(findings), [str(split)])
    assert [t.caption for t in gallery.leaks] == ["eval: square/c.png",
                                                  "train: square/t.png (0.97)"]
    assert gallery.leaks[0].image.shape == (16, 16, 3)
    np.testing.assert_array_equal(gallery.leaks[1].image, _image(1))
    assert gallery.mislabels[0].caption == "circle/m.png\ncircle -> square (0.93)"
    # circle/a*.png are not in the examples: shown blank, the group still listed.
    assert not gallery.duplicates[0].image.any()
    assert gallery.duplicates[1].caption == "circle/a2.png (1.00, +1 more)"


def test_the_summary_and_the_report_show_tflite_models_next_to_the_saved_model():
    comparison = {
        "tolerance_points": 1.0, "eval_images": 4, "representative_images": 6,
        "saved_model": {"accuracy": 0.75, "latency_ms": 10.0, "size_bytes": 40_000_000},
        "float16": {"accuracy": 0.75, "latency_ms": 6.5, "size_bytes": 18_000_000,
                    "accepted": True, "reason": ""},
        "int8": {"accuracy": 0.5, "latency_ms": 1.8, "size_bytes": 9_000_000,
                 "accepted": False, "reason": "accuracy 0.500 is more than 1 point(s) below "
                                              "the SavedModel's 0.750 (--tflite-tolerance)"}}
    pushed = {"float16": "/out/serving/shapes/3/assets.extra/tflite/model_float16.tflite"}
    summary = _summary(pushed_path="/out/serving/shapes/3", blessed=True,
                       not_blessed_because=[], not_pushed_because="", tflite=comparison,
                       pushed_tflite=pushed)
    assert summary.lines()[-3:] == [
        "TFLite check on 4 eval images (tolerance 1 point(s)): SavedModel accuracy 0.750, "
        "40.0 MB, 10.0 ms per image",
        "TFLite float16: accuracy 0.750, 18.0 MB, 6.5 ms per image; pushed: "
        "/out/serving/shapes/3/assets.extra/tflite/model_float16.tflite",
        "TFLite int8: accuracy 0.500, 9.0 MB, 1.8 ms per image; refused: accuracy 0.500 is "
        "more than 1 point(s) below the SavedModel's 0.750 (--tflite-tolerance)"]
    assert json.loads(json.dumps(summary.to_json()))["pushed_tflite"] == pushed
    data = _full_data()
    data.summary = summary
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", render_html(data))).split())
    assert ("TFLite float16 0.750 18.0 6.5 pushed: "
            "/out/serving/shapes/3/assets.extra/tflite/model_float16.tflite") in text
    assert "TFLite int8 0.500 9.0 1.8 refused: accuracy 0.500" in text
    assert "SavedModel 0.750 40.0 10.0 the reference" in text
    # A run without --tflite says nothing of it.
    assert not [line for line in _summary().lines() if "TFLite" in line]
    data.summary = _summary()
    assert "TFLite" not in render_html(data)


def test_the_summary_and_the_report_show_the_tuners_trials_in_order_and_the_best():
    tuning = {
        "objective": "val_accuracy", "best_trial_id": "1", "seconds": 30.5,
        "algorithm": "random", "trials_asked": 3,
        "cache": {"train": {"records": 6}, "eval": {"records": 4}, "seconds": 4.0},
        "trials": [
            {"trial_id": "0", "status": "COMPLETED", "score": 0.5, "val_loss": 0.7,
             "seconds": 8.0, "epochs": 2.0, "values": {"dense_units": 256, "dropout": 0.1}},
            {"trial_id": "1", "status": "COMPLETED", "score": 0.75, "val_loss": 0.5,
             "seconds": 9.0, "epochs": 2.0, "values": {"dense_units": 512, "dropout": 0.25}},
            {"trial_id": "2", "status": "FAILED", "score": None, "val_loss": None,
             "seconds": None, "epochs": None, "values": {"dense_units": 64, "dropout": 0.3}}]}
    summary = _summary(tuning=tuning)
    lines = [line for line in summary.lines() if line.startswith("tuning:")]
    assert lines == [
        "tuning: 2 of 3 trials completed, random search, in 30.5 s: features of 6 training and "
        "4 eval images cached once in 4.0 s, trials 17.0 s",
        "tuning: best trial 1, eval accuracy 0.750, trained with dense_units 512, dropout 0.25"]
    data = _full_data()
    data.summary = summary
    page = render_html(data)
    parsed = _parse(page)
    assert parsed.headings.index("Tuning") == parsed.headings.index(CURVES) - 1
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert ("0 0.500 0.7000 2 8.0 dense_units 256, dropout 0.1 "
            "1 (best) 0.750 0.5000 2 9.0 dense_units 512, dropout 0.25 "
            "2 [FAILED] - - - - dense_units 64, dropout 0.3") in text
    plot = plots.tuning_trials([0.5, 0.75, None], 1)
    assert _decoded("data:image/png;base64," + base64.b64encode(plot).decode()).size[0] > 300
    assert sum(_decoded(src).size[0] > 0 for src in parsed.images) == len(parsed.images)
    # A run without --tune says nothing of it.
    assert not [line for line in _summary().lines() if "tuning" in line]
    data.summary = _summary()
    assert "Tuning" not in _parse(render_html(data)).headings
