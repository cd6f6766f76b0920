"""Pretrains InceptionV3 on a labelled source dataset into a no-top weights file.

This stands in for ImageNet where its weights cannot be downloaded. It is ordinary supervised
training of the whole network (every layer trainable) on a *source* task, whose weights the
pipeline then loads and freezes for the *target* task, exactly as it would ImageNet's: the
file has the layout of Keras' `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5` and
loads with `InceptionV3(include_top=False, weights=None).load_weights(path)`.

Only the layers up to `cut_layer` are trained (the classifier reads that layer through global
average pooling); the layers above it keep their random initial weights, since the pipeline
never uses them. The images are fed under `input_scaling` (`trainer.scaling`), which is then
written into the file's attributes, so the pipeline feeds the base the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

from trainer import scaling, tracing

# BatchNorm's default momentum (0.99) needs thousands of steps before its moving statistics
# match the data; a short pretraining would leave them near their initial values, and the frozen
# base (which runs BatchNorm in inference mode) would see features unlike those it learned on.
BATCHNORM_MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    """The weights file written, and how well the source task was learned."""

    weights_path: Path
    class_names: tuple[str, ...]
    train_images: int
    val_images: int
    val_accuracy: float
    input_scaling: str = scaling.INCEPTION


def _datasets(data_dir: Path, image_size: int, batch_size: int, seed: int):
    return tf.keras.utils.image_dataset_from_directory(
        str(data_dir), image_size=(image_size, image_size), batch_size=batch_size,
        label_mode="int", seed=seed, validation_split=0.2, subset="both")


def build_pretrain_model(num_classes: int, image_size: int, cut_layer: str,
                         input_scaling: str = scaling.INCEPTION
                         ) -> tuple[tf.keras.Model, tf.keras.Model]:
    """(whole classifier, the InceptionV3 no-top model whose weights get saved)."""
    tracing.skip_autograph_for_tf_keras()
    inception = tf.keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    for layer in inception.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = BATCHNORM_MOMENTUM
    images = tf.keras.Input((image_size, image_size, 3))
    x = scaling.preprocess_layer(input_scaling)(images)
    x = tf.keras.Model(inception.input, inception.get_layer(cut_layer).output)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    model = tf.keras.Model(images, outputs)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, inception


def pretrain_base(data_dir: Path, weights_path: Path, image_size: int = 150, epochs: int = 6,
                  batch_size: int = 32, cut_layer: str = "mixed7", seed: int = 0,
                  input_scaling: str = scaling.INCEPTION) -> PretrainResult:
    """Trains on `data_dir/<class>/<image>` (80% train, 20% validation), fed under
    `input_scaling`, and saves the base with that convention in the file's attributes."""
    scaling.check_convention(input_scaling)
    tf.keras.utils.set_random_seed(seed)
    train, val = _datasets(data_dir, image_size, batch_size, seed)
    class_names = tuple(train.class_names)
    model, inception = build_pretrain_model(len(class_names), image_size, cut_layer,
                                            input_scaling)
    model.fit(train.prefetch(2), epochs=epochs, verbose=2)
    # Validation runs BatchNorm in inference mode, as the frozen base will.
    _, val_accuracy = model.evaluate(val, verbose=0)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    inception.save_weights(str(weights_path), save_format="h5")
    scaling.record_convention(str(weights_path), input_scaling)
    return PretrainResult(weights_path, class_names, len(train.file_paths), len(val.file_paths),
                          float(val_accuracy), input_scaling)
