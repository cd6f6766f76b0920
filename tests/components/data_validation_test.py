"""CurateSchema and DataGate on real TFDV statistics of image-ExampleGen-shaped examples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.data_validation import checks, executor
from components.data_validation.component import DataVerdict
from components.data_validation.schema import curate_schema
from components.image_example_gen.reader import make_example


def _statistics(tmp: Path, counts: dict[str, int], tag: str, classes=None):
    """TFDV statistics (one dataset) of `counts[class]` examples per class."""
    classes = classes or sorted(counts)
    path = tmp / f"{tag}.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name, n in counts.items():
            for i in range(n):
                writer.write(make_example(b"\xff\xd8" + bytes([i % 256]), classes.index(name),
                                          name, f"{tag}/{name}/{i}.jpg", 30, 40,
                                          "jpeg").SerializeToString())
    return tfdv.generate_statistics_from_tfrecord(str(path))


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    return _statistics(tmp_path_factory.mktemp("stats"), {"cat": 20, "dog": 20}, "balanced")


@pytest.fixture(scope="module")
def curated(balanced):
    return curate_schema(tfdv.infer_schema(balanced), ["cat", "dog"])


def test_curated_schema_describes_image_features(curated):
    features = {f.name: f for f in curated.feature}
    assert not features["filename"].HasField("domain")
    assert "filename" not in [d.name for d in curated.string_domain]
    assert list(features["label_name"].string_domain.value) == ["cat", "dog"]
    assert set(features["format"].string_domain.value) == {"bmp", "gif", "jpeg", "png"}
    label = features["label"].int_domain
    assert (label.min, label.max, label.is_categorical) == (0, 1, True)
    assert features["height"].int_domain.min == 1
    assert features["image_bytes"].image_domain.minimum_supported_image_fraction == 1.0


def test_new_files_of_known_classes_are_no_anomaly(curated, tmp_path):
    other = _statistics(tmp_path, {"cat": 7, "dog": 9}, "other-span")
    assert checks.describe_anomalies(tfdv.validate_statistics(other, curated), "train") == []


def test_the_inferred_schema_would_flag_every_new_file(balanced, tmp_path):
    # Why curation is needed: SchemaGen's own schema takes the file names seen as the only ones.
    other = _statistics(tmp_path, {"cat": 7, "dog": 9}, "other-span")
    found = checks.describe_anomalies(
        tfdv.validate_statistics(other, tfdv.infer_schema(balanced)), "train")
    assert any(s.startswith("train: filename:") for s in found)


def test_an_unknown_class_is_an_anomaly(curated, tmp_path):
    other = _statistics(tmp_path, {"cat": 5, "dog": 5, "fox": 5}, "fox")
    found = checks.describe_anomalies(tfdv.validate_statistics(other, curated), "train")
    assert any("label_name" in s and "fox" in s for s in found), found


def test_class_changes_name_added_and_lost_classes():
    found = checks.class_changes(["cat", "fox"], ["cat", "dog"], "span 2", "span 1")
    assert found == [
        "span 2 brings class(es) fox that span 1 did not have: a model trained before has "
        "never seen them",
        "span 2 has no example of class(es) dog that span 1 had",
    ]
    assert checks.class_changes(["a", "b"], ["b", "a"], "x", "y") == []


def test_class_drift_is_the_l_infinity_distance_of_class_shares():
    balanced = {"cat": 20, "dog": 20}
    found = checks.class_drift({"cat": 36, "dog": 4}, balanced, 0.25, "span 2", "span 1")
    assert found == ["span 2 against span 1: the class balance moved by 0.40 (L-infinity), "
                     "more than 0.25: cat went from 50% to 90% of the images"]
    assert checks.class_drift({"cat": 22, "dog": 18}, balanced, 0.25, "span 2", "span 1") == []
    # A class that vanishes moves its share to 0: 1/3 of the images here.
    assert checks.class_drift({"a": 5, "b": 5}, {"a": 5, "b": 5, "c": 5}, 0.25, "x", "y")


def _artifact(kind, uri: Path, artifact_id: int):
    artifact = kind()
    artifact.uri = str(uri)
    artifact.id = artifact_id
    return artifact


def _examples(tmp: Path, span: int, counts: dict[str, int],
              previous: tuple[int, dict[str, int]] | None):
    """An Examples artifact with what the image ExampleGen records on it."""
    examples = _artifact(standard_artifacts.Examples, tmp / "examples", 1)
    examples.set_int_custom_property("span", span)  # where TFX's driver records it
    examples.set_string_custom_property("ingested_per_class", json.dumps(counts))
    examples.set_string_custom_property("class_names", json.dumps(sorted(counts)))
    if previous is not None:
        examples.set_int_custom_property("previous_span", previous[0])
        examples.set_string_custom_property("previous_span_images_per_class",
                                            json.dumps(previous[1]))
    return examples


def _run_gate(tmp: Path, examples, anomalies: anomalies_pb2.Anomalies,
              max_class_drift: float = 0.25):
    anomalies_artifact = _artifact(standard_artifacts.ExampleAnomalies, tmp / "anomalies", 21)
    anomalies_artifact.split_names = artifact_utils.encode_split_names(["train"])
    io_utils.write_bytes_file(os.path.join(tmp, "anomalies", "Split-train", "SchemaDiff.pb"),
                              anomalies.SerializeToString())
    verdict = _artifact(DataVerdict, tmp / "verdict", 22)
    executor.DataGateExecutor().Do(
        {"examples": [examples], "anomalies": [anomalies_artifact]}, {"verdict": [verdict]},
        {"max_class_drift": max_class_drift})
    return verdict


def test_gate_passes_clean_data(tmp_path):
    examples = _examples(tmp_path, 2, {"cat": 21, "dog": 19}, (1, {"cat": 20, "dog": 20}))
    verdict = _run_gate(tmp_path, examples, anomalies_pb2.Anomalies())
    assert verdict.get_int_custom_property("passed") == 1
    assert verdict.get_string_custom_property("compared_with") == "span 1"
    assert json.loads(verdict.get_string_custom_property("problems")) == []


def test_gate_fails_on_each_kind_of_problem(tmp_path):
    examples = _examples(tmp_path, 3, {"cat": 30, "dog": 0, "fox": 2},
                         (2, {"cat": 20, "dog": 20}))
    flagged = anomalies_pb2.Anomalies()
    flagged.anomaly_info["format"].reason.add(
        type=anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES,
        short_description="Unexpected string values", description="Examples contain tiff.")
    verdict = _run_gate(tmp_path, examples, flagged)
    problems = json.loads(verdict.get_string_custom_property("problems"))
    assert verdict.get_int_custom_property("passed") == 0
    assert problems == [
        "train: format: Unexpected string values: Examples contain tiff.",
        "span 3 brings class(es) fox that span 2 did not have: a model trained before has "
        "never seen them",
        "span 3 has no example of class(es) dog that span 2 had",
        "span 3 against span 2: the class balance moved by 0.50 (L-infinity), more than 0.25: "
        "dog went from 50% to 0% of the images",
    ]
    assert (tmp_path / "verdict" / "problems.txt").read_text().splitlines() == problems


def test_the_drift_bound_is_a_parameter(tmp_path):
    examples = _examples(tmp_path, 2, {"cat": 30, "dog": 10}, (1, {"cat": 20, "dog": 20}))
    assert _run_gate(tmp_path, examples, anomalies_pb2.Anomalies(),
                     max_class_drift=0.3).get_int_custom_property("passed") == 1
    assert _run_gate(tmp_path, examples, anomalies_pb2.Anomalies(),
                     max_class_drift=0.2).get_int_custom_property("passed") == 0


def test_first_data_has_nothing_to_compare_with(tmp_path):
    verdict = _run_gate(tmp_path, _examples(tmp_path, 1, {"cat": 3, "dog": 3}, None),
                        anomalies_pb2.Anomalies())
    assert verdict.get_int_custom_property("passed") == 1
    assert verdict.get_string_custom_property("compared_with") == ""


def _audit(tmp: Path, leaked: int, eval_images: int):
    from components.data_audit import properties as audit_props
    from components.data_audit.component import AuditFindings

    findings = _artifact(AuditFindings, tmp / "audit", 23)
    findings.set_int_custom_property(audit_props.LEAKED_EVAL_IMAGES, leaked)
    findings.set_int_custom_property(audit_props.EVAL_IMAGES, eval_images)
    return findings


@pytest.mark.parametrize(("leaked", "max_leakage", "passed"),
                         [(5, 0.05, 1), (6, 0.05, 0), (0, 0.0, 1), (1, 0.0, 0)])
def test_eval_images_leaked_into_train_fail_the_data_above_max_leakage(
        tmp_path, leaked, max_leakage, passed):
    examples = _examples(tmp_path, 1, {"cat": 3, "dog": 3}, None)
    anomalies_artifact = _artifact(standard_artifacts.ExampleAnomalies, tmp_path / "anomalies", 21)
    anomalies_artifact.split_names = artifact_utils.encode_split_names([])
    verdict = _artifact(DataVerdict, tmp_path / "verdict", 22)
    executor.DataGateExecutor().Do(
        {"examples": [examples], "anomalies": [anomalies_artifact],
         "audit": [_audit(tmp_path, leaked, 100)]}, {"verdict": [verdict]},
        {"max_leakage": max_leakage})
    assert verdict.get_int_custom_property("passed") == passed
    problems = json.loads(verdict.get_string_custom_property("problems"))
    if passed:
        assert problems == []
    else:
        assert problems == [
            f"{leaked} of 100 eval images ({leaked}.0%) have a copy in train, more than the "
            f"{max_leakage:.1%} allowed (max_leakage): the eval accuracy is overstated; remove "
            "those eval images (audit.json lists them under leaks) or allow more"]
