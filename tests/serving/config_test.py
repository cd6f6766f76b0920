"""`imgpipe serving-config`: TF Serving's models.config and batching file, parsed back as protos."""

import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline.cli import cli
from pipeline.errors import UserError
from serving.server.config import (
    BatchingOptions,
    batching_parameters,
    batching_parameters_type,
    read_model_config_file,
)


def _serving_config(tmp_path, *args):
    return CliRunner().invoke(cli, ["serving-config", "--model-name", "pets",
                                    "--model-base-path", "/models/pets",
                                    "--output", str(tmp_path / "config"), *args])


def test_models_config_parses_as_tf_servings_model_server_config(tmp_path):
    result = _serving_config(tmp_path, "--versions", "3,4", "--label", "stable=3",
                             "--label", "canary=4")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "config" / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("pets", "/models/pets",
                                                                   "tensorflow")
    assert list(model.model_version_policy.specific.versions) == [3, 4]
    assert dict(model.version_labels) == {"stable": 3, "canary": 4}


def test_latest_n_is_the_default_policy(tmp_path):
    assert _serving_config(tmp_path, "--latest", "2").exit_code == 0
    config = text_format.Parse((tmp_path / "config" / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    policy = config.model_config_list.config[0].model_version_policy
    assert policy.WhichOneof("policy_choice") == "latest"
    assert policy.latest.num_versions == 2


def test_batching_file_is_tf_servings_batching_parameters(tmp_path):
    result = _serving_config(tmp_path, "--max-batch-size", "16", "--batch-timeout-micros", "500",
                             "--num-batch-threads", "2", "--allowed-batch-sizes", "4,8,16")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "config" / "batching_parameters.txt").read_text()
    assert "max_batch_size {\n  value: 16\n}" in text  # the form TF Serving's guide shows
    parameters = text_format.Parse(text, batching_parameters_type()())
    assert parameters.max_batch_size.value == 16
    assert parameters.batch_timeout_micros.value == 500
    assert parameters.num_batch_threads.value == 2
    assert parameters.max_enqueued_batches.value == 100
    assert list(parameters.allowed_batch_sizes) == [4, 8, 16]


def test_batching_parameters_have_tf_servings_field_numbers():
    descriptor = batching_parameters_type().DESCRIPTOR
    fields = {f.name: f.number for f in descriptor.fields}
    assert fields == {"max_batch_size": 1, "batch_timeout_micros": 2, "max_enqueued_batches": 3,
                      "num_batch_threads": 4, "thread_pool_name": 5, "allowed_batch_sizes": 6,
                      "pad_variable_length_inputs": 7, "enable_large_batch_splitting": 8,
                      "max_execution_batch_size": 9}
    assert descriptor.full_name == "tensorflow.serving.BatchingParameters"
    # Field 1, an Int64Value holding 32: the bytes TF Serving's C++ parser reads.
    message = batching_parameters(BatchingOptions(max_batch_size=32))
    assert message.SerializeToString().startswith(b"\x0a\x02\x08\x20")


@pytest.mark.parametrize("args,message", [
    (["--versions", "3", "--label", "canary=4"], "label canary points to version 4"),
    (["--label", "canary"], "must be NAME=VERSION"),
    (["--latest", "2", "--all-versions"], "alternatives"),
    (["--allowed-batch-sizes", "8,4"], "must increase and end with the max batch size"),
    (["--allowed-batch-sizes", "8,16"], "must increase and end with the max batch size 32"),
])
def test_bad_options_are_one_line_user_errors(tmp_path, args, message):
    result = _serving_config(tmp_path, *args)
    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)
    assert not (tmp_path / "config").exists()


def test_model_config_files_with_problems_are_named(tmp_path):
    broken = tmp_path / "broken.config"
    broken.write_text("model_config_list { config { name: 'a' base_path: '/m' ")
    with pytest.raises(ValueError, match="broken.config"):
        read_model_config_file(broken)
    custom = tmp_path / "custom.config"
    custom.write_text("custom_model_config { }")
    with pytest.raises(ValueError, match="only model_config_list"):
        read_model_config_file(custom)
    newline = tmp_path / "newline.config"
    newline.write_text("model_config_list { config { name: 'clf\\n' base_path: '/m' } }")
    with pytest.raises(ValueError, match="model name 'clf\\\\n' must be letters"):
        read_model_config_file(newline)
    platform = tmp_path / "platform.config"
    platform.write_text("model_config_list { config { name: 'a' base_path: '/m' "
                        "model_platform: 'pytorch' } }")
    with pytest.raises(ValueError, match="platform 'pytorch' is not supported"):
        read_model_config_file(platform)
