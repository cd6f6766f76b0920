"""The exported signatures: raw image bytes in, the same answer as the training path, no skew."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainer import export, scaling, transform
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams

SIZE = 75
CLASSES = ("cat", "dog", "fox")


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), "RGB")
    return {"jpeg": _encode(rgb, "JPEG"), "png": _encode(rgb, "PNG"),
            "grayscale": _encode(rgb.convert("L"), "PNG"),
            "alpha": _encode(rgb.convert("RGBA"), "PNG"), "bmp": _encode(rgb, "BMP"),
            "gif": _encode(rgb.convert("P"), "GIF")}


@pytest.fixture(scope="module")
def exported(transform_output, tmp_path_factory):
    hp = HParams(class_names=CLASSES, image_size=SIZE, weights="none", augment=AugmentConfig.off())
    model = model_lib.build_model(hp)
    path = str(tmp_path_factory.mktemp("export") / "model")
    export.export(model, transform_output, CLASSES, SIZE, path)
    return model, tf.saved_model.load(path)


def test_serving_equals_the_training_path_on_every_format(exported, images):
    model, loaded = exported
    names = list(images)
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([images[n] for n in names]))
    # The training path: Transform's decode-and-resize, then the Keras model in inference mode.
    pixels = tf.stack([transform.decode_and_resize(tf.constant(images[n]), SIZE) for n in names])
    expected = model(pixels, training=False).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert out["probabilities"].shape == (len(names), 3)
    expected_classes = [CLASSES[i].encode() for i in expected.argmax(axis=1)]
    assert out["classes"].numpy().tolist() == expected_classes


def test_examples_signature_reads_raw_tf_examples(exported, images):
    _, loaded = exported
    example = tf.train.Example(features=tf.train.Features(feature={
        "image_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[images["jpeg"]])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
    })).SerializeToString()
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant([images["jpeg"]]))
    by_example = loaded.signatures["from_examples"](examples=tf.constant([example]))
    np.testing.assert_allclose(by_example["probability"].numpy(),
                               by_bytes["probabilities"].numpy(), rtol=1e-6)


def test_undecodable_bytes_are_invalid_argument_naming_the_problem(exported):
    _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
        loaded.signatures["serving_default"](image_bytes=tf.constant([b"not an image"]))


def test_signature_contract(exported):
    _, loaded = exported
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["image_bytes"]
    assert serve.structured_input_signature[1]["image_bytes"].dtype == tf.string
    assert set(serve.structured_outputs) == {"probabilities", "classes"}


def test_every_input_scaling_is_in_the_served_graph(transform_output, images, tmp_path):
    """Per convention: the model's first layer is that convention (checked against Keras' own
    preprocess_input in scaling_test.py) and serving gives the training path's probabilities."""
    names = list(images)
    pixels = tf.stack([transform.decode_and_resize(tf.constant(images[n]), SIZE) for n in names])
    for convention in scaling.CONVENTIONS:
        tf.keras.utils.set_random_seed(0)  # the same weights for every convention
        hp = HParams(class_names=CLASSES, image_size=SIZE, base="mobilenet_v2", weights="none",
                     dense_units=(8,), augment=AugmentConfig.off(), input_scaling=convention)
        model = model_lib.build_model(hp)
        assert model.get_layer("base_preprocess").convention == convention
        path = str(tmp_path / convention)
        export.export(model, transform_output, CLASSES, SIZE, path, hparams=hp)
        out = tf.saved_model.load(path).signatures["serving_default"](
            image_bytes=tf.constant([images[n] for n in names]))["probabilities"].numpy()
        np.testing.assert_allclose(out, model(pixels, training=False).numpy(), rtol=1e-5,
                                   atol=1e-6)
        assert out.shape == (len(names), len(CLASSES))
