"""Predict and metadata on one loaded version, with TF Serving's checks, codes and messages.

The checks and messages follow TF Serving's `predict_util.cc`: an unknown signature is
FAILED_PRECONDITION; inputs that do not match the signature (names, dtype, shape), unknown
output filters and undecodable images are INVALID_ARGUMENT; any other TensorFlow error keeps its
own code (TensorFlow's codes are gRPC's).
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from serving.errors import ServingError, short_message, status_code
from serving.server.servable import Servable
from trainer.contract import SERVING_SIGNATURE


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _joined(names: set[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def _dtype_name(number: int) -> str:
    try:
        return tf.dtypes.as_dtype(number).name
    except TypeError:
        return f"an unknown dtype ({number})"


def _check_inputs(signature: meta_graph_pb2.SignatureDef,
                  inputs: Mapping[str, tensor_pb2.TensorProto]) -> None:
    sent, expected = set(inputs), set(signature.inputs)
    if sent != expected:
        raise _invalid(f"input size does not match signature: {len(sent)}!={len(expected)} "
                       f"len({_joined(sent)}) != len({_joined(expected)}). "
                       f"Sent extra: {_joined(sent - expected)}. "
                       f"Missing but required: {_joined(expected - sent)}.")
    for name, proto in inputs.items():
        want = signature.inputs[name].dtype
        if proto.dtype != want:
            raise _invalid(f"Expected input {name} to be {_dtype_name(want)} but received "
                           f"{_dtype_name(proto.dtype)}")
        expected_shape = tf.TensorShape(signature.inputs[name].tensor_shape)
        sent_shape = tf.TensorShape(proto.tensor_shape)
        if not expected_shape.is_compatible_with(sent_shape):
            raise _invalid(f"input {name} has shape {_shape(sent_shape)}, the signature "
                           f"expects {_shape(expected_shape)}")


def _shape(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "[?]"
    return "[" + ",".join("-1" if d is None else str(d) for d in shape.as_list()) + "]"


def _output_aliases(signature: meta_graph_pb2.SignatureDef, output_filter: list[str]) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise _invalid(f"output tensor alias not found in signature: {alias} Outputs expected "
                           f"to be in the set {_joined(set(signature.outputs))}.")
        if alias in seen:
            raise _invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def _to_tensor(name: str, proto: tensor_pb2.TensorProto) -> tf.Tensor:
    try:
        return tf.constant(tf.make_ndarray(proto), dtype=tf.dtypes.as_dtype(proto.dtype))
    except (TypeError, ValueError) as error:
        raise _invalid(f"input {name} is not a valid TensorProto: {error}") from None


def predict(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """Runs `request` on `servable`; raises ServingError with TF Serving's code when it fails."""
    signature_name = request.model_spec.signature_name or SERVING_SIGNATURE
    signature = servable.signature_defs.get(signature_name)
    function = servable.functions.get(signature_name)
    if signature is None or function is None:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{signature_name}" not found.')
    _check_inputs(signature, request.inputs)
    aliases = _output_aliases(signature, list(request.output_filter))
    inputs = {name: _to_tensor(name, proto) for name, proto in request.inputs.items()}
    try:
        outputs = function(**inputs)
    except tf.errors.OpError as error:
        raise ServingError(status_code(error.error_code), short_message(error.message)) from None
    except (TypeError, ValueError) as error:
        # The function's input signature refused a tensor (wrong shape): a bad request.
        raise _invalid(short_message(str(error))) from None
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for alias in aliases:
        response.outputs[alias].CopyFrom(tf.make_tensor_proto(outputs[alias].numpy()))
    return response


def signature_def_map(servable: Servable) -> get_model_metadata_pb2.SignatureDefMap:
    """Every SignatureDef of the version, as GetModelMetadata's `signature_def` field packs it."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in servable.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    return signature_map
