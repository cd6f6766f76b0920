"""CurateSchema and DataGate: TFX components around TFDV for image data arriving in spans.

ImageExampleGen -> StatisticsGen -> SchemaGen -> CurateSchema -> ExampleValidator -> DataGate
Transform, Trainer and ExampleValidator use the curated schema. DataGate compares the span with
the previous one from what the image ExampleGen recorded on its Examples artifact (class counts
of both spans), so a re-run of the same span is cached and judged the same. Its verdict is an
input of the pusher: a model trained on data with problems is never pushed.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data_audit.component import AuditFindings
from components.data_validation import executor


class DataVerdict(types.Artifact):
    """DataGate's verdict: custom properties 'passed' (1/0), 'problems' (a JSON list)."""

    # Kubeflow V2 needs `<namespace>.<Type>` (its schema-title pattern) and, in the container,
    # imports the class from that path: `components` re-exports this class for it.
    TYPE_NAME = "components.DataVerdict"


class CurateSchemaSpec(types.ComponentSpec):
    """Inferred schema and the Examples (for their class names) in, curated schema out."""

    PARAMETERS = {}
    INPUTS = {
        executor.INFERRED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class CurateSchema(base_component.BaseComponent):
    """SchemaGen's schema with the image features described as they are (see `curate_schema`)."""

    SPEC_CLASS = CurateSchemaSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.CurateSchemaExecutor)

    def __init__(self, inferred_schema: types.BaseChannel, examples: types.BaseChannel) -> None:
        """Curates `inferred_schema` (SchemaGen's) with the class names `examples` recorded."""
        super().__init__(spec=CurateSchemaSpec(
            inferred_schema=inferred_schema, examples=examples,
            schema=types.Channel(type=standard_artifacts.Schema)))


class DataGateSpec(types.ComponentSpec):
    """The image ExampleGen's Examples and ExampleValidator's anomalies in, a verdict out."""

    PARAMETERS = {executor.MAX_CLASS_DRIFT_KEY: ExecutionParameter(type=float, optional=True),
                  executor.MAX_LEAKAGE_KEY: ExecutionParameter(type=float, optional=True)}
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        executor.AUDIT_KEY: ChannelParameter(type=AuditFindings, optional=True),
    }
    OUTPUTS = {executor.VERDICT_KEY: ChannelParameter(type=DataVerdict)}


class DataGate(base_component.BaseComponent):
    """Fails the data on ExampleValidator anomalies, classes gained or lost, class drift, or an
    eval set leaked into train (with DataAudit's findings)."""

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.DataGateExecutor)

    def __init__(self, examples: types.BaseChannel, anomalies: types.BaseChannel,
                 max_class_drift: float = executor.DEFAULT_MAX_CLASS_DRIFT,
                 audit: types.BaseChannel | None = None,
                 max_leakage: float = executor.DEFAULT_MAX_LEAKAGE) -> None:
        """`max_class_drift`: the largest L-infinity distance between the class shares of this
        span and the previous one (0.25: no class's share may move by more than 25 points).
        `max_leakage`: the largest share of eval images with a copy in train, read from
        `audit` (DataAudit's findings; without them leakage is not checked)."""
        if not 0.0 < max_class_drift <= 1.0:
            raise ValueError(f"max_class_drift must be in (0, 1], got {max_class_drift}")
        if not 0.0 <= max_leakage <= 1.0:
            raise ValueError(f"max_leakage must be in [0, 1], got {max_leakage}")
        super().__init__(spec=DataGateSpec(
            examples=examples, anomalies=anomalies, max_class_drift=max_class_drift,
            audit=audit, max_leakage=max_leakage, verdict=types.Channel(type=DataVerdict)))
