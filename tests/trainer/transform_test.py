"""Transform's preprocessing: any supported format in, the same RGB pixels out."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainer import transform


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def rgb() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("mode,fmt", [
    ("RGB", "JPEG"), ("RGB", "PNG"), ("RGB", "BMP"), ("P", "GIF"), ("L", "PNG"), ("L", "JPEG"),
    ("RGBA", "PNG"),
])
def test_every_format_and_mode_decodes_to_rgb_at_the_model_size(rgb, mode, fmt):
    data = _encode(rgb.convert(mode), fmt)
    out = transform.decode_and_resize(tf.constant(data), 75)
    assert out.dtype == tf.uint8
    assert out.shape == (75, 75, 3)


def test_lossless_input_keeps_its_pixels_when_no_resize_is_needed(rgb):
    square = rgb.crop((0, 0, 40, 40))
    out = transform.decode_and_resize(tf.constant(_encode(square, "PNG")), 40)
    np.testing.assert_array_equal(out.numpy(), np.asarray(square))


def test_grayscale_becomes_three_equal_channels(rgb):
    gray = rgb.convert("L").crop((0, 0, 40, 40))
    out = transform.decode_and_resize(tf.constant(_encode(gray, "PNG")), 40).numpy()
    np.testing.assert_array_equal(out[..., 0], np.asarray(gray))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_preprocessing_fn_outputs_png_of_the_resized_image_and_the_label(rgb):
    data = [_encode(rgb, "JPEG"), _encode(rgb.convert("L"), "PNG")]
    outputs = transform.preprocessing_fn(
        {"image_bytes": tf.constant([[d] for d in data]), "label": tf.constant([[0], [1]],
                                                                               tf.int64)},
        {"image_size": 75})
    assert outputs["label"].numpy().tolist() == [0, 1]
    decoded = transform.decode_png_batch(outputs["image_png"], 75)
    assert decoded.shape == (2, 75, 75, 3)
    np.testing.assert_array_equal(decoded[0].numpy(),
                                  transform.decode_and_resize(tf.constant(data[0]), 75).numpy())


def test_preprocessing_fn_serves_without_a_label(rgb):
    outputs = transform.preprocessing_fn({"image_bytes": tf.constant([[_encode(rgb, "PNG")]])},
                                         {"image_size": 75})
    assert set(outputs) == {"image_png"}


def test_undecodable_bytes_are_an_invalid_argument():
    with pytest.raises(tf.errors.InvalidArgumentError):
        transform.decode_and_resize(tf.constant(b"not an image"), 75)
