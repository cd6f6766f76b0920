"""The Evaluator's result read back: the candidate's metrics, the paired test, the verdict.

With a blessed baseline, TFMA writes every metric twice, once per model ("candidate" and
"baseline"), plus the diffs. Only the candidate's are the evaluated model's: reading all of them
into one dict let the baseline's accuracy overwrite the candidate's, so a summary once said
"Eval accuracy 0.515" while the gate refused "accuracy 0.507". Everything here comes from the
one evaluation, candidate first, and the gate's phrases quote the values it judged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers.eval_config_writer import load_eval_run

from components.model_gate.paired import GAINED, LOST
from components.model_gate.paired import METRIC_NAME as PAIRED
from components.model_gate.stats import clopper_pearson

CONFIDENCE = 0.95  # of the accuracy's interval


def format_p(p_value: float) -> str:
    """Three decimals, or two significant digits below 0.001 (a clear refusal stays legible)."""
    return f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """McNemar's exact one-sided test against the baseline on one slice's eval images."""

    lost: int  # images the baseline got right and the candidate wrong
    gained: int  # the reverse
    p_value: float  # of at least `lost` losses by chance (McNemar, one-sided)
    level: float | None  # below which the gate refuses; None when no threshold was set

    @property
    def worse(self) -> bool:
        """Significantly worse: what the gate refuses."""
        return self.level is not None and self.p_value < self.level

    def to_json(self) -> dict[str, Any]:
        """The counts, p-value and level, the verdict, and `describe()` as 'description'."""
        return {**dataclasses.asdict(self), "significantly_worse": self.worse,
                "description": self.describe()}

    def describe(self) -> str:
        """E.g. '3 lost, 1 gained, McNemar exact p 0.312 >= 0.050: within noise'."""
        verdict = ("significantly worse" if self.worse else
                   "not worse" if self.lost <= self.gained else "within noise")
        level = "" if self.level is None else f" {'<' if self.worse else '>='} {self.level:.3f}"
        return (f"{self.lost} lost, {self.gained} gained, McNemar exact p "
                f"{format_p(self.p_value)}{level}: {verdict}")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One Evaluator output, the candidate's side."""

    metrics: dict[str, float]  # the whole eval split
    changes: dict[str, float]  # candidate minus baseline, for metrics both have
    per_class: dict[str, float]  # accuracy on each class's slice (that class's recall)
    paired: PairedTest | None  # None without a baseline
    paired_per_class: dict[str, PairedTest]
    failures: list[str]  # one phrase per failed threshold

    @property
    def accuracy_interval(self) -> tuple[float, float] | None:
        """The exact 95% interval of the accuracy on these `example_count` images."""
        accuracy, count = self.metrics.get("accuracy"), self.metrics.get("example_count")
        if accuracy is None or not count:
            return None
        return clopper_pearson(round(accuracy * count), int(count), CONFIDENCE)


def _slice_name(slice_key: Any) -> str:
    keys = slice_key.single_slice_keys
    return keys[0].bytes_value.decode("utf-8") if keys else ""


def _levels(evaluation_uri: str) -> tuple[float | None, float | None]:
    """(overall, per class) levels of the paired test, as the Evaluator was configured."""
    eval_config = load_eval_run(evaluation_uri)[0]
    overall = per_class = None
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            if PAIRED not in metric.config:
                continue
            for per_slice in metric.per_slice_thresholds:
                change = per_slice.threshold.change_threshold
                if not change.HasField("absolute"):
                    continue  # no baseline: TFX dropped the change thresholds
                if any(s.feature_keys for s in per_slice.slicing_specs):
                    per_class = change.absolute.value
                else:
                    overall = change.absolute.value
    return overall, per_class


def _failure(failure: Any, where: str, paired: dict[str, PairedTest]) -> str:
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value
    if failure.message:
        return f"{name}{' on class ' + where if where else ''}: {failure.message.strip()}"
    if name == PAIRED and where in paired:
        test = paired[where]
        on = f"on class {where}" if where else "overall"
        return (f"significantly worse than the last blessed model {on}: on the same eval "
                f"images it got {test.lost} wrong that the last blessed model got right and "
                f"{test.gained} the reverse (McNemar exact p {format_p(test.p_value)} < "
                f"{test.level:.3f})")
    if failure.metric_key.is_diff:
        bound = failure.metric_threshold.change_threshold.absolute.value
        return (f"{name}{' on class ' + where if where else ''} changed {value:+.3f} against "
                f"the last blessed model, more than the allowed {bound:+.3f}")
    bound = failure.metric_threshold.value_threshold.lower_bound.value
    return f"{name}{' on class ' + where if where else ''} {value:.3f} < threshold {bound:.3f}"


def read_evaluation(evaluation_uri: str) -> Evaluation:
    """Reads an Evaluator's `evaluation` artifact (metrics, validation, its eval config)."""
    metrics: dict[str, float] = {}
    changes: dict[str, float] = {}
    per_class: dict[str, float] = {}
    counts: dict[str, dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        where = _slice_name(slice_metrics.slice_key)
        for entry in slice_metrics.metric_keys_and_values:
            if (not entry.value.HasField("double_value")
                    or entry.key.model_name == tfma.BASELINE_KEY):
                continue  # plots and confusion matrices; the baseline's own metrics
            name, value = entry.key.name, entry.value.double_value.value
            if name.startswith(PAIRED):
                counts.setdefault(where, {})[name] = value
            elif not where:
                (changes if entry.key.is_diff else metrics)[name] = value
            elif name == "accuracy" and not entry.key.is_diff:
                per_class[where] = value
    overall_level, class_level = _levels(evaluation_uri)
    paired = {where: PairedTest(lost=int(c[PAIRED + LOST]), gained=int(c[PAIRED + GAINED]),
                                p_value=c[PAIRED], level=class_level if where else overall_level)
              for where, c in counts.items()}
    failures = [_failure(failure, _slice_name(per_slice.slice_key), paired)
                for per_slice in tfma.load_validation_result(
                    evaluation_uri).metric_validations_per_slice
                for failure in per_slice.failures]
    return Evaluation(metrics=metrics, changes=changes, per_class=per_class,
                      paired=paired.pop("", None), paired_per_class=paired, failures=failures)
