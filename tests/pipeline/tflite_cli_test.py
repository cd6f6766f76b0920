"""`imgpipe predict --tflite FILE` and the `--tflite` flags: answers, and one-line refusals."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.cli.options import Destination, build_pipeline_config
from pipeline.errors import UserError

SIZE = 32


@pytest.fixture(scope="module")
def brightness_model(tmp_path_factory):
    """A TFLite model with imgpipe's input and output: p(light) is the mean pixel, in [0, 1]."""

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.uint8, name="image")])
    def classify(image):
        p = tf.reduce_mean(tf.cast(image, tf.float32), axis=[1, 2, 3]) / 255.0
        return {"probabilities": tf.stack([1.0 - p, p], axis=-1)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [classify.get_concrete_function()], classify)
    folder = tmp_path_factory.mktemp("tflite")
    (folder / "model_float16.tflite").write_bytes(converter.convert())
    (folder / "model_float16.json").write_text(json.dumps({"class_names": ["dark", "light"]}))
    return folder / "model_float16.tflite"


def _image(tmp_path, name: str, level: int, size: tuple[int, int] = (50, 40)) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), level, np.uint8)).save(
        buffer, format="PNG" if name.endswith(".png") else "JPEG")
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return str(path)


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_predict_classifies_each_file_with_the_tflite_model(brightness_model, tmp_path):
    dark, light = _image(tmp_path, "a.png", 30), _image(tmp_path, "b.jpg", 220, (90, 60))
    result = _invoke("predict", "--tflite", str(brightness_model), dark, light)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert rows[0] == ["file", "class", "probability"]
    assert rows[1][:2] == [dark, "dark"] and float(rows[1][2]) == pytest.approx(1 - 30 / 255,
                                                                               abs=2e-3)
    assert rows[2][:2] == [light, "light"] and float(rows[2][2]) == pytest.approx(220 / 255,
                                                                                abs=5e-3)
    assert rows[3][0] == "model"


def test_labels_txt_names_the_classes_without_the_json(brightness_model, tmp_path):
    copy = tmp_path / "model.tflite"
    copy.write_bytes(brightness_model.read_bytes())
    (tmp_path / "labels.txt").write_text("night\nday\n")
    result = _invoke("predict", "--tflite", str(copy), _image(tmp_path, "a.png", 240))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[1] == "day"


def _refusal(*args: str) -> str:
    result = _invoke(*args)
    assert isinstance(result.exception, UserError), result.output
    assert "\n" not in str(result.exception)
    return str(result.exception)


def test_predict_refusals_are_one_line(brightness_model, tmp_path):
    image = _image(tmp_path, "a.png", 30)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    assert _refusal("predict", "--tflite", str(brightness_model), str(tmp_path / "bad.jpg")) == (
        f"{tmp_path / 'bad.jpg'}: not an image the model can read: not a JPEG, PNG, BMP or GIF "
        "image (no known header, or too short to hold one)")
    assert "drop --server and --model" in _refusal(
        "predict", "--tflite", str(brightness_model), "--server", "h:1", image)
    assert "--server and --model (a served model), or --tflite FILE" in _refusal(
        "predict", image)
    assert "is not a file" in _refusal("predict", "--tflite", str(tmp_path / "none.tflite"), image)
    lonely = tmp_path / "lonely" / "model.tflite"
    lonely.parent.mkdir()
    lonely.write_bytes(brightness_model.read_bytes())
    assert "no class names beside" in _refusal("predict", "--tflite", str(lonely), image)
    json_file = brightness_model.with_suffix(".json")
    assert "is not a TFLite classifier imgpipe made" in _refusal(
        "predict", "--tflite", str(json_file), image)


def test_run_refuses_a_tflite_format_it_does_not_make(tmp_path):
    message = _refusal("run", "--data", str(tmp_path), "--output", str(tmp_path / "out"),
                       "--tflite", "float16,fp32")
    assert message == ("--tflite 'float16,fp32': each value must be float16 or int8, "
                       "comma-separated, e.g. --tflite float16,int8")
    assert not (tmp_path / "out").exists()


def test_the_flags_reach_the_pipeline_config():
    import click

    from pipeline.cli.options import pipeline_options
    from pipeline.config import TFLiteConfig
    from trainer.hparams import HParams

    seen = {}
    flags = click.command()(pipeline_options(lambda **options: seen.update(options)))

    def build(*args: str) -> TFLiteConfig:
        flags.main(list(args), standalone_mode=False)
        return build_pipeline_config(
            Destination("shapes", "/tmp/root", "/tmp/data", "/tmp/serving"),
            HParams(class_names=("a", "b"), weights="none"), seen, spans=False,
            given_splits=False).tflite

    assert build() == TFLiteConfig(formats=(), tolerance_points=1.0)
    assert build("--tflite", "int8, float16,int8", "--tflite-tolerance", "2.5") == TFLiteConfig(
        formats=("int8", "float16"), tolerance_points=2.5)
