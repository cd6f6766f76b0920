"""In-graph augmentation, active only in training.

Keras preprocessing layers transform their input only when called with `training=True` (as `fit`
does) and pass it through unchanged at inference, so the exported model serves un-augmented.
The ranges follow the seeds' `ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
height_shift_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode='nearest')`.
"""

from __future__ import annotations

import tensorflow as tf

ROTATION_DEGREES = 40.0
SHIFT_FRACTION = 0.2
ZOOM_FRACTION = 0.2


def build_augmentation(seed: int) -> tf.keras.Sequential:
    """Random flip, rotation, shift and zoom as one block of layers."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.RandomFlip("horizontal", seed=seed),
            tf.keras.layers.RandomRotation(ROTATION_DEGREES / 360.0, fill_mode="nearest",
                                           seed=seed + 1),
            tf.keras.layers.RandomTranslation(SHIFT_FRACTION, SHIFT_FRACTION,
                                              fill_mode="nearest", seed=seed + 2),
            tf.keras.layers.RandomZoom(ZOOM_FRACTION, fill_mode="nearest", seed=seed + 3),
        ],
        name="augmentation",
    )
