"""Tuner: TFX's Tuner component, run by an executor that also writes each trial's time.

Its inputs, outputs and `tuner_fn` are TFX's (`tfx.components.Tuner`): the Trainer takes its
`best_hyperparameters`; `tuner_results` also holds `trials.json` (`executor`).
"""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.tuner import executor


class Tuner(tfx.components.Tuner):
    """`tfx.components.Tuner` with `executor.Executor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
