"""The tuning part of a run's summary (`--tune`): the Tuner's trials, in the order they ran."""

from __future__ import annotations

import json
import os
from typing import Any

from components.tuner.executor import TRIALS_FILE
from trainer.search_space import describe_values  # no TensorFlow import

TABLE_HEADER = ("trial", "eval accuracy", "eval loss", "epochs", "seconds", "values")


def read_trials(tuner_results: list) -> dict[str, Any]:
    """The Tuner's `trials.json` (components/tuner/executor.py); {} when the Tuner did not run."""
    for artifact in tuner_results:
        try:
            with open(os.path.join(artifact.uri, TRIALS_FILE), encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            return record
    return {}


def best_trial(tuning: dict[str, Any]) -> dict[str, Any] | None:
    """The trial the Trainer took its values from, or None."""
    return next((t for t in tuning.get("trials", [])
                 if t["trial_id"] == tuning.get("best_trial_id")), None)


def lines(tuning: dict[str, Any]) -> list[str]:
    """What the search cost and found, in two lines; [] without a search."""
    if not tuning:
        return []
    trials = tuning.get("trials", [])
    done = [t for t in trials if t.get("status") == "COMPLETED"]
    cache = tuning.get("cache", {})
    cost = f"{tuning['seconds']:.1f} s"
    if cache:
        cost += (f": features of {cache['train']['records']} training and "
                 f"{cache['eval']['records']} eval images cached once in {cache['seconds']:.1f} "
                 f"s, trials {sum(t.get('seconds') or 0 for t in trials):.1f} s")
    out = [f"tuning: {len(done)} of {len(trials)} trials completed, "
           f"{tuning.get('algorithm', '')} search, in {cost}"]
    best = best_trial(tuning)
    if best:
        out.append(f"tuning: best trial {best['trial_id']}, eval accuracy {best['score']:.3f}, "
                   f"trained with {describe_values(best['values'])}")
    return out


def table_rows(tuning: dict[str, Any]) -> list[tuple[str, ...]]:
    """The report's table: one row per trial, in the order they ran, the best marked."""
    rows = []
    for trial in tuning.get("trials", []):
        def figure(key: str, form: str, entry: dict = trial) -> str:
            value = entry.get(key)
            return "-" if value is None else format(value, form)

        mark = " (best)" if trial["trial_id"] == tuning.get("best_trial_id") else ""
        status = "" if trial.get("status") == "COMPLETED" else f" [{trial.get('status')}]"
        rows.append((trial["trial_id"] + mark + status, figure("score", ".3f"),
                     figure("val_loss", ".4f"), figure("epochs", ".0f"),
                     figure("seconds", ".1f"), describe_values(trial["values"])))
    return rows
