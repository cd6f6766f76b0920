"""Three classes through the pipeline (softmax head, sparse accuracy), and a gate that holds."""

import pytest

from pipeline.local.sample_data import write_sample_data

MODEL = "three"

pytestmark = pytest.mark.slow


def test_three_classes_are_evaluated_per_class_and_an_unreachable_threshold_pushes_nothing(
        tmp_path, run_pipeline):
    def _run(data, output, threshold: float) -> dict:
        return run_pipeline(data, output, MODEL, {"accuracy_threshold": threshold})[0].to_json()

    write_sample_data(tmp_path / "data", ("circle", "cross", "square"), 14, 75, seed=4)
    first = _run(tmp_path / "data", tmp_path / "out", 0.0)
    assert first["blessed"] is True
    assert first["eval_example_count"] == first["examples_per_split"]["eval"]
    assert set(first["per_class_accuracy"]) <= {"circle", "cross", "square"}
    assert first["per_class_accuracy"]
    versions = sorted((tmp_path / "out" / "serving" / MODEL).iterdir())
    assert [p.name for p in versions if p.name.isdigit()] == ["1"]

    second = _run(tmp_path / "data", tmp_path / "out", 1.0)
    assert second["eval_accuracy"] < 1.0
    assert second["blessed"] is False
    # One number: the summary's accuracy is the one the gate judged (with a baseline, TFMA
    # also writes the baseline's accuracy; the summary once showed that one).
    assert f"accuracy {second['eval_accuracy']:.3f} < threshold 1.000" in (
        second["not_blessed_because"]), second
    low, high = second["accuracy_interval"]
    assert low <= second["eval_accuracy"] <= high
    assert second["paired_test"]["overall"]["level"] == pytest.approx(0.05)  # --gate-alpha's
    assert set(second["paired_test"]["per_class"]) == set(second["per_class_accuracy"])
    assert second["pushed_path"] is None
    assert sorted((tmp_path / "out" / "serving" / MODEL).iterdir()) == versions
