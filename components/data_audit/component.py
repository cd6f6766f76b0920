"""DataAudit: duplicates, train-eval leaks and likely mislabeled images, after the ExampleGen.

It embeds every image once with the frozen base the Trainer will use (`trainer/embed.py`, loaded
by name) and records its findings as an `AuditFindings` artifact: `audit.json` in its folder
(the shape of issue 21: duplicates, leaks, suspected_mislabels, file names relative to the data
folder) and the counts as custom properties. DataGate reads the leak count against
`max_leakage`, so a leaked eval set stops the push; or DropLeakedEval gives the Evaluator the
eval split without the leaked images.
"""

from __future__ import annotations

import json
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data_audit import executor
from trainer.contract import DEFAULT_MAX_PIXELS, EMBED_FN


class AuditFindings(types.Artifact):
    """DataAudit's findings: `audit.json` in its folder, counts as custom properties."""

    # Kubeflow V2 needs `<namespace>.<Type>` and imports the class from that path in the
    # container: `components` re-exports it, as it does DataVerdict.
    TYPE_NAME = "components.AuditFindings"


class EvalFeatures(types.Artifact):
    """The frozen base's features of the eval split, as the Trainer's head reads them, with
    labels and pixel digests (`trainer/eval_features.py`): the Trainer validates on them."""

    TYPE_NAME = "components.EvalFeatures"  # imported in Kubeflow's containers, as AuditFindings


class DataAuditSpec(types.ComponentSpec):
    """The ExampleGen's Examples in, the findings and the eval split's features out."""

    PARAMETERS = {
        executor.BASE_KEY: ExecutionParameter(type=str),
        executor.EMBED_FN_KEY: ExecutionParameter(type=str, optional=True),
        executor.MAX_PIXELS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {executor.FINDINGS_KEY: ChannelParameter(type=AuditFindings),
               executor.EVAL_FEATURES_KEY: ChannelParameter(type=EvalFeatures)}


class DataAudit(base_component.BaseComponent):
    """Finds copies, leaks and suspected mislabels with the frozen base's features."""

    SPEC_CLASS = DataAuditSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, hparams_config: dict[str, Any],
                 max_pixels: int = DEFAULT_MAX_PIXELS, embed_fn: str = EMBED_FN) -> None:
        """`hparams_config` is the Trainer's (`HParams.to_config()`); only what decides the
        features is kept, so a change of training settings leaves the audit cached."""
        super().__init__(spec=DataAuditSpec(
            examples=examples,
            base=json.dumps(executor.base_config(hparams_config), sort_keys=True),
            embed_fn=embed_fn, max_pixels=max_pixels,
            findings=types.Channel(type=AuditFindings),
            eval_features=types.Channel(type=EvalFeatures)))


class DropLeakedEvalSpec(types.ComponentSpec):
    """The ExampleGen's Examples and DataAudit's findings in, the eval split without leaks out."""

    PARAMETERS = {}
    INPUTS = {executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
              executor.FINDINGS_KEY: ChannelParameter(type=AuditFindings)}
    OUTPUTS = {executor.EVAL_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class DropLeakedEval(base_component.BaseComponent):
    """The eval split without the images copied from train, for the Evaluator to judge on."""

    SPEC_CLASS = DropLeakedEvalSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.DropLeakedEvalExecutor)

    def __init__(self, examples: types.BaseChannel, findings: types.BaseChannel) -> None:
        """`examples`: the ExampleGen's; `findings`: DataAudit's, on those examples."""
        super().__init__(spec=DropLeakedEvalSpec(
            examples=examples, findings=findings,
            eval_examples=types.Channel(type=standard_artifacts.Examples)))
