"""A TFMA metric for TFX's Evaluator: is the candidate significantly worse than the baseline?

Built like TFMA's own cross-model metric (`tfma.metrics.ModelCosineSimilarity`): per slice, each
eval example's candidate and baseline predictions arrive together, so the combiner counts the
images the candidate lost (baseline right, candidate wrong) and gained. It reports McNemar's
exact one-sided p-value of a loss (`stats.worse_p_value`) as a diff metric, so a change
threshold on it (`pipeline.pipeline.make_eval_config`) blesses or refuses in the Evaluator
itself, on the whole eval split and on each class's slice (there, the paired test of that
class's recall).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import model_util

from components.model_gate.stats import worse_p_value

METRIC_NAME = "paired_worse_p"  # the p-value; the counts are METRIC_NAME + LOST / GAINED
LOST = "_lost"  # eval images the baseline got right and the candidate wrong
GAINED = "_gained"  # the reverse


def correct(label: np.ndarray, prediction: np.ndarray) -> bool:
    """Whether one prediction is right, as the gate's accuracy counts it.

    One probability (a sigmoid head): class 1 when above 0.5, as TFMA's BinaryAccuracy; several
    (a softmax head): the argmax, as SparseCategoricalAccuracy.
    """
    truth = int(np.asarray(label).reshape(-1)[0])
    scores = np.asarray(prediction, dtype=np.float64).reshape(-1)
    guess = int(scores[0] > 0.5) if scores.size == 1 else int(np.argmax(scores))
    return guess == truth


@dataclasses.dataclass
class _Counts:
    lost: int = 0
    gained: int = 0


class PairedWorse(metric_types.Metric):
    """McNemar's exact one-sided p-value that the candidate is worse than the baseline, on the
    same images.

    No baseline (the first run), no computation: TFX drops change thresholds then.
    """

    def __init__(self, name: str = METRIC_NAME):
        super().__init__(self._computations, name=name)

    def _computations(self, name: str, eval_config: config_pb2.EvalConfig,
                      model_names: Iterable[str], output_names: Iterable[str] | None = ("",),
                      example_weighted: bool = False, **_: Any
                      ) -> metric_types.MetricComputations:
        baseline = model_util.get_baseline_model_spec(eval_config)
        if baseline is None:
            return []
        computations = []
        for model_name in model_names:
            if model_name == baseline.name:
                continue
            for output_name in output_names or ("",):
                keys = [metric_types.MetricKey(name=name + suffix, model_name=model_name,
                                               output_name=output_name, is_diff=True,
                                               example_weighted=example_weighted)
                        for suffix in ("", LOST, GAINED)]
                computations.append(metric_types.MetricComputation(
                    keys=keys, preprocessors=None,
                    combiner=_PairedCombiner(keys, eval_config, baseline.name, model_name,
                                             output_name)))
        return computations


class _PairedCombiner(beam.CombineFn):
    """Counts lost and gained images; extracts (p-value, lost, gained)."""

    def __init__(self, keys: list[metric_types.MetricKey], eval_config: config_pb2.EvalConfig,
                 baseline_name: str, model_name: str, output_name: str):
        self._keys = keys
        self._eval_config = eval_config
        self._models = (baseline_name, model_name)
        self._output_name = output_name

    def create_accumulator(self) -> _Counts:
        return _Counts()

    def add_input(self, accumulator: _Counts,
                  element: metric_types.StandardMetricInputs) -> _Counts:
        right = []
        for model in self._models:
            label, prediction, _ = next(metric_util.to_label_prediction_example_weight(
                inputs=element, eval_config=self._eval_config, model_name=model,
                output_name=self._output_name, flatten=False, allow_none=True))
            right.append(correct(label, prediction))
        baseline_right, candidate_right = right
        accumulator.lost += baseline_right and not candidate_right
        accumulator.gained += candidate_right and not baseline_right
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_Counts]) -> _Counts:
        merged = _Counts()
        for counts in accumulators:
            merged.lost += counts.lost
            merged.gained += counts.gained
        return merged

    def extract_output(self, accumulator: _Counts) -> dict[metric_types.MetricKey, float]:
        p_key, lost_key, gained_key = self._keys
        return {p_key: worse_p_value(accumulator.lost, accumulator.gained),
                lost_key: float(accumulator.lost), gained_key: float(accumulator.gained)}


metric_types.register_metric(PairedWorse)
