"""TFX's Tuner executor, which also writes `trials.json` beside its `tuner_results.json`.

TFX records the best values (`best_hyperparameters`, which the Trainer reads) and the completed
trials best first, without their order or time. `trials.json` keeps every trial in the order it
ran, with its values, score, status and seconds, the search's total time and what the tuner
reports of itself (`record`: the cost of the feature cache, see `trainer.tune`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from tfx import types
from tfx.components.tuner import executor as tfx_tuner
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from components import stop

TRIALS_FILE = "trials.json"
TRIAL_METRICS = ("val_loss", "seconds", "epochs")


def _metric(trial: Any, name: str) -> float | None:
    if not trial.metrics.exists(name):
        return None
    return trial.metrics.get_last_value(name)


def describe_trials(tuner: Any, seconds: float) -> dict[str, Any]:
    """Every trial in the order it ran, the best one's id, the search's wall time."""
    trials = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        values = {k: v for k, v in trial.hyperparameters.values.items()
                  if not k.startswith("tuner/")}
        entry = {"trial_id": trial_id, "status": str(trial.status), "score": trial.score,
                 "values": values}
        entry.update({name: _metric(trial, name) for name in TRIAL_METRICS})
        trials.append(entry)
    best = tuner.oracle.get_best_trials(1)
    return {"objective": tuner.oracle.objective.name,
            "best_trial_id": best[0].trial_id if best else None,
            "seconds": round(seconds, 2), "trials": trials,
            **getattr(tuner, "record", {})}


class Executor(tfx_tuner.Executor):
    """`tfx_tuner.Executor`'s search and outputs, and the trials file."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],  # noqa: N802  (TFX's name)
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        stop.raise_if_requested()  # as each of our components starts (components/stop.py)
        if tfx_tuner.get_tune_args(exec_properties):
            raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
        started = time.perf_counter()
        tuner = tfx_tuner.search(input_dict, exec_properties, self._get_tmp_dir(),
                                 print_tuning_summary=False)
        seconds = time.perf_counter() - started
        stop.raise_if_requested()  # a stop asked for during the search wins over its results
        tfx_tuner.write_best_hyperparameters(tuner, output_dict)
        results = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.TUNER_RESULTS_KEY])
        io_utils.write_string_file(os.path.join(results, TRIALS_FILE),
                                   json.dumps(describe_trials(tuner, seconds), indent=1))
