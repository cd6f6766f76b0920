"""Input datasets: Transform's output (resized PNG bytes and labels) -> (uint8 images, labels)."""

from __future__ import annotations

import tensorflow as tf

from trainer.transform import LABEL_KEY, TRANSFORMED_IMAGE_KEY

_FEATURES = {
    TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}


def _parse(serialized: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    features = tf.io.parse_single_example(serialized, _FEATURES)
    image = tf.io.decode_png(features[TRANSFORMED_IMAGE_KEY], channels=3)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return image, features[LABEL_KEY]


def make_dataset(file_pattern: list[str] | str, image_size: int, batch_size: int,
                 shuffle: bool, seed: int = 42) -> tf.data.Dataset:
    """Batches of (uint8 images [N, S, S, 3], int64 labels [N]) from gzipped TFRecords.

    One pass over the files; training shuffles each epoch anew.
    """
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else [
        f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise ValueError(f"no examples match {file_pattern}")
    dataset = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda s: _parse(s, image_size), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
