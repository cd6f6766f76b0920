"""TF Serving's configuration files: `--model_config_file` and `--batching_parameters_file`.

Both are text-format protos. The model config is a `ModelServerConfig`
(`tensorflow_serving.config.model_server_config_pb2`, shipped by tensorflow-serving-api). The
batching file is a `BatchingParameters` from TF Serving's
`tensorflow_serving/servables/tensorflow/session_bundle_config.proto`, which the pip package does
not ship; `batching_parameters_type` builds that message from its definition in TF Serving 2.16.1
(same package, names, numbers and types), so a file parses here exactly as it parses there.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.server.manager import ModelSource
from serving.server.versions import VersionPolicy

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching_parameters.txt"
PLATFORM = "tensorflow"
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LABEL = re.compile(r"[A-Za-z0-9_.-]+")

# session_bundle_config.proto, message BatchingParameters (TF Serving 2.16.1).
_WRAPPED_FIELDS = (("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                   ("max_enqueued_batches", 3, "Int64Value"),
                   ("num_batch_threads", 4, "Int64Value"), ("thread_pool_name", 5, "StringValue"),
                   ("enable_large_batch_splitting", 8, "BoolValue"),
                   ("max_execution_batch_size", 9, "Int64Value"))


@functools.cache
def batching_parameters_type() -> type[message.Message]:
    """The `tensorflow.serving.BatchingParameters` message class."""
    pool = descriptor_pool.DescriptorPool()  # its own pool: nothing global is touched
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    fields = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=[wrappers.name])
    batching = file.message_type.add(name="BatchingParameters")
    for name, number, wrapper in _WRAPPED_FIELDS:
        batching.field.add(name=name, number=number, label=fields.LABEL_OPTIONAL,
                           type=fields.TYPE_MESSAGE, type_name=f".google.protobuf.{wrapper}")
    batching.field.add(name="allowed_batch_sizes", number=6, label=fields.LABEL_REPEATED,
                       type=fields.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=fields.LABEL_OPTIONAL,
                       type=fields.TYPE_BOOL)
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Server-side batching: TF Serving merges concurrent requests into batches of the model."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if min(self.max_batch_size, self.max_enqueued_batches, self.num_batch_threads) < 1:
            raise ValueError("max batch size, max enqueued batches and batch threads must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ValueError("the batch timeout must be >= 0 microseconds")
        sizes = list(self.allowed_batch_sizes)
        # TF Serving's rule: increasing, and the last one is max_batch_size.
        if sizes and (sizes != sorted(set(sizes)) or sizes[0] < 1
                      or sizes[-1] != self.max_batch_size):
            raise ValueError(f"allowed batch sizes {sizes} must increase and end with the max "
                             f"batch size {self.max_batch_size}")


def batching_parameters(options: BatchingOptions) -> message.Message:
    """The BatchingParameters proto for `options`."""
    parameters = batching_parameters_type()()
    parameters.max_batch_size.value = options.max_batch_size
    parameters.batch_timeout_micros.value = options.batch_timeout_micros
    parameters.max_enqueued_batches.value = options.max_enqueued_batches
    parameters.num_batch_threads.value = options.num_batch_threads
    parameters.allowed_batch_sizes.extend(options.allowed_batch_sizes)
    return parameters


def parse_batching_parameters(text: str) -> message.Message:
    """Parses a batching parameters file; ValueError (text_format.ParseError) when malformed."""
    return text_format.Parse(text, batching_parameters_type()())


def model_config(source: ModelSource) -> model_server_config_pb2.ModelConfig:
    """One ModelConfig: name, base path, platform, version policy and labels."""
    config = model_server_config_pb2.ModelConfig(name=source.name, base_path=source.base_path,
                                                 model_platform=PLATFORM)
    policy = config.model_version_policy
    if source.policy.kind == "latest":
        policy.latest.num_versions = source.policy.num_versions
    elif source.policy.kind == "all":
        policy.all.SetInParent()
    else:
        policy.specific.versions.extend(source.policy.versions)
    for label, version in sorted(source.labels.items()):
        config.version_labels[label] = version
    return config


def model_server_config(sources: Sequence[ModelSource]
                        ) -> model_server_config_pb2.ModelServerConfig:
    """The ModelServerConfig serving `sources`."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.extend(model_config(s) for s in sources)
    return config


def _policy(config: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    choice = config.model_version_policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        return VersionPolicy("specific", versions=tuple(config.model_version_policy.specific
                                                        .versions))
    if choice == "latest":
        return VersionPolicy("latest", num_versions=config.model_version_policy.latest
                             .num_versions or 1)
    return VersionPolicy()  # TF Serving's default: the latest version


def check_labels(name: str, labels: Mapping[str, int], policy: VersionPolicy) -> None:
    """Labels need valid names, and under a specific policy must point to one of its versions."""
    for label, version in labels.items():
        if not LABEL.fullmatch(label):
            raise ValueError(f"model {name}: version label {label!r} must be letters, digits, "
                             "'_', '.' or '-'")
        if policy.kind == "specific" and version not in policy.versions:
            raise ValueError(f"model {name}: label {label} points to version {version}, which "
                             f"the policy ({policy.describe()}) does not serve")


def sources_from_config(config: model_server_config_pb2.ModelServerConfig) -> list[ModelSource]:
    """The models a ModelServerConfig asks for; ValueError for what this server cannot do."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("only model_config_list configurations are supported")
    sources = []
    for entry in config.model_config_list.config:
        if not MODEL_NAME.fullmatch(entry.name):
            raise ValueError(f"model name {entry.name!r} must be letters, digits, '_', '.' or '-'")
        if not entry.base_path:
            raise ValueError(f"model {entry.name} has no base_path")
        if entry.model_platform not in ("", PLATFORM):
            raise ValueError(f"model {entry.name}: platform {entry.model_platform!r} is not "
                             f"supported; use {PLATFORM!r}")
        policy = _policy(entry)
        labels = dict(entry.version_labels)
        check_labels(entry.name, labels, policy)
        sources.append(ModelSource(entry.name, entry.base_path, policy, labels))
    if not sources:
        raise ValueError("the configuration lists no models")
    return sources


def read_model_config_file(path: str | Path) -> list[ModelSource]:
    """The models of a `--model_config_file`; ValueError with the file's name when it is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read the model config file {path}: {error.strerror}") from None
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
        return sources_from_config(config)
    except (text_format.ParseError, ValueError) as error:
        raise ValueError(f"model config file {path}: {error}") from None


@dataclasses.dataclass(frozen=True)
class ServingConfigFiles:
    """The files `write_serving_config` wrote."""

    models_config: Path
    batching_config: Path


def write_serving_config(output_dir: Path, source: ModelSource,
                         batching: BatchingOptions) -> ServingConfigFiles:
    """Writes models.config and batching_parameters.txt, each checked by parsing it back."""
    check_labels(source.name, source.labels, source.policy)
    models_text = text_format.MessageToString(model_server_config([source]))
    batching_text = text_format.MessageToString(batching_parameters(batching))
    # Parsed back before anything is written: a file TF Serving would refuse is never left.
    if sources_from_config(text_format.Parse(
            models_text, model_server_config_pb2.ModelServerConfig())) != [source]:
        raise AssertionError("models.config does not parse back to the model it was made from")
    if parse_batching_parameters(batching_text) != batching_parameters(batching):
        raise AssertionError("the batching parameters do not parse back to what was written")
    output_dir.mkdir(parents=True, exist_ok=True)
    files = ServingConfigFiles(output_dir / MODELS_CONFIG, output_dir / BATCHING_CONFIG)
    files.models_config.write_text(models_text, encoding="utf-8")
    files.batching_config.write_text(batching_text, encoding="utf-8")
    return files
