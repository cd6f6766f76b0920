"""The model: a frozen pretrained base cut at a named layer, and a small dense head on top.

What each transfer-learning choice means here:
- `include_top=False` drops the base's ImageNet classifier; what is left is a feature
  extractor whose `cut_layer` output (the bottleneck we build on; `mixed7` is 7x7x768 at 150 px)
  feeds our head.
- `trainable=False` on every base layer freezes its weights: `fit` never changes them.
- The base is called with `training=False`, so its BatchNorm layers use their moving statistics
  (inference mode) whatever phase the outer model is in, and would even after unfreezing.
- Dropout sits after the last Dense layer: in training it zeroes a fraction `dropout_rate` of that
  layer's outputs (and scales the rest up); at inference it is the identity. It never touches the
  base, frozen or not.
"""

from __future__ import annotations

import tensorflow as tf

from trainer import augment, devices, scaling, tracing
from trainer.bases import build_application, get_base_spec
from trainer.hparams import HParams

IMAGE_KEY = "image"


def build_base(image_size: int, weights: str, cut_layer: str = "mixed7",
               base: str = "inception_v3", weights_sha256: str | None = None) -> tf.keras.Model:
    """The base without its top, cut at `cut_layer`, with every layer frozen.

    Args:
        image_size: height and width of the input images.
        weights: 'imagenet' (Keras downloads the no-top weights), 'none' (random) or the path of
            a local `.h5` file of no-top weights, loaded with Keras' `load_weights`.
        cut_layer: the layer whose output becomes the features, e.g. 'mixed7'.
        base: a name in `trainer.bases.BASES`.
        weights_sha256: when given, a local weights file must have this digest.
    """
    application = build_application(get_base_spec(base), image_size, weights, weights_sha256)
    for layer in application.layers:
        layer.trainable = False
    names = [layer.name for layer in application.layers]
    if cut_layer not in names:
        raise ValueError(f"{base} has no layer {cut_layer!r}")
    cut = tf.keras.Model(application.input, application.get_layer(cut_layer).output,
                         name=f"{base}_{cut_layer}")
    cut.trainable = False
    return cut


def unfreeze_from(base: tf.keras.Model, layer_name: str) -> int:
    """Makes `layer_name` and every layer after it trainable; returns how many layers that is.

    BatchNorm layers become trainable too (their scale and offset), but their moving statistics
    stay fixed, because the model calls the base with `training=False`.
    """
    names = [layer.name for layer in base.layers]
    if layer_name not in names:
        raise ValueError(f"cannot fine-tune from {layer_name!r}: the base has no such layer")
    first = names.index(layer_name)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= first
    return len(base.layers) - first


def compile_model(model: tf.keras.Model, num_classes: int, learning_rate: float,
                  compilation: devices.Compilation = devices.NO_XLA) -> None:
    """RMSprop, cross-entropy and accuracy; call again after changing any `trainable` flag.

    `compilation.xla_update` compiles RMSprop's update with XLA (one fused pass over each
    variable, see `trainer.devices`); tf_keras would reset it to False without a GPU, so it is
    set on the optimizer after construction.
    """
    if num_classes == 2:
        loss = "binary_crossentropy"
        accuracy = tf.keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = "sparse_categorical_crossentropy"
        accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    optimizer = tf.keras.optimizers.RMSprop(learning_rate=learning_rate)
    optimizer.jit_compile = compilation.xla_update or compilation.jit_compile
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy],
                  jit_compile=compilation.jit_compile)


def build_features(hp: HParams, base: tf.keras.Model | None = None
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The model below its head: the uint8 images input, the base's output (the cut layer's
    map) and the pooled features the head reads. The data audit builds its features with this
    too (`trainer.embed`), so what it keeps for the Trainer is what the Trainer's model computes.
    """
    tracing.skip_autograph_for_tf_keras()
    if base is None:
        base = build_base(hp.image_size, hp.weights, hp.resolved_cut_layer, hp.base,
                          hp.weights_sha256)
    images = tf.keras.Input((hp.image_size, hp.image_size, 3), dtype=tf.uint8, name=IMAGE_KEY)
    # The base fed as it was trained, as a layer: the model (and so serving) takes raw pixels.
    x = scaling.preprocess_layer(hp.resolved_input_scaling)(images)
    if hp.augment.enabled:
        x = augment.build_augmentation(hp.augment, hp.seed)(x)
    cut = base(x, training=False)
    if hp.resolved_pooling == "avg":
        pooled = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(cut)
    else:
        pooled = tf.keras.layers.Flatten(name="flatten")(cut)
    return images, cut, pooled


def build_model(hp: HParams, base: tf.keras.Model | None = None,
                compilation: devices.Compilation = devices.NO_XLA) -> tf.keras.Model:
    """The whole classifier, compiled: uint8 images [N, S, S, 3] in, class probabilities out.

    Two classes get one sigmoid unit (the probability of `class_names[1]`); more get a softmax.
    The output layer computes in float32 whatever the mixed-precision policy.
    """
    images, _, pooled = build_features(hp, base)
    model = tf.keras.Model(images, head(pooled, hp), name="image_classifier")
    compile_model(model, hp.num_classes, hp.learning_rate, compilation)
    return model


def head(features: tf.Tensor, hp: HParams) -> tf.Tensor:
    """The head on pooled features: `hp.dense_units` ReLU layers, Dropout, the output layer.

    The Tuner's trials build the same head on cached features (`trainer.tune`).
    """
    x = features
    for i, units in enumerate(hp.dense_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    x = tf.keras.layers.Dropout(hp.dropout_rate, seed=hp.seed, name="dropout")(x)
    units, activation = (1, "sigmoid") if hp.num_classes == 2 else (hp.num_classes, "softmax")
    return tf.keras.layers.Dense(units, activation=activation, dtype=devices.OUTPUT_DTYPE,
                                 name="probability")(x)


def get_base(model: tf.keras.Model) -> tf.keras.Model:
    """The nested base model inside a model from `build_model`.

    The augmentation block is a nested (Sequential) model too, so it is skipped by type.
    """
    nested = [layer for layer in model.layers
              if isinstance(layer, tf.keras.Model) and not isinstance(layer, tf.keras.Sequential)]
    if len(nested) != 1:
        raise ValueError(f"expected one nested base model in {model.name}, found "
                         f"{[layer.name for layer in nested]}")
    return nested[0]


def class_probabilities(outputs: tf.Tensor) -> tf.Tensor:
    """[N, C] probabilities from the head's output (a sigmoid's p becomes [1 - p, p])."""
    if outputs.shape[-1] == 1:
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs
