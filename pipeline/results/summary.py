"""What the last run did, read back from ML Metadata and the artifacts it records."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import tensorflow_data_validation as tfdv
from tfx.components.evaluator.constants import ARTIFACT_PROPERTY_BLESSED_KEY as EVALUATOR_BLESSED

from components.data_audit import properties as audit_props
from components.data_audit.executor import AUDIT_FILE
from components.data_validation import properties as verdict_props
from components.image_example_gen import properties as examples_props
from components.load_check import properties as load_check_props
from components.serving_pusher import properties as pusher_props
from pipeline.results import tflite as tflite_results
from pipeline.results import tuning as tuning_results
from pipeline.results.evaluation import read_evaluation
from pipeline.results.metadata import read_latest_run
from trainer.contract import DEVICE_PLAN_KEY, HISTORY_FILE, INPUT_SCALING_KEY, LABEL_NAME


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """The facts a user wants after a run, also written as JSON for tools."""

    pipeline_name: str
    run_id: str
    components: dict[str, str]
    ingestion: dict[str, Any]  # folders read, files found, ingested, quarantined and why, skipped
    examples_per_split: dict[str, int]
    examples_per_split_and_class: dict[str, dict[str, int]]
    eval_accuracy: float | None
    eval_example_count: int | None
    accuracy_threshold: float
    accuracy_change: float | None
    eval_metrics: dict[str, float]
    per_class_accuracy: dict[str, float]
    blessed: bool | None
    not_blessed_because: list[str]
    load_check_failure: str | None
    pushed_path: str | None
    data_problems: list[str] = dataclasses.field(default_factory=list)
    data_compared_with: str = ""
    not_pushed_because: str = ""
    devices: str = ""  # what the Trainer's device plan chose, e.g. '1 GPU: mixed_float16, ...'
    # From the Trainer's history.json (trainer/run.py): empty for runs made before they were.
    class_weights: dict[str, Any] = dataclasses.field(default_factory=dict)
    feature_check: dict[str, Any] = dataclasses.field(default_factory=dict)
    chance: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the head's was on
    input_scaling: str = ""  # how the base was fed and how that was decided, e.g. 'unit (...)'
    # DataAudit's counts and its audit.json ('findings'); empty when the audit did not run.
    audit: dict[str, Any] = dataclasses.field(default_factory=dict)
    # TFLiteExport's comparison with the SavedModel, and the TFLite files pushed with the version.
    tflite: dict[str, Any] = dataclasses.field(default_factory=dict)
    pushed_tflite: dict[str, str] = dataclasses.field(default_factory=dict)
    # The Evaluator's own: the accuracy's exact 95% interval [low, high], and the paired test
    # against the last blessed model ('overall', 'per_class'; empty without one).
    accuracy_interval: list[float] | None = None
    paired_test: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The Tuner's trials file (--tune): each trial's values, score and time; empty without it.
    tuning: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for `json.dump`."""
        return dataclasses.asdict(self)

    def _by_class(self, split: str) -> str:
        by_class = self.examples_per_split_and_class.get(split)
        if not by_class:
            return ""
        return " (" + ", ".join(f"{name} {n}" for name, n in sorted(by_class.items())) + ")"

    def _ingestion_lines(self) -> list[str]:
        facts = self.ingestion
        if "files_found" not in facts:
            return []
        where = ", ".join(facts["folders_read"])
        line = (f"ingested from {where}: {facts['ingested']} of {facts['files_found']} files, "
                f"{facts['quarantined']} quarantined")
        if facts["quarantined"]:
            kinds = ", ".join(f"{k} {n}" for k, n in facts["quarantined_per_kind"].items())
            line += f" ({kinds}; list: {facts['quarantine_report']})"
        if facts.get("skipped"):
            line += (f", {facts['skipped']} system files skipped (not counted; list: "
                     f"{facts['skipped_report']})")
        return [line]

    def _audit_lines(self) -> list[str]:
        audit = self.audit
        if not audit:
            return []
        evaluated, leaked = audit[audit_props.EVAL_IMAGES], audit[audit_props.LEAKED_EVAL_IMAGES]
        share = f" ({leaked / evaluated:.1%})" if evaluated else ""
        dropped = audit.get(audit_props.DROPPED_EVAL_IMAGES)
        left_out = ("" if dropped is None else
                    f", {dropped} left out of evaluation (--drop-leaked-eval)")
        return [f"data audit: {audit[audit_props.DUPLICATE_GROUPS]} duplicate group(s), "
                f"{leaked} of {evaluated} eval images with a copy in train{share}{left_out}, "
                f"{audit[audit_props.SUSPECTED_MISLABELS]} suspected mislabel(s) "
                f"(details: {AUDIT_FILE})"]

    def training_lines(self) -> list[str]:
        """The class weights, the feature check, what the head was validated on, and whether it
        ended at chance."""
        out = []
        balance = self.class_weights
        if balance:
            ratio = (f"the largest class has {balance['largest_over_smallest']:.1f} times the "
                     "examples of the smallest")
            if balance.get("weights"):
                out.append("class weights: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in balance["weights"].items())
                    + f" (--class-weights {balance['mode']}; {ratio})")
            else:
                out.append(f"class weights: none (--class-weights {balance['mode']}; {ratio})")
        check = self.feature_check
        if check:
            if check.get("errors"):
                out.append(f"feature check on {check['images']} training images: failed: "
                           + "; ".join(check["errors"]))
            elif check.get("warnings"):
                out.extend(f"feature check warning: {w}" for w in check["warnings"])
            else:
                out.append(f"feature check on {check['images']} training images: passed")
        if self.validation.get("records"):
            out.append(f"validated on the data audit's features of the "
                       f"{self.validation['records']} eval images (the base not run again)")
        elif self.validation.get("given"):
            out.append(f"validated on the eval images, not the data audit's features: "
                       f"{self.validation['reason']}")
        if self.chance.get("at_chance"):
            out.append(
                f"the head ended at chance on its own training data (best training accuracy "
                f"{self.chance['best_train_accuracy']:.3f}, always answering the largest class "
                f"{self.chance['chance_accuracy']:.3f}; best loss "
                f"{self.chance['best_train_loss']:.3f}, a constant answer "
                f"{self.chance['chance_loss']:.3f}); likely causes: "
                + "; ".join(self.chance["likely_causes"]))
        return out

    def gate_lines(self) -> list[str]:
        """The accuracy with its interval, and the paired test against the last blessed model."""
        verdict = ">=" if self.eval_accuracy >= self.accuracy_threshold else "<"
        interval = (f" (95% interval {self.accuracy_interval[0]:.3f}-"
                    f"{self.accuracy_interval[1]:.3f})" if self.accuracy_interval else "")
        line = (f"eval accuracy {self.eval_accuracy:.3f}{interval} {verdict} threshold "
                f"{self.accuracy_threshold:.3f} on {self.eval_example_count} images")
        paired = self.paired_test
        if self.accuracy_change is None and not paired:
            return [line + "; no blessed model before, judged on the threshold alone"]
        against = "against the last blessed model"
        if self.accuracy_change is not None:
            against += (f" (its accuracy {self.eval_accuracy - self.accuracy_change:.3f}, "
                        f"change {self.accuracy_change:+.3f})")
        if paired:
            against += f" on the same images: {paired['overall']['description']}"
        out = [line, against]
        if paired.get("per_class"):
            out.append("against it per class: " + "; ".join(
                f"{name} {test['description']}"
                for name, test in sorted(paired["per_class"].items())))
        return out

    def lines(self) -> list[str]:
        """The human-readable summary, one fact per line."""
        out = [f"run {self.run_id}: " + ", ".join(
            f"{name} {state}" for name, state in self.components.items())]
        out.extend(self._ingestion_lines())
        out.append("examples: " + ", ".join(
            f"{split} {n}" + self._by_class(split)
            for split, n in sorted(self.examples_per_split.items())))
        if self.devices:
            out.append(f"trained on {self.devices}")
        out.extend(tuning_results.lines(self.tuning))
        out.extend(self.training_lines())
        if self.input_scaling:
            out.append(f"base input scaling: {self.input_scaling}")
        if self.eval_accuracy is None:
            out.append("evaluation: no result")
        else:
            out.extend(self.gate_lines())
            others = {k: v for k, v in self.eval_metrics.items()
                      if k not in ("accuracy", "example_count")}
            if others:
                out.append("eval " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(others.items())))
            if self.per_class_accuracy:
                out.append("eval recall per class (accuracy on its own images): " + ", ".join(
                    f"{k} {v:.3f}" for k, v in sorted(self.per_class_accuracy.items())))
        out.extend(self._audit_lines())
        if self.data_problems:
            out.append(f"data checks: {len(self.data_problems)} problem(s):")
            out.extend(f"  {problem}" for problem in self.data_problems)
        elif "DataGate" in self.components:
            against = (f"compared with {self.data_compared_with}" if self.data_compared_with
                       else "no earlier data to compare with")
            out.append(f"data checks: passed ({against})")
        verdict = {True: "yes", False: "no", None: "not evaluated"}[self.blessed]
        if self.not_blessed_because:
            verdict += " (" + "; ".join(self.not_blessed_because) + ")"
        out.append("blessed: " + verdict)
        if self.load_check_failure:
            out.append(f"load-and-query check failed: {self.load_check_failure}")
        if self.pushed_path:
            out.append(f"pushed: {self.pushed_path}")
        else:
            why = {False: " (not blessed)", None: " (no evaluation)"}.get(self.blessed, "")
            if self.blessed and self.load_check_failure:
                why = " (the model failed the load-and-query check)"
            elif self.blessed and self.data_problems:
                why = " (the data checks found problems)"
            out.append("pushed: nothing" + why)
        out.extend(tflite_results.lines(self.tflite, self.pushed_tflite))
        return out


def _ingestion(examples: list) -> dict[str, Any]:
    """What the image ExampleGen recorded on its Examples artifact."""
    if not examples:
        return {}
    artifact = examples[0]
    props = artifact.custom_properties
    if examples_props.FILES_FOUND not in props:
        return {}
    return {
        "folders_read": json.loads(props[examples_props.FOLDERS_READ].string_value),
        "class_names": json.loads(props[examples_props.CLASS_NAMES].string_value),
        "files_found": props[examples_props.FILES_FOUND].int_value,
        "ingested": props[examples_props.INGESTED].int_value,
        "quarantined": props[examples_props.QUARANTINED].int_value,
        "quarantined_per_kind": json.loads(props[examples_props.QUARANTINED_PER_KIND].string_value),
        "quarantine_report": props[examples_props.QUARANTINE_REPORT].string_value,
        # Absent from Examples made before system files were skipped: none were.
        "skipped": (props[examples_props.SKIPPED].int_value
                    if examples_props.SKIPPED in props else 0),
        "skipped_report": (props[examples_props.SKIPPED_REPORT].string_value
                           if examples_props.SKIPPED_REPORT in props else ""),
    }


def _example_counts(statistics: list) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(examples per split, examples per split and class) from StatisticsGen's statistics."""
    counts: dict[str, int] = {}
    per_class: dict[str, dict[str, int]] = {}
    for artifact in statistics:
        for split in json.loads(artifact.properties["split_names"].string_value):
            path = os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb")
            dataset = tfdv.load_stats_binary(path).datasets[0]
            counts[split] = int(dataset.num_examples)
            for feature in dataset.features:
                if feature.path.step == [LABEL_NAME]:
                    buckets = feature.string_stats.rank_histogram.buckets
                    per_class[split] = {b.label: int(b.sample_count) for b in buckets}
    return counts, per_class


def trainer_record(model_runs: list) -> dict[str, Any]:
    """The history.json the Trainer wrote beside its model (trainer/run.py); {} without one."""
    if not model_runs:
        return {}
    path = os.path.join(model_runs[0].uri, HISTORY_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def device_plan_description(model_runs: list) -> str:
    """What the Trainer's device plan chose, from the history.json beside its model; or ''."""
    plan = trainer_record(model_runs).get(DEVICE_PLAN_KEY) or {}
    return plan.get("description", "")


def input_scaling_description(model_runs: list) -> str:
    """How the Trainer fed the base and how that was decided, from its history.json; or ''."""
    return (trainer_record(model_runs).get(INPUT_SCALING_KEY) or {}).get("description", "")


def read_run_summary(metadata_path: Path, pipeline_name: str,
                     accuracy_threshold: float) -> RunSummary:
    """Summarizes the most recent run of `pipeline_name` recorded in `metadata_path`."""
    run = read_latest_run(metadata_path, pipeline_name)
    components, outputs = run.states, run.outputs
    examples, examples_by_class = _example_counts(
        outputs.get("StatisticsGen", {}).get("statistics", []))
    evaluator = outputs.get("Evaluator", {})
    evaluation = (read_evaluation(evaluator["evaluation"][0].uri)
                  if evaluator.get("evaluation") else None)
    overall = evaluation.metrics if evaluation else {}
    count = overall.get("example_count")
    blessings = evaluator.get("blessing", [])
    blessed = (bool(blessings[0].custom_properties[EVALUATOR_BLESSED].int_value) if blessings
               else None)
    not_blessed_because = evaluation.failures if blessed is False and evaluation else []
    paired_test = {}
    if evaluation and evaluation.paired:
        paired_test = {"overall": evaluation.paired.to_json(), "per_class": {
            name: test.to_json() for name, test in evaluation.paired_per_class.items()}}
    load_check_failure = None
    for name in ("ModelLoadCheck", "InfraValidator"):
        for infra in outputs.get(name, {}).get("blessing", []):
            if not infra.custom_properties[load_check_props.BLESSED].int_value:
                reason = infra.custom_properties.get(load_check_props.REASON)
                load_check_failure = (reason.string_value if reason else "") or (
                    f"{name} did not bless the model; see its log")
    pushed_path = None
    not_pushed_because = ""
    pushed_tflite: dict[str, str] = {}
    for pushed in outputs.get("Pusher", {}).get("pushed_model", []):
        if pushed.custom_properties[pusher_props.PUSHED].int_value:
            pushed_path = pushed.custom_properties[pusher_props.PUSHED_DESTINATION].string_value
            pushed_tflite = tflite_results.pushed_files(pushed, pushed_path)
        elif pusher_props.NOT_PUSHED_BECAUSE in pushed.custom_properties:
            not_pushed_because = (
                pushed.custom_properties[pusher_props.NOT_PUSHED_BECAUSE].string_value)
    data_problems: list[str] = []
    data_compared_with = ""
    for verdict in outputs.get("DataGate", {}).get("verdict", []):
        data_problems = json.loads(verdict.custom_properties[verdict_props.PROBLEMS].string_value)
        data_compared_with = verdict.custom_properties[verdict_props.COMPARED_WITH].string_value
    model_runs = outputs.get("Trainer", {}).get("model_run", [])
    record = trainer_record(model_runs)
    audit = {}
    for findings in outputs.get("DataAudit", {}).get("findings", []):
        audit = {key: findings.custom_properties[key].int_value
                 for key in (audit_props.DUPLICATE_GROUPS, audit_props.LEAKED_EVAL_IMAGES,
                             audit_props.EVAL_IMAGES, audit_props.TRAIN_IMAGES,
                             audit_props.SUSPECTED_MISLABELS)}
        audit["findings"] = os.path.join(findings.uri, AUDIT_FILE)
    for kept in outputs.get("DropLeakedEval", {}).get("eval_examples", []):
        audit[audit_props.DROPPED_EVAL_IMAGES] = (
            kept.custom_properties[audit_props.DROPPED_EVAL_IMAGES].int_value)
    return RunSummary(
        pipeline_name=pipeline_name,
        run_id=run.run_id,
        components=components,
        ingestion=_ingestion(outputs.get("ImageExampleGen", {}).get("examples", [])),
        examples_per_split=examples,
        examples_per_split_and_class=examples_by_class,
        eval_accuracy=overall.get("accuracy"),
        eval_example_count=int(count) if count is not None else None,
        accuracy_threshold=accuracy_threshold,
        accuracy_change=evaluation.changes.get("accuracy") if evaluation else None,
        eval_metrics=overall,
        per_class_accuracy=evaluation.per_class if evaluation else {},
        blessed=blessed,
        not_blessed_because=not_blessed_because,
        load_check_failure=load_check_failure,
        pushed_path=pushed_path,
        data_problems=data_problems,
        data_compared_with=data_compared_with,
        not_pushed_because=not_pushed_because,
        devices=device_plan_description(model_runs),
        class_weights=record.get("class_weights") or {},
        feature_check=record.get("health") or {},
        chance=record.get("chance") or {},
        validation=record.get("validation") or {},
        input_scaling=input_scaling_description(model_runs),
        audit=audit,
        tflite=tflite_results.comparison(
            outputs.get("TFLiteExport", {}).get("tflite_models", [])),
        pushed_tflite=pushed_tflite,
        accuracy_interval=list(evaluation.accuracy_interval or ()) or None if evaluation else None,
        paired_test=paired_test,
        tuning=tuning_results.read_trials(outputs.get("Tuner", {}).get("tuner_results", [])),
    )
