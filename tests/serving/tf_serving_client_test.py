"""A client written straight on tensorflow-serving-api, as TF Serving's example clients are.

Nothing of ours on the client side: if these pass, any TF Serving client works against
`imgpipe serve`, and the answers are the SavedModel's own.
"""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.tools import saved_model_utils
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MODEL = "clf"


@pytest.fixture(scope="module")
def channel(grpc_address):
    with grpc.insecure_channel(grpc_address) as opened:
        yield opened


@pytest.mark.parametrize("version", [1, 2])
def test_predict_through_the_stubs_equals_the_saved_model_in_process(channel, images, expected,
                                                                     version):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    names = list(images)
    encoded = [images[n] for n in names]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "serving_default"
    request.model_spec.version.value = version
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(encoded, shape=[len(encoded)]))
    result = stub.Predict(request, 10.0)  # 10 s deadline, as TF Serving's example client

    classes, probabilities = expected(version, names)
    np.testing.assert_allclose(tf.make_ndarray(result.outputs["probabilities"]), probabilities,
                               rtol=1e-6, atol=1e-7)
    assert [c.decode() for c in tf.make_ndarray(result.outputs["classes"])] == classes
    assert result.model_spec.name == MODEL
    assert result.model_spec.version.value == version
    assert result.model_spec.signature_name == "serving_default"
    # The probabilities really depend on the image, so the comparison above means something.
    assert np.ptp(probabilities[:, 0]) > 1e-3


def test_versions_answer_differently(channel, images):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    answers = {}
    for version in (1, 2):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.model_spec.version.value = version
        request.inputs["image_bytes"].CopyFrom(
            tf.make_tensor_proto([images["circle.jpeg"]], shape=[1]))
        answers[version] = tf.make_ndarray(stub.Predict(request, 10.0).outputs["probabilities"])
    assert not np.allclose(answers[1], answers[2], atol=1e-3)


def test_model_status_through_the_stub(channel):
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = stub.GetModelStatus(request, 10.0)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (1, available, 0), (2, available, 0)]


def test_metadata_through_the_stub_is_the_saved_models_signature_defs(channel, model_store):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, 10.0)

    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    meta_graph = saved_model_utils.get_meta_graph_def(str(model_store / "2"), "serve")
    assert dict(signature_map.signature_def) == dict(meta_graph.signature_def)
    serving = signature_map.signature_def["serving_default"]
    assert serving.inputs["image_bytes"].dtype == tf.string.as_datatype_enum
    assert set(serving.outputs) == {"probabilities", "classes"}
    assert response.model_spec.version.value == 2  # the latest, as TF Serving answers


def test_missing_metadata_field_is_invalid_argument(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelMetadata(request, 10.0)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata_field" in raised.value.details()
