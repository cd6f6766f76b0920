"""TF Serving's three calls on a registry of models, shared by the gRPC and the REST front ends.

Requests and responses are TF Serving's own protos; the REST front end converts JSON into the
same requests, as TF Serving's HTTP handler does.
"""

from __future__ import annotations

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from serving.errors import ServingError
from serving.server import inference
from serving.server.manager import ModelRegistry
from serving.server.servable import Servable

SIGNATURE_DEF_FIELD = "signature_def"  # the one metadata field TF Serving supports


def resolve(registry: ModelRegistry, spec: model_pb2.ModelSpec) -> Servable:
    """The served version a ModelSpec names: by number, by label, or the latest."""
    manager = registry.model(spec.name)
    version_choice = spec.WhichOneof("version_choice")
    if version_choice == "version":
        return manager.servable(version=spec.version.value)
    if version_choice == "version_label":
        return manager.servable(label=spec.version_label)
    return manager.servable()


def predict(registry: ModelRegistry,
            request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """PredictionService.Predict."""
    return inference.predict(resolve(registry, request.model_spec), request)


def model_metadata(registry: ModelRegistry, request: get_model_metadata_pb2.GetModelMetadataRequest
                   ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """PredictionService.GetModelMetadata: the served version's SignatureDefs."""
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    if not request.metadata_field:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Metadata field {field} is not supported")
    servable = resolve(registry, request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(inference.signature_def_map(servable))
    return response


def model_status(registry: ModelRegistry, request: get_model_status_pb2.GetModelStatusRequest
                 ) -> get_model_status_pb2.GetModelStatusResponse:
    """ModelService.GetModelStatus: every version seen, or the one asked for."""
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    spec = request.model_spec
    name = spec.name
    states = registry.managers[name].states() if name in registry.managers else {}
    version_choice = spec.WhichOneof("version_choice")
    if version_choice == "version_label":
        labels = registry.model(name).source.labels
        if spec.version_label not in labels:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Unrecognized servable version label: {spec.version_label}")
        wanted = [labels[spec.version_label]]
    elif version_choice == "version":
        wanted = [spec.version.value]
    else:
        wanted = sorted(states)
        if not wanted:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Could not find any versions of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in wanted:
        if version not in states:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Could not find version {version} of model {name}")
        state = states[version]
        status = response.model_version_status.add(version=version, state=state.state)
        # StatusProto's error_code is tensorflow.error.Code, numbered as gRPC's codes.
        status.status.error_code = state.error_code.value[0]
        status.status.error_message = state.error_message
    return response
