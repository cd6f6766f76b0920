"""The gate in TFX's real Evaluator, on planted models: tiny SavedModels that answer each eval
image (known by its file name) right or wrong as the test decides, so the paired counts are
known exactly. Against the same baseline: a truly worse candidate is refused, one lower by two
images is blessed, one worse on a single class is refused with that class named; and the
summary reads the candidate's accuracy, never the baseline's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.evaluator.constants import ARTIFACT_PROPERTY_BLESSED_KEY
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.model_gate.stats import worse_p_value
from pipeline.config import GateConfig
from pipeline.pipeline import make_eval_config
from pipeline.results.evaluation import read_evaluation
from trainer.contract import (
    EXAMPLES_INPUT,
    EXAMPLES_SIGNATURE,
    FILENAME,
    LABEL,
    LABEL_NAME,
    PROBABILITY,
    SERVING_SUBDIR,
)

PER_CLASS = 30


def _examples(root: Path, class_names: tuple[str, ...]) -> tuple[standard_artifacts.Examples,
                                                                 np.ndarray, list[str]]:
    """An Examples artifact with an eval split of PER_CLASS images per class (no pixels: the
    planted models answer by file name); returns it, the labels and the file names."""
    split = root / "examples" / "Split-eval"
    split.mkdir(parents=True)
    labels = np.repeat(np.arange(len(class_names)), PER_CLASS)
    names = [f"{class_names[y]}/{i:03d}.png" for i, y in enumerate(labels)]
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as writer:
        for y, name in zip(labels, names, strict=True):
            feature = {
                LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y)])),
                LABEL_NAME: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[class_names[y].encode()])),
                FILENAME: tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root / "examples")
    artifact.split_names = json.dumps(["eval"])
    return artifact, labels, names


def _planted_model(root: Path, name: str, names: list[str], labels: np.ndarray,
                   right: np.ndarray, classes: int) -> standard_artifacts.Model:
    """A model whose `from_examples` answers image i right when `right[i]`, else wrong, with
    the output the real head gives: one sigmoid probability for two classes, else a softmax."""
    guess = np.where(right, labels, (labels + 1) % classes)
    if classes == 2:
        probabilities = np.where(guess == 1, 0.9, 0.1)[:, None].astype(np.float32)
    else:
        probabilities = np.full((len(guess), classes), 0.1 / (classes - 1), np.float32)
        probabilities[np.arange(len(guess)), guess] = 0.9
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(names), tf.range(len(names), dtype=tf.int64)), default_value=-1)
    module.answers = tf.Variable(probabilities, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve(serialized):
        parsed = tf.io.parse_example(serialized, {FILENAME: tf.io.FixedLenFeature([], tf.string)})
        return {PROBABILITY: tf.gather(module.answers, module.table.lookup(parsed[FILENAME]))}

    model = standard_artifacts.Model()
    model.uri = str(root / name)
    tf.saved_model.save(module, os.path.join(model.uri, SERVING_SUBDIR),
                        signatures={EXAMPLES_SIGNATURE: serve.get_concrete_function()})
    return model


def _evaluate(root: Path, examples, candidate, baseline, classes: int) -> tuple[bool, str]:
    """Runs TFX's Evaluator executor as the pipeline configures it; (blessed, evaluation uri)."""
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / "evaluation"), str(root / "blessing")
    inputs = {"examples": [examples], "model": [candidate]}
    if baseline is not None:
        inputs["baseline_model"] = [baseline]
    eval_config = make_eval_config(GateConfig(accuracy_threshold=0.5, alpha=0.05), classes)
    evaluator_executor.Executor().Do(
        inputs, {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_config": proto_utils.proto_to_json(eval_config), "example_splits": "null"})
    return bool(blessing.get_int_custom_property(ARTIFACT_PROPERTY_BLESSED_KEY)), evaluation.uri


def _baseline_right(labels: np.ndarray, seed: int) -> np.ndarray:
    """The baseline: wrong on 8 images of each class, chosen at random, right on the rest."""
    rng = np.random.default_rng(seed)
    right = np.ones(len(labels), dtype=bool)
    for cls in np.unique(labels):
        right[rng.choice(np.flatnonzero(labels == cls), 8, replace=False)] = False
    return right


def _flip(right: np.ndarray, labels: np.ndarray, to: bool, count: int, cls: int | None
          ) -> np.ndarray:
    """`right` with `count` answers of class `cls` (any class when None) turned to `to`."""
    changed = right.copy()
    pool = np.flatnonzero((right != to) & ((labels == cls) if cls is not None else True))
    changed[pool[:count]] = to
    return changed


CLASS_SETS = {2: ("cat", "dog"), 3: ("circle", "cross", "square")}


@pytest.fixture(params=[2, 3], ids=["binary", "three-class"])
def case(request, tmp_path):
    class_names = CLASS_SETS[request.param]
    examples, labels, names = _examples(tmp_path, class_names)
    right = _baseline_right(labels, seed=request.param)
    baseline = _planted_model(tmp_path, "baseline", names, labels, right, len(class_names))

    def judge(candidate_right: np.ndarray, with_baseline: bool = True):
        candidate = _planted_model(tmp_path, "candidate", names, labels, candidate_right,
                                   len(class_names))
        blessed, uri = _evaluate(tmp_path, examples, candidate,
                                 baseline if with_baseline else None, len(class_names))
        return blessed, read_evaluation(uri)

    return class_names, labels, right, judge


def test_a_truly_worse_candidate_is_refused_and_its_own_accuracy_reported(case):
    class_names, labels, right, judge = case
    worse = _flip(right, labels, False, 12, None)  # 12 images lost, none gained
    blessed, evaluation = judge(worse)
    assert not blessed
    assert (evaluation.paired.lost, evaluation.paired.gained) == (12, 0)
    assert evaluation.paired.p_value == pytest.approx(worse_p_value(12, 0))
    assert any(f.startswith("significantly worse than the last blessed model overall")
               for f in evaluation.failures), evaluation.failures
    # One source: the candidate's accuracy, not the baseline's (which TFMA also writes).
    assert evaluation.metrics["accuracy"] == pytest.approx(worse.mean())
    assert evaluation.metrics["accuracy"] != pytest.approx(right.mean())
    assert evaluation.changes["accuracy"] == pytest.approx(worse.mean() - right.mean())
    assert evaluation.per_class == pytest.approx(
        {name: worse[labels == i].mean() for i, name in enumerate(class_names)})
    low, high = evaluation.accuracy_interval
    assert low < worse.mean() < high


def test_a_drop_of_two_images_is_noise_and_blessed(case):
    _, labels, right, judge = case
    lower = _flip(right, labels, False, 2, None)
    assert lower.sum() == right.sum() - 2
    blessed, evaluation = judge(lower)
    assert blessed, evaluation.failures
    assert (evaluation.paired.lost, evaluation.paired.gained) == (2, 0)
    assert not evaluation.paired.worse and evaluation.failures == []
    # The paired counts and TFMA's own accuracies tell the same story.
    assert evaluation.changes["accuracy"] == pytest.approx(-2 / len(labels))


def test_a_candidate_worse_on_one_class_only_is_refused_with_that_class_named(case):
    class_names, labels, right, judge = case
    target = len(class_names) - 1
    # 9 of the last class's images lost; 7 gained elsewhere: overall within noise.
    mixed = _flip(right, labels, False, 9, target)
    for cls in range(target):
        mixed = _flip(mixed, labels, True, 7 // target + (cls < 7 % target), cls)
    blessed, evaluation = judge(mixed)
    assert (evaluation.paired.lost, evaluation.paired.gained) == (9, 7)
    assert not evaluation.paired.worse
    assert not blessed
    named = class_names[target]
    assert evaluation.paired_per_class[named].worse
    assert [f for f in evaluation.failures if "significantly worse" in f] == [
        f for f in evaluation.failures if f"on class {named}:" in f], evaluation.failures
    assert len(evaluation.failures) == 1


def test_the_first_run_has_no_paired_test_and_is_judged_on_accuracy(case):
    _, labels, right, judge = case
    blessed, evaluation = judge(_flip(right, labels, False, 12, None), with_baseline=False)
    assert blessed  # 0.5 accuracy threshold, no baseline: nothing else to refuse on
    assert evaluation.paired is None and evaluation.paired_per_class == {}
