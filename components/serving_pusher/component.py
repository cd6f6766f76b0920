"""A Pusher for TF Serving's layout: numbered versions, published atomically, with warmup requests.

It replaces TFX's Pusher with the same inputs and output (`pushed_model`, with the same custom
properties), and adds what TF Serving wants of a model base path: versions `1, 2, 3, ...` that
never go back, a version appearing only once complete, old versions retired, and
`assets.extra/tf_serving_warmup_requests` built from real eval images.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_executions import Deploy

from components.data_validation.component import DataVerdict
from components.serving_pusher import executor, warmup
from components.tflite_export.component import TFLiteModels


class ServingPusherSpec(types.ComponentSpec):
    """Inputs, parameters and output of the serving Pusher."""

    PARAMETERS = {
        executor.SERVING_MODEL_DIR_KEY: ExecutionParameter(type=str),
        executor.MODEL_NAME_KEY: ExecutionParameter(type=str),
        executor.KEEP_VERSIONS_KEY: ExecutionParameter(type=int, optional=True),
        executor.WARMUP_REQUESTS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        # Only read for warmup requests, so it may be left out when they are off.
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
        # ModelLoadCheck's (or InfraValidator's) verdict; when given, it must be blessed too.
        executor.INFRA_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.InfraBlessing, optional=True),
        # DataGate's verdict on the data the model was trained on; when given, it must pass.
        executor.DATA_VERDICT_KEY: ChannelParameter(type=DataVerdict, optional=True),
        # TFLiteExport's models; the formats it accepted go inside the version, beside the model.
        executor.TFLITE_MODELS_KEY: ChannelParameter(type=TFLiteModels, optional=True),
    }
    OUTPUTS = {
        executor.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
    }
    TYPE_ANNOTATION = Deploy  # as TFX's PusherSpec, so ML Metadata classifies it the same way


class ServingPusher(base_component.BaseComponent):
    """Pushes a blessed model to `serving_model_dir/<version>` for TF Serving.

    Give it `.with_id("Pusher")` to take TFX Pusher's place in ML Metadata.
    """

    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 serving_model_dir: str, model_name: str,
                 examples: types.BaseChannel | None = None,
                 infra_blessing: types.BaseChannel | None = None,
                 data_verdict: types.BaseChannel | None = None,
                 tflite_models: types.BaseChannel | None = None,
                 keep_versions: int = executor.DEFAULT_KEEP_VERSIONS,
                 warmup_requests: int = executor.DEFAULT_WARMUP_REQUESTS) -> None:
        """Checks the parameters now, so a mistake fails at pipeline construction.

        `serving_model_dir` is TF Serving's model base path; `model_name` goes into the warmup
        requests' model_spec; `keep_versions` (>= 1) versions stay, the newest; up to
        `warmup_requests` eval images of `examples` become warmup requests (0: none); with
        `infra_blessing` (an InfraBlessing) the model is pushed only if that is blessed too, and
        with `data_verdict` (DataGate's) only if its data passed; with `tflite_models`
        (TFLiteExport's) its accepted TFLite files are pushed inside the version.
        """
        if not serving_model_dir:
            raise ValueError("serving_model_dir must not be empty")
        if not model_name:
            raise ValueError("model_name must not be empty")
        if keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {keep_versions}")
        warmup.check_count(warmup_requests)
        if warmup_requests and examples is None:
            raise ValueError("warmup requests are built from `examples`; pass ExampleGen's "
                             "examples or set warmup_requests=0")
        spec = ServingPusherSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            infra_blessing=infra_blessing,
            data_verdict=data_verdict,
            tflite_models=tflite_models,
            serving_model_dir=serving_model_dir,
            model_name=model_name,
            keep_versions=keep_versions,
            warmup_requests=warmup_requests,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)
