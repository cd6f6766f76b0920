"""Plain-Python part of the image ExampleGen: one image file -> one tf.train.Example."""

from __future__ import annotations

import posixpath

import tensorflow as tf

IMAGE_BYTES = "image_bytes"
LABEL = "label"
LABEL_NAME = "label_name"
FILENAME = "filename"


def class_names_in(data_root: str) -> tuple[str, ...]:
    """The class names of a data folder: its visible subfolders, sorted; label i is name i."""
    names = (n.rstrip("/") for n in tf.io.gfile.listdir(data_root))
    return tuple(sorted(n for n in names if not n.startswith(".")
                        and tf.io.gfile.isdir(posixpath.join(data_root, n))))


def relative_image_path(path: str, input_base: str) -> tuple[str, str]:
    """(class name, path relative to the data root) of `input_base/<class>/<file>`."""
    relative = path[len(input_base):].lstrip("/") if path.startswith(input_base) else path
    parts = relative.split("/")
    if len(parts) < 2:
        raise ValueError(f"{path} is not inside a class folder of {input_base}")
    return parts[-2], relative


def make_example(image_bytes: bytes, label: int, label_name: str,
                 filename: str) -> tf.train.Example:
    """The example for one image: its original encoded bytes, never decoded pixels."""

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE_BYTES: _bytes(image_bytes),
        LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        LABEL_NAME: _bytes(label_name.encode("utf-8")),
        FILENAME: _bytes(filename.encode("utf-8")),
    }))


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
