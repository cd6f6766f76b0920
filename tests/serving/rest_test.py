"""TF Serving's REST API on the local server: images as {"b64": ...}, status and metadata GETs."""

import base64
import json
import urllib.request

import numpy as np
import pytest

from serving.client.rest_client import RestClient, model_path
from serving.client.results import ModelTarget

MODEL = "clf"


def _call(rest_address, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{rest_address}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        return json.loads(answer.read())


def _b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


@pytest.mark.parametrize("path,version", [
    ("/v1/models/clf:predict", 2),
    ("/v1/models/clf/versions/1:predict", 1),
    ("/v1/models/clf/labels/stable:predict", 1),
])
def test_row_format_predict_with_b64_images(rest_address, images, expected, path, version):
    names = list(images)
    answer = _call(rest_address, path, {"signature_name": "serving_default",
                                        "instances": [_b64(images[n]) for n in names]})
    classes, probabilities = expected(version, names)
    assert [row["classes"] for row in answer["predictions"]] == classes
    np.testing.assert_allclose([row["probabilities"] for row in answer["predictions"]],
                               probabilities, rtol=1e-6)


def test_named_instances_and_columnar_inputs_give_the_same_answer(rest_address, images, expected):
    names = ["cross.jpeg", "star.png"]
    named = _call(rest_address, "/v1/models/clf:predict",
                  {"instances": [{"image_bytes": _b64(images[n])} for n in names]})
    columnar = _call(rest_address, "/v1/models/clf:predict",
                     {"inputs": {"image_bytes": [_b64(images[n]) for n in names]}})
    classes, probabilities = expected(2, names)
    assert [row["classes"] for row in named["predictions"]] == classes
    assert columnar["outputs"]["classes"] == classes
    np.testing.assert_allclose(columnar["outputs"]["probabilities"], probabilities, rtol=1e-6)


def test_status_json_is_tf_servings(rest_address):
    assert _call(rest_address, "/v1/models/clf/versions/2") == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                          "error_message": ""}}]}


def test_metadata_json_is_tf_servings(rest_address):
    answer = _call(rest_address, "/v1/models/clf/labels/stable/metadata")
    assert answer["model_spec"] == {"name": "clf", "signature_name": "", "version": "1"}
    serving = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert serving["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert serving["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"] == "3"
    assert serving["method_name"] == "tensorflow/serving/predict"


def test_rest_client(rest_address, images, expected):
    client = RestClient(rest_address, batch_size=4)
    names = list(images)
    answers = client.predict([images[n] for n in names], ModelTarget(MODEL, version_label="canary"))
    assert [a.class_name for a in answers] == expected(2, names)[0]
    assert [(s.version, s.state) for s in client.model_status(MODEL)] == [
        (1, "AVAILABLE"), (2, "AVAILABLE")]
    metadata = client.model_metadata(ModelTarget(MODEL, version=1))
    assert metadata.version == 1
    assert [t.name for t in metadata.signatures["serving_default"].outputs] == [
        "classes", "probabilities"]


def test_model_paths_are_tf_servings():
    assert model_path(ModelTarget("clf")) == "/v1/models/clf"
    assert model_path(ModelTarget("clf", version=3)) == "/v1/models/clf/versions/3"
    assert model_path(ModelTarget("clf", version_label="a b")) == "/v1/models/clf/labels/a%20b"
