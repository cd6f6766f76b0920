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


FORMAT_SIZE = 75  # the shared Transform graph's size: square images are not resized


@pytest.fixture(scope="module")
def formats(image_files):
    return image_files.pixel_formats(FORMAT_SIZE)


def test_every_pixel_format_decodes_to_pillows_pixels_in_transforms_saved_graph(
        formats, transform_output):
    """Through Transform's graph as saved and loaded back (what the exported serving
    signatures run): exactly Pillow's pixels, JPEG variants included (accurate IDCT)."""
    layer = transform_output.transform_features_layer()
    names = sorted(formats)
    outputs = layer({"image_bytes": tf.constant([[formats[n][0]] for n in names])})
    decoded = transform.decode_png_batch(outputs["image_png"], FORMAT_SIZE).numpy()
    worst = {name: int(np.abs(decoded[i].astype(int) - formats[name][1]).max())
             for i, name in enumerate(names)}
    assert worst == dict.fromkeys(names, 0)


def test_the_fast_idct_tensorflow_defaults_to_would_not_match(formats):
    """Why JPEGs are decoded with the accurate IDCT: the default is levels off Pillow's."""
    data, reference = formats["rgb.jpg"]
    fast = tf.io.decode_image(data, channels=3).numpy().astype(int)
    assert np.abs(fast - reference).max() > 2


def test_exif_orientation_is_applied_nowhere(formats, image_files):
    """Ingest, training and serving all take the pixels as stored (docs/data.md)."""
    from PIL import ImageOps

    from components.image_example_gen.inspect import inspect_image

    data, as_stored = formats["exif-rotated.jpg"]
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.abs(upright.astype(int) - as_stored).max() > 100  # Pillow would rotate it
    out = transform.decode_and_resize(tf.constant(data), FORMAT_SIZE).numpy()
    np.testing.assert_array_equal(out, as_stored)  # Transform, so training and serving
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    wide = image_files.encode(image_files.rgb(1, (60, 40)), "JPEG", exif=exif.tobytes())
    info = inspect_image(wide)
    assert (info.height, info.width) == (40, 60)  # the ExampleGen records the stored size
