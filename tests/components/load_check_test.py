"""The load check: a model must load and serve real images in a fresh process to be blessed."""

import io
import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.python.data.experimental.ops import testing as tf_data_testing
from tfx import v1 as tfx
from tfx.components.util import model_utils
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.image_example_gen.reader import make_example
from components.load_check import executor, probe
from components.load_check.component import ModelLoadCheck

EVAL_COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (200, 200, 200)]
CLASS_NAMES = ["dark", "light"]
_INPUT = tf.TensorSpec([None], tf.string, name="image_bytes")


def _mean_pixel(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes each image as the real signature does; its mean pixel in [0, 1]."""
    def mean(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.reduce_mean(tf.cast(image, tf.float32)) / 255.0

    return tf.map_fn(mean, image_bytes, fn_output_signature=tf.float32)


def _outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
    classes = tf.gather(tf.constant(CLASS_NAMES), tf.argmax(probabilities, axis=-1))
    return {"probabilities": probabilities, "classes": classes}


class _GoodModel(tf.Module):
    @tf.function(input_signature=[_INPUT])
    def serve(self, image_bytes):
        p = _mean_pixel(image_bytes)
        return _outputs(tf.stack([1.0 - p, p], axis=-1))


class _AssertingModel(tf.Module):
    """Serves a dummy string, but no real image: it insists on 9999-pixel-high images."""

    @tf.function(input_signature=[_INPUT])
    def serve(self, image_bytes):
        image = tf.io.decode_image(image_bytes[0], channels=3, expand_animations=False)
        with tf.control_dependencies([tf.debugging.assert_equal(
                tf.shape(image)[0], 9999, message="images must be 9999 pixels high")]):
            p = _mean_pixel(image_bytes)
        return _outputs(tf.stack([1.0 - p, p], axis=-1))


class _OtherInputModel(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(self, images):
        p = _mean_pixel(images)
        return _outputs(tf.stack([1.0 - p, p], axis=-1))


class _BadSumModel(tf.Module):
    @tf.function(input_signature=[_INPUT])
    def serve(self, image_bytes):
        p = _mean_pixel(image_bytes)
        return _outputs(tf.stack([p, p], axis=-1))  # rows sum to 2p


class _SlowModel(tf.Module):
    """Valid outputs, after ten minutes (a graph op that sleeps, so it survives saving)."""

    @tf.function(input_signature=[_INPUT])
    def serve(self, image_bytes):
        delay = tf.data.Dataset.range(1).apply(tf_data_testing.sleep(600_000_000)).reduce(
            tf.constant(0, tf.int64), lambda total, x: total + x)
        p = _mean_pixel(image_bytes) + tf.cast(delay, tf.float32)
        return _outputs(tf.stack([1.0 - p, p], axis=-1))


def _encoded(colour: tuple[int, int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def examples_uri(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("examples"))
    splits = {"train": [_encoded((0, 0, 0), "PNG")],
              "eval": [_encoded(c, "PNG" if i % 2 else "JPEG")
                       for i, c in enumerate(EVAL_COLOURS)]}
    for split, images in splits.items():
        os.makedirs(os.path.join(uri, f"Split-{split}"))
        path = os.path.join(uri, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i, image in enumerate(images):
                writer.write(make_example(image, i % 2, "c", f"c/{i}").SerializeToString())
    return uri


def _saved_model(tmp_path, module: tf.Module) -> standard_artifacts.Model:
    """A Model artifact with `module` saved where the Trainer puts the serving model."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    tf.saved_model.save(module, path_utils.serving_model_path(model.uri),
                        signatures={"serving_default": module.serve})
    return model


@pytest.fixture
def check(tmp_path, examples_uri):
    """Runs our executor's Do on real artifacts, as the orchestrator would; returns the blessing."""

    def run(module: tf.Module, **exec_properties) -> standard_artifacts.InfraBlessing:
        examples = standard_artifacts.Examples()
        examples.uri = examples_uri
        examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
        blessing = standard_artifacts.InfraBlessing()
        blessing.uri = str(tmp_path / "blessing")
        os.makedirs(blessing.uri)
        executor.Executor().Do(
            {"model": [_saved_model(tmp_path, module)], "examples": [examples]},
            {"blessing": [blessing]}, exec_properties)
        return blessing

    return run


def _properties(artifact) -> dict[str, object]:
    return {key: getattr(value, value.WhichOneof("value"))
            for key, value in artifact.mlmd_artifact.custom_properties.items()}


def _log(blessing) -> str:
    with open(os.path.join(blessing.uri, executor.LOG_FILE)) as f:
        return f.read()


def _assert_not_blessed(blessing) -> str:
    assert _properties(blessing)["blessed"] == 0
    assert sorted(os.listdir(blessing.uri)) == [executor.NOT_BLESSED_FILE, executor.LOG_FILE]
    assert not model_utils.is_infra_validated(blessing)
    return str(_properties(blessing)["reason"])


# --- the executor, with a real child process ---------------------------------------------------


def test_a_good_model_is_blessed_by_another_process(check):
    blessing = check(_GoodModel())
    assert _properties(blessing) == {"blessed": 1, "reason": ""}
    assert sorted(os.listdir(blessing.uri)) == [executor.BLESSED_FILE, executor.LOG_FILE]
    assert model_utils.is_infra_validated(blessing)  # what TFX's own Pusher checks
    report = probe.parse_report(_log(blessing).split("--- stderr ---")[0])
    assert report["pid"] != os.getpid()
    assert report["num_images"] == len(EVAL_COLOURS)  # all 4 eval images; num_images is 8
    assert report["outputs"] == {"probabilities": {"dtype": "float32", "shape": [4, 2]},
                                 "classes": {"dtype": "object", "shape": [4]}}


def test_num_images_limits_the_request(check):
    blessing = check(_GoodModel(), num_images=2)
    assert _properties(blessing)["blessed"] == 1
    assert probe.parse_report(_log(blessing))["num_images"] == 2


def test_a_signature_that_fails_on_real_images_is_not_blessed(check):
    reason = _assert_not_blessed(check(_AssertingModel()))
    assert reason.startswith("serving_default failed: InvalidArgumentError: ")
    assert "images must be 9999 pixels high" in reason
    assert "\n" not in reason and "File " not in reason  # one line, no traceback


def test_a_signature_with_another_input_name_is_not_blessed(check):
    reason = _assert_not_blessed(check(_OtherInputModel()))
    assert reason == "serving_default takes inputs ['images'], expected ['image_bytes']"


def test_probabilities_that_do_not_sum_to_one_are_not_blessed(check):
    reason = _assert_not_blessed(check(_BadSumModel()))
    assert reason.startswith("probabilities rows do not sum to 1")


def test_a_model_that_hangs_is_killed_at_the_timeout(check):
    start = time.monotonic()
    blessing = check(_SlowModel(), timeout_seconds=10)
    assert time.monotonic() - start < 30  # killed, not waited for
    assert _assert_not_blessed(blessing) == "timed out after 10 s"
    assert "exit status: None" in _log(blessing)


# --- the plain logic ----------------------------------------------------------------------------


def _valid(n: int = 3) -> dict[str, np.ndarray]:
    return {"probabilities": np.array([[0.25, 0.75]] * n, np.float32),
            "classes": np.array([b"light"] * n, dtype=object)}


def test_valid_outputs_pass():
    assert probe.validate_outputs(_valid(), 3) == ""
    nearly = _valid()
    nearly["probabilities"][0] = [0.2504, 0.75]  # within the 1e-3 tolerance
    assert probe.validate_outputs(nearly, 3) == ""


@pytest.mark.parametrize("change, expected", [
    (lambda o: o.pop("probabilities"), "serving_default has no 'probabilities' output"),
    (lambda o: o.pop("classes"), "serving_default has no 'classes' output"),
    (lambda o: o.update(probabilities=o["probabilities"].astype(np.float64)),
     "probabilities are float64, expected float32"),
    (lambda o: o.update(probabilities=o["probabilities"][:2]),
     "probabilities have shape [2, 2], expected [3, C] for 3 images"),
    (lambda o: o.update(probabilities=o["probabilities"].reshape(-1)),
     "probabilities have shape [6], expected [3, C]"),
    (lambda o: o.update(probabilities=np.ones([3, 1], np.float32)),
     "probabilities have 1 classes, expected at least 2"),
    (lambda o: o["probabilities"].__setitem__((1, 0), np.nan), "probabilities are not finite"),
    (lambda o: o["probabilities"].__setitem__((1, 0), np.inf), "probabilities are not finite"),
    (lambda o: o["probabilities"].__setitem__(1, [-0.5, 1.5]), "probabilities are outside [0, 1]"),
    (lambda o: o["probabilities"].__setitem__(2, [0.5, 0.6]), "probabilities rows do not sum to 1"),
    (lambda o: o.update(classes=np.array([1, 1, 1])), "classes are int64, expected strings"),
    (lambda o: o.update(classes=o["classes"][:2]), "classes have shape [2], expected [3]"),
])
def test_malformed_outputs_are_named(change, expected):
    outputs = _valid()
    change(outputs)
    assert probe.validate_outputs(outputs, 3).startswith(expected)


def test_the_child_gets_keras_2_and_quiet_logs(monkeypatch):
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = probe.child_environment()
    assert env["TF_USE_LEGACY_KERAS"] == "1" and env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]


def test_the_report_is_the_last_json_line():
    stdout = 'noise\n{"pid": 1, "reason": "first"}\nnot json {\n{"pid": 2, "reason": ""}\n[1]\n'
    assert probe.parse_report(stdout) == {"pid": 2, "reason": ""}
    assert probe.parse_report("Segmentation fault\n{broken\n") == {}


def test_images_round_trip_through_the_probe_file(tmp_path, examples_uri):
    images = probe.read_images(os.path.join(examples_uri, "Split-eval"), 3)
    assert len(images) == 3 and images[0][:2] == b"\xff\xd8"  # the JPEG first
    probe.write_images(str(tmp_path / "images"), images)
    assert probe.load_images(str(tmp_path / "images")) == images
    assert probe.load_images(str(tmp_path)) == images  # a directory of such files


@pytest.mark.parametrize("kwargs, message", [
    ({"num_images": 0}, "num_images must be >= 1, got 0"),
    ({"timeout_seconds": 0}, "timeout_seconds must be >= 1, got 0"),
])
def test_the_component_rejects_bad_parameters(kwargs, message):
    model = tfx.dsl.Channel(type=standard_artifacts.Model)
    examples = tfx.dsl.Channel(type=standard_artifacts.Examples)
    with pytest.raises(ValueError, match=message):
        ModelLoadCheck(model=model, examples=examples, **kwargs)
    component = ModelLoadCheck(model=model, examples=examples)
    assert component.outputs["blessing"].type == standard_artifacts.InfraBlessing
    assert component.exec_properties == {"num_images": 8, "timeout_seconds": 300}


def test_the_probe_reports_even_when_it_cannot_read_the_images(tmp_path, capsys):
    assert probe.main(["--model", str(tmp_path), "--images", str(tmp_path / "missing")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["pid"] == os.getpid()
    assert report["reason"].startswith("reading the images failed: NotFoundError")
