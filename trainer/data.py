"""Input datasets: Transform's output (resized PNG bytes and labels) -> (uint8 images, labels)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.contract import LABEL, TRANSFORMED_IMAGE

_FEATURES = {
    TRANSFORMED_IMAGE: tf.io.FixedLenFeature([], tf.string),
    LABEL: tf.io.FixedLenFeature([], tf.int64),
}


def _parse(serialized: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    features = tf.io.parse_single_example(serialized, _FEATURES)
    image = tf.io.decode_png(features[TRANSFORMED_IMAGE], channels=3)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return image, features[LABEL]


def make_dataset(file_pattern: list[str] | str, image_size: int, batch_size: int,
                 shuffle: bool, seed: int = 42, memory_bytes: int = 0) -> tf.data.Dataset:
    """Batches of (uint8 images [N, S, S, 3], int64 labels [N]) from gzipped TFRecords.

    One pass over the files per epoch; training shuffles each epoch anew, through a shuffle
    buffer of 4,096 serialized examples: memory stays flat whatever the data's size. With
    `memory_bytes` > 0 (the Trainer's `images_in_memory_mb`), images whose decoded size is at
    most that are instead decoded once and held in memory, and each epoch gathers its batches
    from a new permutation: the cores that train no longer decode every PNG again each epoch.
    """
    records = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP")
    if memory_bytes:
        count = int(records.reduce(np.int64(0), lambda n, _: n + 1))
        if count * image_size * image_size * 3 <= memory_bytes:
            return batches_in_memory(_decode_all(records, count, image_size), batch_size,
                                     shuffle, seed)
    if shuffle:
        records = records.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    dataset = records.map(lambda s: _parse(s, image_size), num_parallel_calls=tf.data.AUTOTUNE)
    return without_autotuning(dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _files(file_pattern: list[str] | str) -> list[str]:
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else [
        f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise ValueError(f"no examples match {file_pattern}")
    return sorted(files)


def count_labels(file_pattern: list[str] | str, num_classes: int) -> list[int]:
    """Examples of each class index in gzipped TFRecords: one pass that parses the label only.

    A label outside [0, num_classes) is an error, not dropped: the head could not learn it.
    """
    labels = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP").batch(
        1024).map(lambda s: tf.io.parse_example(s, {LABEL: _FEATURES[LABEL]})[LABEL])
    counts = np.zeros(num_classes, np.int64)
    for batch in without_autotuning(labels):
        values = batch.numpy()
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"a label outside 0..{num_classes - 1} in {file_pattern}")
        counts += np.bincount(values, minlength=num_classes)
    return [int(n) for n in counts]


def sample_images(file_pattern: list[str] | str, image_size: int, count: int,
                  seed: int = 42) -> np.ndarray:
    """Up to `count` uint8 images [N, S, S, 3], drawn through the training shuffle buffer."""
    dataset = make_dataset(file_pattern, image_size, count, shuffle=True, seed=seed)
    for images, _ in dataset.take(1):
        return images.numpy()
    return np.zeros((0, image_size, image_size, 3), np.uint8)


def _decode_all(records: tf.data.Dataset, count: int, image_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Every record decoded, in file order: uint8 images [count, S, S, 3] and int64 labels."""
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    labels = np.empty(count, np.int64)
    start = 0
    decoded = records.map(lambda s: _parse(s, image_size), num_parallel_calls=tf.data.AUTOTUNE)
    for batch_images, batch_labels in without_autotuning(decoded.batch(256)):
        end = start + len(batch_labels)
        images[start:end], labels[start:end] = batch_images.numpy(), batch_labels.numpy()
        start = end
    return images, labels


def batches_in_memory(arrays: tuple[np.ndarray, ...], batch_size: int, shuffle: bool,
                      seed: int = 42) -> tf.data.Dataset:
    """Batches of rows of `arrays` (equal first dimensions), held in memory as tensors: in their
    order, or with `shuffle` by a new permutation each epoch (gathered, no shuffle buffer)."""
    tensors = tuple(tf.constant(array) for array in arrays)
    count = int(tensors[0].shape[0])
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return without_autotuning(indices.batch(batch_size)
                              .map(lambda i: tuple(tf.gather(t, i) for t in tensors))
                              .prefetch(tf.data.AUTOTUNE))


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning thread off; AUTOTUNE then means as many parallel
    calls as the cores, and a default prefetch buffer.

    Why: in TensorFlow 2.16, destroying an iterator waits for that thread's current sleep, which
    grows to seconds over a run. Keras makes an iterator per epoch for the training data and one
    per validation, and `fit` waits for each to go; the training steps themselves are no slower
    with a fixed parallelism of the cores, which is what autotuning settles on anyway.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
