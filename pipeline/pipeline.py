"""The pipeline definition: pure, typed, no I/O. Runners decide paths and orchestrators."""

from __future__ import annotations

import json
from typing import NamedTuple

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.data_audit.component import DataAudit, DropLeakedEval
from components.data_validation.component import CurateSchema, DataGate
from components.image_example_gen.component import image_example_gen
from components.load_check.component import ModelLoadCheck
from components.model_gate.paired import METRIC_NAME as PAIRED_METRIC
from components.model_gate.paired import PairedWorse
from components.serving_pusher.component import ServingPusher
from components.tflite_export.component import TFLiteExport
from components.trainer.component import Trainer
from components.tuner.component import Tuner
from pipeline.config import GateConfig, PipelineConfig
from trainer.contract import (
    EXAMPLES_SIGNATURE,
    HPARAMS_KEY,
    IMAGE_SIZE_KEY,
    LABEL,
    LABEL_NAME,
    MAX_PIXELS_KEY,
    MAX_ROWS_KEY,
    PREPROCESSING_FN,
    RUN_FN,
    TUNE_KEY,
    TUNER_FN,
)

CLASS_SLICES = tfma.SlicingSpec(feature_keys=[LABEL_NAME])  # one slice per class's eval images


def make_eval_config(gate: GateConfig, num_classes: int) -> tfma.EvalConfig:
    """Metrics overall and per class; the gate: accuracy, and a paired test against the baseline.

    Accuracy must reach `gate.accuracy_threshold` (on the overall slice). Against the baseline
    (the latest blessed model), `PairedWorse` gives McNemar's exact one-sided p-value that the
    candidate is worse on the same images; a change threshold refuses it below `gate.alpha`
    overall and below `gate.alpha / num_classes` on any class's slice. TFX drops change
    thresholds when there is no baseline yet, so the first run is judged on accuracy alone.
    """
    accuracy_gate = tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": gate.accuracy_threshold})))

    def not_worse(level: float) -> tfma.MetricThreshold:
        return tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": level}))

    paired = tfma.MetricConfig(
        class_name=PairedWorse.__name__, module=PairedWorse.__module__,
        config=json.dumps({"name": PAIRED_METRIC}),
        per_slice_thresholds=[
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                         threshold=not_worse(gate.alpha)),
            tfma.PerSliceMetricThreshold(slicing_specs=[CLASS_SLICES],
                                         threshold=not_worse(gate.alpha / num_classes))])
    if num_classes == 2:
        metrics = [
            tfma.MetricConfig(class_name="BinaryAccuracy", config='{"name": "accuracy"}',
                              per_slice_thresholds=[accuracy_gate]),
            tfma.MetricConfig(class_name="AUC", config='{"name": "auc"}'),
            tfma.MetricConfig(class_name="Precision", config='{"name": "precision"}'),
            tfma.MetricConfig(class_name="Recall", config='{"name": "recall"}'),
            tfma.MetricConfig(class_name="ConfusionMatrixPlot"),
            paired,
        ]
    else:
        metrics = [
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              config='{"name": "accuracy"}',
                              per_slice_thresholds=[accuracy_gate]),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            paired,
        ]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EXAMPLES_SIGNATURE, label_key=LABEL,
                                    preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec(), CLASS_SLICES],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"), *metrics])],
    )


def infra_validation(config: PipelineConfig, model: tfx.types.BaseChannel,
                     examples: tfx.types.BaseChannel) -> tfx.types.BaseComponent:
    """The check that the model loads and serves before it is pushed.

    "local": ModelLoadCheck, InfraValidator's check without Docker (a fresh Python process calls
    `serving_default` on eval images). "docker": TFX's InfraValidator with the
    `tensorflow/serving` image; it sends eval examples to `from_examples`, the signature that
    takes serialized tf.Examples, which is what InfraValidator's request builder sends.
    """
    if config.push.infra_validation == "local":
        return ModelLoadCheck(model=model, examples=examples).with_id("ModelLoadCheck")
    return tfx.components.InfraValidator(
        model=model,
        examples=examples,
        serving_spec=tfx.proto.ServingSpec(
            tensorflow_serving=tfx.proto.TensorFlowServing(
                tags=[config.push.serving_image_tag]),
            local_docker=tfx.proto.LocalDockerConfig(),
            model_name=config.pipeline_name),
        validation_spec=tfx.proto.ValidationSpec(max_loading_time_seconds=300, num_tries=2),
        request_spec=tfx.proto.RequestSpec(
            tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                signature_names=[EXAMPLES_SIGNATURE]),
            split_name="eval", num_examples=8),
    ).with_id("InfraValidator")


class DataComponents(NamedTuple):
    """The pipeline's data steps, from the images to Transform's output, wired together."""

    example_gen: tfx.types.BaseComponent
    statistics_gen: tfx.types.BaseComponent
    schema_gen: tfx.types.BaseComponent
    curated_schema: tfx.types.BaseComponent
    transform: tfx.types.BaseComponent


def data_components(config: PipelineConfig) -> DataComponents:
    """ImageExampleGen -> StatisticsGen -> SchemaGen -> CurateSchema -> Transform.

    Apart from `create_pipeline` so that a pipeline of these alone can be built (TFX refuses a
    pipeline whose components feed one left out): the Beam steps on external workers are tested
    so (`tests/e2e/beam_workers_test.py`).
    """
    example_gen = image_example_gen(config.data_root, config.layout, config.ingest)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    curated_schema = CurateSchema(
        inferred_schema=schema_gen.outputs["schema"], examples=example_gen.outputs["examples"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=curated_schema.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={IMAGE_SIZE_KEY: config.hparams.image_size,
                       MAX_PIXELS_KEY: config.serving_max_pixels},
    )
    return DataComponents(example_gen, statistics_gen, schema_gen, curated_schema, transform)


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
) -> tfx.dsl.Pipeline:
    """ExampleGen -> statistics, schema, validation (and the audit, unless off) -> Transform ->
    Trainer -> gates (and TFLiteExport, when formats are asked for) -> Pusher."""
    hp = config.hparams
    data = data_components(config)
    example_gen, statistics_gen, schema_gen, curated_schema, transform = data
    schema = curated_schema.outputs["schema"]
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema)
    audit = drop_leaked = None
    eval_examples = example_gen.outputs["examples"]
    if config.audit.enabled:
        audit = DataAudit(examples=example_gen.outputs["examples"],
                          hparams_config=hp.to_config(), max_pixels=config.ingest.max_pixels)
    if audit and config.audit.drop_leaked_eval:  # evaluate without the leaks, not stop on them
        drop_leaked = DropLeakedEval(examples=example_gen.outputs["examples"],
                                     findings=audit.outputs["findings"])
        eval_examples = drop_leaked.outputs["eval_examples"]
    data_gate = DataGate(
        examples=example_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        max_class_drift=config.data.max_class_drift,
        audit=audit.outputs["findings"] if audit and not drop_leaked else None,
        max_leakage=config.audit.max_leakage)
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    tuner = None
    if config.tune.trials:  # the head's search on cached features; the Trainer takes the best
        tuner = Tuner(examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"], schema=schema,
                      tuner_fn=TUNER_FN, train_args=tfx.proto.TrainArgs(splits=["train"]),
                      eval_args=tfx.proto.EvalArgs(splits=["eval"]),
                      custom_config={HPARAMS_KEY: hp.to_config(),
                                     TUNE_KEY: config.tune.to_config()})
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        base_model=model_resolver.outputs["model"],  # warm start from the last blessed model
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={HPARAMS_KEY: hp.to_config(), MAX_ROWS_KEY: config.serving.max_rows},
        eval_features=audit.outputs["eval_features"] if audit else None,  # validates on them
    )
    evaluator = tfx.components.Evaluator(
        examples=eval_examples,
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=make_eval_config(config.gate, hp.num_classes),
    )
    load_check = infra_validation(config, trainer.outputs["model"], example_gen.outputs["examples"])
    tflite = None
    if config.tflite.formats:  # measured on the Evaluator's eval images, as it measures
        tflite = TFLiteExport(model=trainer.outputs["model"],
                              model_blessing=evaluator.outputs["blessing"],
                              examples=example_gen.outputs["examples"],
                              eval_examples=eval_examples,
                              transform_graph=transform.outputs["transform_graph"],
                              formats=config.tflite.formats,
                              tolerance_points=config.tflite.tolerance_points)
    pusher = ServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=load_check.outputs["blessing"],  # pushed only if both are blessed
        data_verdict=data_gate.outputs["verdict"],  # and only if the data passed its checks
        tflite_models=tflite.outputs["tflite_models"] if tflite else None,
        examples=example_gen.outputs["examples"],  # eval images become warmup requests
        serving_model_dir=config.serving_model_dir,
        model_name=config.pipeline_name,  # `imgpipe run` uses --model-name for both
        keep_versions=config.push.keep_versions,
        warmup_requests=config.push.warmup_requests,
    ).with_id("Pusher")  # TFX Pusher's id: ML Metadata queries keep working
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, curated_schema, example_validator,
                    *(c for c in (audit, drop_leaked) if c), data_gate, transform,
                    model_resolver, *([tuner] if tuner else []), trainer, evaluator, load_check,
                    *([tflite] if tflite else []), pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
