"""TFLiteExport: the blessed model converted to TFLite, each format checked like the SavedModel.

It converts the Trainer's SavedModel (`convert`: float16 weights, or full-integer int8 calibrated
on training images), runs each TFLite model with the TFLite interpreter on the Evaluator's eval
images (decoded by Transform's graph, as the SavedModel decodes them), and accepts a format
only when its accuracy is within `tolerance_points` of the SavedModel's on the same images
(`evaluate`). The output `TFLiteModels` holds the files (`model_<format>.tflite`, its JSON,
`labels.txt`), `tflite.json` (the comparison) and the accepted formats as custom properties;
ServingPusher pushes those inside the version it publishes. A model the Evaluator did not bless
is not converted. A refused or failed format never fails the run.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.tflite_export import executor


class TFLiteModels(types.Artifact):
    """TFLiteExport's output: the TFLite files, the comparison, the accepted formats."""

    # Kubeflow V2 imports the class from `<namespace>.<Type>`: `components` re-exports it.
    TYPE_NAME = "components.TFLiteModels"


class TFLiteExportSpec(types.ComponentSpec):
    """The model, its blessing and Transform's examples in; the TFLite models out."""

    PARAMETERS = {
        executor.FORMATS_KEY: ExecutionParameter(type=str),
        executor.TOLERANCE_KEY: ExecutionParameter(type=float, optional=True),
        executor.REPRESENTATIVE_IMAGES_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.EVAL_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples,
                                                     optional=True),
        executor.TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {executor.TFLITE_MODELS_KEY: ChannelParameter(type=TFLiteModels)}


class TFLiteExport(base_component.BaseComponent):
    """Converts a blessed model to TFLite; keeps each format within the accuracy tolerance."""

    SPEC_CLASS = TFLiteExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 formats: tuple[str, ...], eval_examples: types.BaseChannel | None = None,
                 tolerance_points: float = executor.DEFAULT_TOLERANCE_POINTS,
                 representative_images: int = executor.DEFAULT_REPRESENTATIVE_IMAGES) -> None:
        """Checks the parameters now, so a mistake fails at pipeline construction.

        `representative_images` training images of `examples` (ExampleGen's) calibrate int8;
        every model is measured on the eval split of `eval_examples` (the Evaluator's; default
        `examples`), each image decoded by `transform_graph` as the SavedModel decodes it.
        """
        joined = ",".join(formats)
        executor.check_parameters(joined, tolerance_points, representative_images)
        super().__init__(spec=TFLiteExportSpec(
            model=model, model_blessing=model_blessing, examples=examples,
            eval_examples=eval_examples, transform_graph=transform_graph, formats=joined,
            tolerance_points=float(tolerance_points),
            representative_images=representative_images,
            tflite_models=types.Channel(type=TFLiteModels)))
