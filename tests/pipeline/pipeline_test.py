"""`create_pipeline` is pure: the components, how they are wired, and the Docker option."""

import pytest
from tfx.components import InfraValidator
from tfx.proto import infra_validator_pb2
from tfx.utils import proto_utils

from pipeline.config import AuditConfig, PipelineConfig, PushConfig, TFLiteConfig
from pipeline.errors import UserError
from pipeline.pipeline import create_pipeline
from trainer.hparams import HParams


def _config(audit: AuditConfig | None = None, tflite: TFLiteConfig | None = None,
            **push) -> PipelineConfig:
    return PipelineConfig(
        pipeline_name="shapes", pipeline_root="/tmp/root", data_root="/tmp/data",
        serving_model_dir="/tmp/serving/shapes",
        hparams=HParams(class_names=("a", "b"), weights="none"), push=PushConfig(**push),
        audit=audit or AuditConfig(), tflite=tflite or TFLiteConfig())


def _by_id(pipeline) -> dict:
    return {component.id: component for component in pipeline.components}


def test_components_and_the_curated_schema_everywhere():
    components = _by_id(create_pipeline(_config()))
    assert sorted(components) == sorted([
        "ImageExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator",
        "DataAudit", "DataGate", "Transform", "latest_blessed_model_resolver", "Trainer",
        "Evaluator", "ModelLoadCheck", "Pusher"])
    curated = components["CurateSchema"].outputs["schema"]
    for name in ("ExampleValidator", "Transform", "Trainer"):
        assert components[name].inputs["schema"] is curated, name
    pusher = components["Pusher"].inputs
    assert pusher["data_verdict"] is components["DataGate"].outputs["verdict"]
    assert pusher["infra_blessing"] is components["ModelLoadCheck"].outputs["blessing"]
    assert pusher["model_blessing"] is components["Evaluator"].outputs["blessing"]


def test_the_audit_feeds_the_data_gate_and_no_audit_leaves_it_out():
    components = _by_id(create_pipeline(_config(audit=AuditConfig(max_leakage=0.1))))
    audit, gate = components["DataAudit"], components["DataGate"]
    assert audit.inputs["examples"] is components["ImageExampleGen"].outputs["examples"]
    assert gate.inputs["audit"] is audit.outputs["findings"]
    assert gate.exec_properties["max_leakage"] == 0.1
    assert components["Evaluator"].inputs["examples"] is (
        components["ImageExampleGen"].outputs["examples"])
    without = _by_id(create_pipeline(_config(audit=AuditConfig(enabled=False))))
    assert "DataAudit" not in without and "audit" not in without["DataGate"].inputs


def test_drop_leaked_eval_evaluates_without_the_leaks_instead_of_gating_on_them():
    components = _by_id(create_pipeline(_config(audit=AuditConfig(drop_leaked_eval=True))))
    drop = components["DropLeakedEval"]
    assert drop.inputs["findings"] is components["DataAudit"].outputs["findings"]
    assert components["Evaluator"].inputs["examples"] is drop.outputs["eval_examples"]
    assert "audit" not in components["DataGate"].inputs
    # The load check and the pusher's warmup still read the ExampleGen's eval images.
    assert components["Pusher"].inputs["examples"] is (
        components["ImageExampleGen"].outputs["examples"])


def test_tflite_export_feeds_the_pusher_only_when_formats_are_asked_for():
    components = _by_id(create_pipeline(_config(tflite=TFLiteConfig(("int8",), 2.0))))
    export = components["TFLiteExport"]
    assert export.inputs["model"] is components["Trainer"].outputs["model"]
    assert export.inputs["model_blessing"] is components["Evaluator"].outputs["blessing"]
    assert export.inputs["examples"] is components["ImageExampleGen"].outputs["examples"]
    assert export.inputs["eval_examples"] is components["Evaluator"].inputs["examples"]
    assert export.inputs["transform_graph"] is components["Transform"].outputs["transform_graph"]
    assert export.exec_properties["formats"] == "int8"
    assert export.exec_properties["tolerance_points"] == 2.0
    assert components["Pusher"].inputs["tflite_models"] is export.outputs["tflite_models"]
    without = _by_id(create_pipeline(_config()))
    assert "TFLiteExport" not in without and "tflite_models" not in without["Pusher"].inputs
    # With --drop-leaked-eval it measures on the Evaluator's eval split, without the leaks.
    dropping = _by_id(create_pipeline(_config(audit=AuditConfig(drop_leaked_eval=True),
                                              tflite=TFLiteConfig(("int8",)))))
    assert dropping["TFLiteExport"].inputs["eval_examples"] is (
        dropping["DropLeakedEval"].outputs["eval_examples"])


def test_docker_option_uses_tfx_infra_validator_with_tf_serving():
    components = _by_id(create_pipeline(_config(infra_validation="docker",
                                                serving_image_tag="2.16.1")))
    assert "ModelLoadCheck" not in components
    validator = components["InfraValidator"]
    assert isinstance(validator, InfraValidator)
    assert components["Pusher"].inputs["infra_blessing"] is validator.outputs["blessing"]
    serving = proto_utils.json_to_proto(validator.exec_properties["serving_spec"],
                                        infra_validator_pb2.ServingSpec())
    assert list(serving.tensorflow_serving.tags) == ["2.16.1"]
    assert serving.HasField("local_docker")
    request = proto_utils.json_to_proto(validator.exec_properties["request_spec"],
                                        infra_validator_pb2.RequestSpec())
    assert list(request.tensorflow_serving.signature_names) == ["from_examples"]
    assert request.split_name == "eval"


def test_the_audit_flags_reach_the_config():
    import click

    from pipeline.cli.options import Destination, build_pipeline_config, pipeline_options

    flags = click.command()(pipeline_options(lambda **_: None))
    defaults = {p.name: p.get_default(click.Context(flags)) for p in flags.params}
    destination = Destination("shapes", "/tmp/root", "/tmp/data", "/tmp/serving")
    hparams = HParams(class_names=("a", "b"), weights="none")

    def build(**options):
        return build_pipeline_config(destination, hparams, {**defaults, **options},
                                     spans=False, given_splits=False).audit

    assert build() == AuditConfig(enabled=True, max_leakage=0.05)
    assert build(no_audit=True, max_leakage=0.2) == AuditConfig(enabled=False, max_leakage=0.2)
    assert build(drop_leaked_eval=True).drop_leaked_eval
    with pytest.raises(UserError, match="--drop-leaked-eval needs the data audit"):
        build(no_audit=True, drop_leaked_eval=True)


def test_gate_alpha_reaches_the_evaluators_paired_thresholds():
    import json

    import click

    from pipeline.cli.options import Destination, build_pipeline_config, pipeline_options

    flags = click.command()(pipeline_options(lambda **_: None))
    defaults = {p.name: p.get_default(click.Context(flags)) for p in flags.params}
    assert defaults["gate_alpha"] == 0.05
    config = build_pipeline_config(
        Destination("shapes", "/tmp/root", "/tmp/data", "/tmp/serving"),
        HParams(class_names=("a", "b", "c", "d"), weights="none"),
        {**defaults, "gate_alpha": 0.2}, spans=False, given_splits=False)
    assert config.gate.alpha == 0.2
    evaluator = _by_id(create_pipeline(config))["Evaluator"]
    eval_config = json.loads(evaluator.exec_properties["eval_config"])
    (paired,) = [m for m in eval_config["metrics_specs"][0]["metrics"] if "module" in m]
    levels = sorted(t["threshold"]["change_threshold"]["absolute"]
                    for t in paired["per_slice_thresholds"])
    assert levels == pytest.approx([0.05, 0.2])  # each of 4 classes at 0.2 / 4, overall 0.2
