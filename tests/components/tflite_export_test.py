"""TFLiteExport: the trained model as TFLite, its answers checked against the SavedModel's."""

import errno
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.image_example_gen.reader import make_example
from components.tflite_export import convert, evaluate, executor, properties
from components.tflite_export.component import TFLiteExport, TFLiteModels
from trainer import export
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams

SIZE = 75
CLASSES = ("dark", "light")
# The largest probability gap to the served model allowed: about five times (float16) and three
# times (int8) what this fixture measures (benchmarks/README.md, "TFLite export").
FLOAT16_GAP = 0.01
INT8_GAP = 0.25


def _images(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images, dark (0-110) or light (145-255): a class a random base can tell apart."""
    labels = np.arange(count) % 2
    low = np.where(labels == 1, 145, 0)[:, None, None, None]
    noise = rng.integers(0, 111, (count, SIZE, SIZE, 3))
    return (noise + low).astype(np.uint8), labels


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return {"train": _images(rng, 48), "eval": _images(rng, 24)}


@pytest.fixture(scope="module")
def saved_model(transform_output, data, tmp_path_factory) -> str:
    """A real export (trainer.export) of a model whose answers spread over [0, 1].

    A random base's features are tiny (root mean square ~0.002), so the first Dense layer is
    rescaled to give hidden units of unit spread, as a trained base's features would, and the
    head is then trained to tell dark from light.
    """
    tf.keras.utils.set_random_seed(3)
    hp = HParams(class_names=CLASSES, image_size=SIZE, weights="none", dense_units=(16,),
                 augment=AugmentConfig.off(), input_scaling="inception")  # as the Trainer decides
    model = model_lib.build_model(hp)
    images, labels = data["train"]
    dense = model.get_layer("dense_0")
    kernel, _ = dense.get_weights()
    features = tf.keras.Model(model.input, dense.input).predict(images, verbose=0)
    scale = 1.0 / (features @ kernel).std(axis=0)
    dense.set_weights([kernel * scale, -(features @ kernel).mean(axis=0) * scale])
    model_lib.compile_model(model, len(CLASSES), 1e-2)
    model.fit(images, labels, epochs=10, batch_size=16, verbose=0)
    path = str(tmp_path_factory.mktemp("model") / "Format-Serving")
    export.export(model, transform_output, CLASSES, SIZE, path, hparams=hp)
    return path


@pytest.fixture(scope="module")
def examples(data, tmp_path_factory) -> standard_artifacts.Examples:
    """ExampleGen's examples of `data`: each image as a PNG file's bytes, with its label."""
    root = tmp_path_factory.mktemp("examples")
    for split, (images, labels) in data.items():
        (root / f"Split-{split}").mkdir()
        path = str(root / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for index, (image, label) in enumerate(zip(images, labels, strict=True)):
                png = tf.io.encode_png(image).numpy()
                writer.write(make_example(png, int(label), CLASSES[label],
                                          f"{CLASSES[label]}/{index}.png").SerializeToString())
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root)
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    return artifact


@pytest.fixture(scope="module")
def transform_graph(transform_output) -> standard_artifacts.TransformGraph:
    artifact = standard_artifacts.TransformGraph()
    artifact.uri = os.path.dirname(transform_output.transform_savedmodel_dir)
    return artifact


@pytest.fixture(scope="module")
def classifier(saved_model) -> convert.Classifier:
    return convert.Classifier(saved_model)


@pytest.fixture(scope="module")
def converted(classifier, data) -> dict[str, bytes]:
    return {fmt: classifier.convert(fmt, data["train"][0]) for fmt in convert.FORMATS}


def _served(saved_model: str, images: np.ndarray) -> np.ndarray:
    """The SavedModel's serving_default on the images as PNG bytes: what TF Serving answers."""
    signature = tf.saved_model.load(saved_model).signatures["serving_default"]
    pngs = [tf.io.encode_png(image) for image in images]
    return signature(image_bytes=tf.stack(pngs))["probabilities"].numpy()


def _tflite(content: bytes, images: np.ndarray) -> np.ndarray:
    model = evaluate.TFLiteClassifier(model_content=content)
    return np.concatenate([model.probabilities(image[np.newaxis]) for image in images])


@pytest.mark.slow  # the trained model fixture, and conversions
def test_the_tflite_model_takes_one_decoded_image_and_answers_probabilities(converted):
    for fmt, content in converted.items():
        interpreter = tf.lite.Interpreter(model_content=content)
        (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert inputs["dtype"] == np.uint8, fmt
        assert list(inputs["shape"]) == [1, SIZE, SIZE, 3], fmt
        assert outputs["dtype"] == np.float32, fmt
        assert list(outputs["shape"]) == [1, len(CLASSES)], fmt


@pytest.mark.slow  # the trained model fixture, and conversions
def test_the_converted_function_is_the_served_model_without_decoding(classifier, saved_model,
                                                                     data):
    images = data["eval"][0]
    direct = np.concatenate([classifier.probabilities(image[np.newaxis]) for image in images])
    np.testing.assert_allclose(direct, _served(saved_model, images), atol=1e-5)


@pytest.mark.slow  # the trained model fixture, and conversions
def test_float16_answers_as_the_served_model_does(saved_model, converted, data):
    images = data["eval"][0]
    served = _served(saved_model, images)
    lite = _tflite(converted[convert.FLOAT16], images)
    assert served.min() < 0.1 and served.max() > 0.9  # answers spread: the check means something
    assert np.abs(lite - served).max() < FLOAT16_GAP
    np.testing.assert_allclose(lite.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow  # the trained model fixture, and conversions
def test_int8_is_full_integer_and_close_to_the_served_model(saved_model, converted, data):
    images = data["eval"][0]
    served = _served(saved_model, images)
    lite = _tflite(converted[convert.INT8], images)
    assert np.abs(lite - served).max() < INT8_GAP
    assert np.mean(lite.argmax(axis=1) == served.argmax(axis=1)) >= 0.95
    interpreter = tf.lite.Interpreter(model_content=converted[convert.INT8])
    weights = [t for t in interpreter.get_tensor_details()
               if t["dtype"] in (np.int8, np.float32) and len(t["shape"]) == 4
               and t["shape"][0] > 3]  # convolution kernels: [out, h, w, in]
    assert weights and all(t["dtype"] == np.int8 for t in weights)


@pytest.mark.slow  # the trained model fixture, and conversions
def test_sizes_shrink_with_the_format(saved_model, converted):
    variables = executor.tree_size(os.path.join(saved_model, "variables"))
    assert len(converted[convert.FLOAT16]) < 0.6 * variables
    assert len(converted[convert.INT8]) < 0.35 * variables


@pytest.mark.slow  # the trained model fixture, and conversions
def test_int8_needs_representative_images(classifier):
    with pytest.raises(ValueError, match="representative"):
        classifier.convert(convert.INT8, [])


def test_a_broken_model_is_refused_and_the_tolerance_decides():
    reference = evaluate.Measurement(0.90, 5.0, np.zeros((10, 2), np.float32))
    assert evaluate.refusal(evaluate.Measurement(0.895, 1.0, reference.probabilities),
                            reference, 1.0) == ""
    assert evaluate.refusal(evaluate.Measurement(0.90, 1.0, reference.probabilities),
                            reference, 0.0) == ""
    reason = evaluate.refusal(evaluate.Measurement(0.85, 1.0, reference.probabilities),
                              reference, 1.0)
    assert reason.startswith("accuracy 0.850 is more than 1 point(s) below the SavedModel's 0.900")
    # A planted broken model: always the first class, on images half of each class.
    labels = np.arange(10) % 2
    broken = evaluate.measure(lambda image: np.array([[1.0, 0.0]], np.float32),
                              zip(np.zeros((10, 4, 4, 3), np.uint8), labels, strict=True))
    assert broken.accuracy == 0.5
    assert evaluate.refusal(broken, reference, 1.0)


def _run(saved_model: str, examples, transform_graph, tmp_path, formats: str, tolerance: float,
         blessed: bool = True) -> TFLiteModels:
    model = standard_artifacts.Model()
    model.uri = os.path.dirname(saved_model)  # the Trainer's artifact holds Format-Serving/
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    output = TFLiteModels()
    output.uri = str(tmp_path / "tflite_models")
    executor.Executor().Do(
        {"model": [model], "model_blessing": [blessing], "examples": [examples],
         "transform_graph": [transform_graph]},
        {"tflite_models": [output]},
        {"formats": formats, "tolerance_points": tolerance, "representative_images": 16})
    return output


def _comparison(output: TFLiteModels) -> dict:
    return json.loads(output.get_string_custom_property(properties.COMPARISON))


@pytest.mark.slow  # the trained model fixture, and conversions
def test_executor_accepts_formats_within_the_tolerance(saved_model, examples, transform_graph,
                                                       tmp_path):
    output = _run(saved_model, examples, transform_graph, tmp_path, "float16,int8", 1.0)
    comparison = _comparison(output)
    assert json.loads(output.get_string_custom_property(properties.ACCEPTED)) == [
        "float16", "int8"]
    assert comparison["eval_images"] == 24 and comparison["representative_images"] == 16
    reference = comparison["saved_model"]
    for fmt in ("float16", "int8"):
        entry = comparison[fmt]
        assert entry["accepted"] and entry["reason"] == ""
        assert entry["accuracy"] >= reference["accuracy"] - 0.01
        assert 0 < entry["size_bytes"] < reference["size_bytes"]
        assert entry["latency_ms"] > 0
        assert os.path.getsize(tmp_path / "tflite_models" / f"model_{fmt}.tflite") == \
            entry["size_bytes"]
        metadata = json.loads((tmp_path / "tflite_models" / f"model_{fmt}.json").read_text())
        assert metadata["class_names"] == list(CLASSES)
        assert metadata["input"]["shape"] == [1, SIZE, SIZE, 3]
        assert metadata["input"]["input_scaling_inside_model"] == "inception"
    assert (tmp_path / "tflite_models" / "labels.txt").read_text() == "dark\nlight\n"
    assert json.loads((tmp_path / "tflite_models" / executor.REPORT_FILE).read_text()) == \
        comparison


@pytest.mark.slow  # the trained model fixture, and conversions
def test_executor_refuses_a_format_that_fails_the_tolerance(saved_model, examples,
                                                            transform_graph, tmp_path):
    # float16 answers as the SavedModel does, so its accuracy is equal: -1 point demands more.
    output = _run(saved_model, examples, transform_graph, tmp_path, "float16", -1.0)
    entry = _comparison(output)["float16"]
    assert json.loads(output.get_string_custom_property(properties.ACCEPTED)) == []
    assert not entry["accepted"]
    assert "point(s) below the SavedModel's" in entry["reason"]


@pytest.mark.slow  # the trained model fixture, and conversions
def test_executor_converts_nothing_for_an_unblessed_model(saved_model, examples,
                                                         transform_graph, tmp_path):
    output = _run(saved_model, examples, transform_graph, tmp_path, "int8", 1.0, blessed=False)
    assert _comparison(output)["int8"] == {"accepted": False,
                                           "reason": "not converted: the model is not blessed"}
    assert not (tmp_path / "tflite_models" / "model_int8.tflite").exists()


def test_a_model_that_cannot_be_converted_is_refused_without_failing(examples, transform_graph,
                                                                     tmp_path):
    plain = tf.Module()
    plain.v = tf.Variable(1.0)
    path = str(tmp_path / "model" / "Format-Serving")
    tf.saved_model.save(plain, path)
    entry = _comparison(_run(path, examples, transform_graph, tmp_path, "float16", 1.0))["float16"]
    assert not entry["accepted"]
    assert entry["reason"].startswith("not converted: ValueError: the SavedModel at")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"formats": ("float32",)}, "one of float16, int8"),
    ({"formats": ()}, "one of float16, int8"),
    ({"formats": ("int8",), "tolerance_points": 101.0}, "tolerance_points"),
    ({"formats": ("int8",), "representative_images": 0}, "representative_images"),
])
def test_component_rejects_bad_parameters(kwargs, message):
    from tfx import v1 as tfx

    channels = {"model": tfx.dsl.Channel(type=standard_artifacts.Model),
                "model_blessing": tfx.dsl.Channel(type=standard_artifacts.ModelBlessing),
                "examples": tfx.dsl.Channel(type=standard_artifacts.Examples),
                "transform_graph": tfx.dsl.Channel(type=standard_artifacts.TransformGraph)}
    with pytest.raises(ValueError, match=message):
        TFLiteExport(**channels, **kwargs)


def test_parse_formats_keeps_the_order_given_once():
    assert convert.parse_formats("int8, float16,int8") == ("int8", "float16")


@pytest.mark.slow  # the trained model fixture, and a conversion
def test_a_model_file_the_disk_cannot_take_fails_the_step(saved_model, examples,
                                                          transform_graph, tmp_path, monkeypatch):
    # A refusal is for a model the converter or the interpreter cannot handle; a full disk is
    # the run's to report (one line, then the same command again), not a reason on a model.
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "model.tflite"))

    monkeypatch.setattr(executor.convert, "write_model", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _run(saved_model, examples, transform_graph, tmp_path, "float16", 1.0)
