"""The seeds' recipe: the classic Keras transfer-learning script the pipeline is measured against.

InceptionV3 (`include_top=False`, a no-top weights file, every layer frozen) cut at `mixed7`,
Flatten, Dense(1024, relu), Dropout(0.2), Dense(1, sigmoid), RMSprop(1e-4), fed by
`ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
shear_range=0.2, zoom_range=0.2, horizontal_flip=True).flow_from_directory`. How pixels are
scaled is the caller's: the seeds rescale by 1/255 (`UNIT`); a base trained on `x / 127.5 - 1`
needs `INCEPTION`. Shared by `benchmarks.train` and `benchmarks.transfer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

AUGMENTATION = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                    shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
# `preprocessing_function`s: the same cost as `rescale`, and any affine map fits.
UNIT: Callable[[np.ndarray], np.ndarray] = lambda x: x / 255.0  # noqa: E731
INCEPTION: Callable[[np.ndarray], np.ndarray] = lambda x: x / 127.5 - 1.0  # noqa: E731


def recipe_generator(root: Path, class_names: Sequence[str], size: int, batch_size: int,
                     preprocess: Callable[[np.ndarray], np.ndarray], augment: bool,
                     shuffle: bool):
    """The recipe's ImageDataGenerator(...).flow_from_directory on `root/<class>/`."""
    generator = tf.keras.preprocessing.image.ImageDataGenerator(
        preprocessing_function=preprocess, **(AUGMENTATION if augment else {}))
    return generator.flow_from_directory(str(root), target_size=(size, size),
                                         batch_size=batch_size, class_mode="binary",
                                         classes=list(class_names), shuffle=shuffle, seed=0)


def recipe_model(weights: Path, size: int) -> tf.keras.Model:
    """The recipe's model, as its script builds it."""
    layers = tf.keras.layers
    base = tf.keras.applications.InceptionV3(input_shape=(size, size, 3), include_top=False,
                                             weights=None)
    base.load_weights(str(weights))
    for layer in base.layers:
        layer.trainable = False
    x = layers.Flatten()(base.get_layer("mixed7").output)
    x = layers.Dense(1024, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(1, activation="sigmoid")(x)
    model = tf.keras.Model(base.input, x)
    model.compile(optimizer=tf.keras.optimizers.RMSprop(learning_rate=1e-4),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train_and_evaluate(train_root: Path, eval_root: Path, class_names: Sequence[str],
                       weights: Path, size: int, batch_size: int, epochs: int,
                       preprocess: Callable[[np.ndarray], np.ndarray], augment: bool,
                       callbacks: Sequence[tf.keras.callbacks.Callback] = ()
                       ) -> dict[str, Any]:
    """Trains the recipe (seed 0) on `train_root`; the model and its accuracy on `eval_root`."""
    tf.keras.utils.set_random_seed(0)
    model = recipe_model(weights, size)
    model.fit(recipe_generator(train_root, class_names, size, batch_size, preprocess, augment,
                               shuffle=True),
              epochs=epochs, callbacks=list(callbacks), verbose=0)
    _, accuracy = model.evaluate(recipe_generator(eval_root, class_names, size, batch_size,
                                                  preprocess, False, False), verbose=0)
    return {"model": model, "accuracy": float(accuracy)}
