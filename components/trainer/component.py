"""TFX's Trainer, its spec plus one optional input: DataAudit's `EvalFeatures`.

The audit has already run the frozen base over the eval images; the Trainer's run_fn validates
the head on those features while the base is frozen (`trainer/eval_features.py`) instead of
running the base over the eval images every epoch. Everything else is TFX's Trainer: the same
inputs, outputs, parameters and GenericExecutor, so `run_fn` gets the same `FnArgs`, plus the
features' folder in `custom_config[EVAL_FEATURES_KEY]`. TFX's Trainer builds its own spec class
in `__init__`, so this builds the extended one itself.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as tfx_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.standard_artifacts import Model, ModelRun
from tfx.utils import json_utils

from components.data_audit.component import EvalFeatures
from trainer.contract import EVAL_FEATURES_KEY

FEATURES_INPUT = "eval_features"


class TrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's TrainerSpec and the optional eval features."""

    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              FEATURES_INPUT: ChannelParameter(type=EvalFeatures, optional=True)}


class Executor(tfx_executor.GenericExecutor):
    """TFX's GenericExecutor; the eval features' folder, when given, goes to `custom_config`."""

    def _GetFnArgs(self, input_dict: dict[str, list[types.Artifact]],  # noqa: N802 (TFX's name)
                   output_dict: dict[str, list[types.Artifact]],
                   exec_properties: dict[str, Any]):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        if input_dict.get(FEATURES_INPUT):
            fn_args.custom_config = {**(fn_args.custom_config or {}), EVAL_FEATURES_KEY:
                                     artifact_utils.get_single_uri(input_dict[FEATURES_INPUT])}
        return fn_args


class Trainer(base_component.BaseComponent):
    """Trains with `run_fn` on Transform's output, as TFX's Trainer; optionally given the eval
    features DataAudit computed."""

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 schema: types.BaseChannel, run_fn: str, train_args: trainer_pb2.TrainArgs,
                 eval_args: trainer_pb2.EvalArgs, custom_config: dict[str, Any],
                 base_model: types.BaseChannel | None = None,
                 hyperparameters: types.BaseChannel | None = None,
                 eval_features: types.BaseChannel | None = None) -> None:
        """The arguments of TFX's Trainer that the pipeline uses, and `eval_features`."""
        super().__init__(spec=TrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema,
            base_model=base_model, hyperparameters=hyperparameters,
            eval_features=eval_features, train_args=train_args, eval_args=eval_args,
            run_fn=run_fn, custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=Model), model_run=types.Channel(type=ModelRun)))
