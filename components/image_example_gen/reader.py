"""Plain-Python part of the image ExampleGen: one image file -> one tf.train.Example."""

from __future__ import annotations

import posixpath

import tensorflow as tf

from trainer.contract import FILENAME, FORMAT, HEIGHT, IMAGE_BYTES, LABEL, LABEL_NAME, WIDTH


def make_example(image_bytes: bytes, label: int, label_name: str, filename: str,
                 height: int = 0, width: int = 0, image_format: str = "") -> tf.train.Example:
    """The example for one image: its original encoded bytes, never decoded pixels."""

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {
        IMAGE_BYTES: _bytes(image_bytes),
        LABEL: _int(label),
        LABEL_NAME: _bytes(label_name.encode("utf-8")),
        FILENAME: _bytes(filename.encode("utf-8")),
    }
    if image_format:
        feature.update({HEIGHT: _int(height), WIDTH: _int(width),
                        FORMAT: _bytes(image_format.encode("ascii"))})
    return tf.train.Example(features=tf.train.Features(feature=feature))


def read_split_images(split_dir: str, limit: int, feature: str = IMAGE_BYTES) -> list[bytes]:
    """The first `limit` encoded images of a split's gzipped TFRecords, files in name order."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    files = sorted(tf.io.gfile.glob(posixpath.join(split_dir, "*.gz")))
    if limit == 0 or not files:
        return []
    images = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit):
        example = tf.train.Example.FromString(record.numpy())
        values = example.features.feature[feature].bytes_list.value
        if len(values) != 1:
            raise ValueError(f"an example in {split_dir} has {len(values)} values for "
                             f"{feature!r}, expected one encoded image")
        images.append(values[0])
    return images
