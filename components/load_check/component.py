"""ModelLoadCheck: TFX InfraValidator's check without Docker.

It loads the trained SavedModel in a fresh Python process, calls its `serving_default` signature
on real eval images, and blesses the model only if that process exits 0 within the timeout with
well-formed outputs. The output is an `InfraBlessing` recorded exactly as InfraValidator records
one (custom property 'blessed' 1/0, an INFRA_BLESSED or INFRA_NOT_BLESSED file), so TFX's Pusher
and our ServingPusher can take it as `infra_blessing`; its custom property 'reason' says why a
model failed, and `probe_log.txt` in its uri holds the probe's output.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.load_check import executor


class ModelLoadCheckSpec(types.ComponentSpec):
    """Inputs, parameters and output of the load check."""

    PARAMETERS = {
        executor.NUM_IMAGES_KEY: ExecutionParameter(type=int, optional=True),
        executor.TIMEOUT_SECONDS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        # ExampleGen's examples: the eval split's `image_bytes` are the requests.
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        executor.BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing),
    }


class ModelLoadCheck(base_component.BaseComponent):
    """Blesses a model that loads and serves real images in a fresh Python process."""

    SPEC_CLASS = ModelLoadCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 num_images: int = executor.DEFAULT_NUM_IMAGES,
                 timeout_seconds: int = executor.DEFAULT_TIMEOUT_SECONDS) -> None:
        """Checks the parameters now, so a mistake fails at pipeline construction.

        Up to `num_images` (>= 1) eval images of `examples` are sent in one call to the
        `serving_default` signature of `model`; the probe process is killed after
        `timeout_seconds` (>= 1), which fails the model.
        """
        executor.check_parameters(num_images, timeout_seconds)
        spec = ModelLoadCheckSpec(
            model=model,
            examples=examples,
            num_images=num_images,
            timeout_seconds=timeout_seconds,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
        )
        super().__init__(spec=spec)
