"""The opening every executor of ours shares, written once.

A stop asked for by a signal wins before any work (`components.stop`), and the start-up is
logged as TFX's own executors log it; then the component's `run` does its work.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor

from components import stop

Artifacts = dict[str, list[types.Artifact]]


class Executor(base_executor.BaseExecutor):
    """TFX's BaseExecutor whose `Do` honours a requested stop, logs the start-up, then `run`s."""

    def Do(self, input_dict: Artifacts, output_dict: Artifacts,  # noqa: N802 (TFX's name)
           exec_properties: dict[str, Any]) -> None:
        """TFX's entry point: the shared opening, then `run`."""
        stop.raise_if_requested()
        self._log_startup(input_dict, output_dict, exec_properties)
        self.run(input_dict, output_dict, exec_properties)

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """The component's work; each executor defines it."""
        raise NotImplementedError
