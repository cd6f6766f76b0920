"""Transform's `preprocessing_fn`: the deterministic preprocessing, defined once.

Decoding (JPEG, PNG, BMP, GIF's first frame; grayscale and alpha become RGB) and resizing to the
model's input size happen here, after the header is checked against the pixel limit
(`trainer.image_header`), so a decompression bomb is refused before anything is allocated. The
Trainer reads the result, and the exported serving signatures run this same graph (Transform's
`transform_features_layer`) on raw image bytes, so training and serving cannot drift apart. The
output stays compact: the resized image as lossless PNG bytes, not a materialized float tensor.
"""

from __future__ import annotations

import os

# TFX loads this module file itself; Keras 2 (tf_keras) must be chosen before TensorFlow is.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from typing import Any

import tensorflow as tf

from trainer.contract import (
    DEFAULT_MAX_PIXELS,
    IMAGE_BYTES,
    IMAGE_SIZE_KEY,
    LABEL,
    MAX_PIXELS_KEY,
    TRANSFORMED_IMAGE,
)
from trainer.image_header import checked_image, is_jpeg


def decode_and_resize(image_bytes: tf.Tensor, image_size: int,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """One encoded image (scalar string) -> uint8 [image_size, image_size, 3] RGB.

    InvalidArgumentError, before decoding, for bytes that are not a JPEG, PNG, BMP or GIF or
    that declare more than `max_pixels` pixels. JPEGs are decoded with the accurate integer IDCT
    (libjpeg's default, and Pillow's), not TensorFlow's default fast one, which is up to ~10
    levels off on detailed images. EXIF orientation is not applied: the pixels as stored, as the
    ingest records their size (docs/data.md, "Pixel formats").
    """
    checked = checked_image(image_bytes, max_pixels)
    image = tf.cond(is_jpeg(checked),
                    lambda: tf.io.decode_jpeg(checked, channels=3, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(checked, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    resized = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def decode_png_batch(png_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """[N] PNG strings from `preprocessing_fn` -> uint8 [N, image_size, image_size, 3]."""
    images = tf.map_fn(lambda b: tf.io.decode_png(b, channels=3), png_bytes,
                       fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    return tf.ensure_shape(images, [None, image_size, image_size, 3])


def preprocessing_fn(inputs: dict[str, tf.Tensor], custom_config: dict[str, Any]) -> dict:
    """Raw examples -> {'image_png': [N] resized PNG bytes, 'label': [N] int64}.

    `custom_config['image_size']` sets the output size, `custom_config['max_pixels']` the
    largest image decoded (the graph, exported with the model, refuses larger ones). The label
    passes through when present (training and evaluation); serving calls this without it.
    """
    image_size = int(custom_config[IMAGE_SIZE_KEY])
    max_pixels = int(custom_config.get(MAX_PIXELS_KEY, DEFAULT_MAX_PIXELS))
    raw = tf.reshape(inputs[IMAGE_BYTES], [-1])
    png = tf.map_fn(lambda b: tf.io.encode_png(decode_and_resize(b, image_size, max_pixels)), raw,
                    fn_output_signature=tf.TensorSpec([], tf.string))
    outputs = {TRANSFORMED_IMAGE: png}
    if LABEL in inputs:
        outputs[LABEL] = tf.reshape(inputs[LABEL], [-1])
    return outputs
