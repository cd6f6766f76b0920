"""The frozen base's features of encoded images, for the data audit (`components/data_audit`).

The same base, weights, cut layer and input convention as the Trainer's model (from the run's
`HParams`), images decoded and resized as Transform does, and the cut layer's output averaged
over its positions: a vector per image (768 values for InceptionV3's `mixed7`) that a small
shift barely moves, whatever pooling the head uses. The audit runs before Transform and the
Trainer, so it computes these itself, and decides an `auto` input scaling (a compiled
pipeline's, with a weights file) as the Trainer does, by `trainer.scaling.resolve`, from its
first images. The DataAudit executor loads `make_embedder` by its name in
`trainer.contract.EMBED_FN`, as TFX loads `run_fn`, so components never import Keras models.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from trainer import model as model_lib
from trainer import scaling, tracing
from trainer.bases import build_application
from trainer.contract import DEFAULT_MAX_PIXELS
from trainer.hparams import HParams
from trainer.transform import decode_and_resize

DETECTION_BATCH = scaling.DETECTION_IMAGES  # images per forward pass; the first decides `auto`


def resolved(hp: HParams, sample: np.ndarray) -> HParams:
    """`hp` with `auto` input scaling decided from `sample` (uint8 [N, S, S, 3]), or as is."""
    if hp.input_scaling != scaling.AUTO:
        return hp
    resolution = scaling.resolve(
        hp.input_scaling, hp.base_spec.convention, hp.weights,
        lambda: build_application(hp.base_spec, hp.image_size, hp.weights, hp.weights_sha256),
        lambda: sample)
    logging.info("data audit input scaling: %s", resolution.describe())
    return dataclasses.replace(hp, input_scaling=resolution.convention,
                               input_scaling_source=resolution.source)


def build_extractor(hp: HParams) -> tf.keras.Model:
    """uint8 images [N, S, S, 3] in, the cut layer's output averaged over positions out."""
    tracing.skip_autograph_for_tf_keras()
    base = model_lib.build_base(hp.image_size, hp.weights, hp.resolved_cut_layer, hp.base,
                                hp.weights_sha256)
    images = tf.keras.Input((hp.image_size, hp.image_size, 3), dtype=tf.uint8)
    x = scaling.preprocess_layer(hp.resolved_input_scaling)(images)
    x = base(x, training=False)
    features = tf.keras.layers.GlobalAveragePooling2D(name="audit_pool")(x)
    return tf.keras.Model(images, features, name="audit_features")


def make_embedder(hparams_config: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS
                  ) -> Callable[[Sequence[bytes]], np.ndarray]:
    """A function from encoded images to float32 features [N, D]; the base is built once.

    Raises tf.errors.InvalidArgumentError for bytes Transform would refuse too (the ExampleGen
    quarantines those, so its examples never hold any).
    """
    hp = HParams.from_config(hparams_config)
    size = hp.image_size
    decode = tf.function(
        lambda batch: tf.map_fn(lambda b: decode_and_resize(b, size, max_pixels), batch,
                                fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8)),
        input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    built: list = []  # the extractor, built at the first images (`auto` may need them)

    def extract(images: tf.Tensor) -> np.ndarray:
        if not built:
            extractor = build_extractor(resolved(hp, images.numpy()))
            built.append(tf.function(
                lambda x: tf.cast(extractor(x, training=False), tf.float32),
                input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
                autograph=False))
        return built[0](images).numpy()

    def embed(image_bytes: Sequence[bytes]) -> np.ndarray:
        out = [extract(decode(tf.constant(list(image_bytes[start:start + DETECTION_BATCH]))))
               for start in range(0, len(image_bytes), DETECTION_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    return embed
