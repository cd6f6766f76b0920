"""The model: a frozen InceptionV3 cut at a named layer, and a small dense head on top.

The seeds' semantics, made explicit:
- `include_top=False` drops InceptionV3's ImageNet classifier; what is left is a feature
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

from trainer import augment, tracing
from trainer.hparams import HParams

IMAGE_KEY = "image"


def build_base(image_size: int, weights: str, cut_layer: str = "mixed7") -> tf.keras.Model:
    """InceptionV3 without its top, cut at `cut_layer`, with every layer frozen.

    Args:
        image_size: height and width of the input images, at least 75.
        weights: 'imagenet' (Keras downloads the no-top weights), 'none' (random) or the path of
            a local `.h5` file of no-top weights, loaded as the seeds do with `load_weights`.
        cut_layer: the layer whose output becomes the features, e.g. 'mixed7'.
    """
    input_shape = (image_size, image_size, 3)
    keras_weights = "imagenet" if weights == "imagenet" else None
    inception = tf.keras.applications.InceptionV3(
        include_top=False, weights=keras_weights, input_shape=input_shape)
    if weights not in ("imagenet", "none"):
        inception.load_weights(weights)
    for layer in inception.layers:
        layer.trainable = False
    base = tf.keras.Model(inception.input, inception.get_layer(cut_layer).output,
                          name=f"inception_v3_{cut_layer}")
    base.trainable = False
    return base


def build_model(hp: HParams, base: tf.keras.Model | None = None) -> tf.keras.Model:
    """The whole classifier, compiled: uint8 images [N, S, S, 3] in, class probabilities out.

    Two classes get one sigmoid unit (the probability of `class_names[1]`); more get a softmax.
    """
    tracing.skip_autograph_for_tf_keras()
    if base is None:
        base = build_base(hp.image_size, hp.weights, hp.cut_layer)
    images = tf.keras.Input((hp.image_size, hp.image_size, 3), dtype=tf.uint8, name=IMAGE_KEY)
    # InceptionV3's own preprocessing (x / 127.5 - 1) as a layer, so the model takes raw pixels.
    x = tf.keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="inception_preprocess")(images)
    if hp.augment:
        x = augment.build_augmentation(hp.seed)(x)
    features = base(x, training=False)
    x = tf.keras.layers.Flatten(name="flatten")(features)
    for i, units in enumerate(hp.dense_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    x = tf.keras.layers.Dropout(hp.dropout_rate, seed=hp.seed, name="dropout")(x)
    if hp.num_classes == 2:
        outputs = tf.keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
        loss = "binary_crossentropy"
        accuracy = tf.keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        outputs = tf.keras.layers.Dense(hp.num_classes, activation="softmax", name="probability")(x)
        loss = "sparse_categorical_crossentropy"
        accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model = tf.keras.Model(images, outputs, name="image_classifier")
    model.compile(optimizer=tf.keras.optimizers.RMSprop(learning_rate=hp.learning_rate),
                  loss=loss, metrics=[accuracy])
    return model


def class_probabilities(outputs: tf.Tensor) -> tf.Tensor:
    """[N, C] probabilities from the head's output (a sigmoid's p becomes [1 - p, p])."""
    if outputs.shape[-1] == 1:
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs
