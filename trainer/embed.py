"""The frozen base's features of encoded images, for the data audit (`components/data_audit`).

The same base, weights, cut layer and input convention as the Trainer's model (from the run's
`HParams`), images decoded and resized as Transform does, and the cut layer's output averaged
over its positions: a vector per image (768 values for InceptionV3's `mixed7`) that a small
shift barely moves, whatever pooling the head uses. The audit runs before Transform and the
Trainer, so it computes these itself, and decides an `auto` input scaling (a compiled
pipeline's, with a weights file) as the Trainer does, by `trainer.scaling.resolve`, from its
first images. For the eval split it also keeps the features the Trainer's head reads, so the
Trainer's epochs validate on them (`trainer.eval_features`). The DataAudit executor loads
`make_embedder` by its name in `trainer.contract.EMBED_FN`, as TFX loads `run_fn`, so components
never import Keras models.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from trainer import eval_features, scaling
from trainer import model as model_lib
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


def build_extractor(hp: HParams, head_features: bool = False) -> tf.keras.Model:
    """uint8 images [N, S, S, 3] in, the cut layer's output averaged over positions out; with
    `head_features`, also the pooled features the Trainer's head reads (`build_features`)."""
    images, cut, pooled = model_lib.build_features(hp)
    features = tf.keras.layers.GlobalAveragePooling2D(name="audit_pool")(cut)
    outputs = [features, pooled] if head_features else features
    return tf.keras.Model(images, outputs, name="audit_features")


class Embedder:
    """Encoded images in, float32 features [N, D] out; the base is built at the first images
    (`auto` input scaling may need them). With `features_dir`, the images given with labels
    (the eval split's) also leave the head's features there for the Trainer
    (`trainer.eval_features`); `finish` completes that folder.

    Raises tf.errors.InvalidArgumentError for bytes Transform would refuse too (the ExampleGen
    quarantines those, so its examples never hold any).
    """

    def __init__(self, hp: HParams, max_pixels: int, features_dir: str | None = None) -> None:
        self._hp = hp
        self._features_dir = features_dir
        size = hp.image_size
        self._decode = tf.function(
            lambda batch: tf.map_fn(lambda b: decode_and_resize(b, size, max_pixels), batch,
                                    fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8)),
            input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        self._extract = None
        self._writer: eval_features.Writer | None = None

    def _build(self, sample: np.ndarray) -> None:
        hp = resolved(self._hp, sample)
        extractor = build_extractor(hp, head_features=self._features_dir is not None)
        self._extract = tf.function(
            lambda x: tf.nest.map_structure(lambda t: tf.cast(t, tf.float32),
                                            extractor(x, training=False)),
            input_signature=[tf.TensorSpec([None, hp.image_size, hp.image_size, 3], tf.uint8)],
            autograph=False)
        if self._features_dir is not None:
            self._writer = eval_features.Writer(
                self._features_dir, int(extractor.outputs[1].shape[-1]),
                eval_features.features_config(hp))

    def __call__(self, image_bytes: Sequence[bytes], labels: Sequence[int] | None = None
                 ) -> np.ndarray:
        """The audit's features of `image_bytes`; with `labels`, the head's features are kept."""
        out = []
        for start in range(0, len(image_bytes), DETECTION_BATCH):
            images = self._decode(tf.constant(list(image_bytes[start:start + DETECTION_BATCH])))
            if self._extract is None:
                self._build(images.numpy())
            result = self._extract(images)
            if self._writer is None:
                out.append(result.numpy())
                continue
            features, head = (t.numpy() for t in result)
            out.append(features)
            if labels is not None:
                self._writer.add(head, np.asarray(labels[start:start + DETECTION_BATCH]),
                                 eval_features.pixel_keys(images.numpy()))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def finish(self) -> dict[str, Any] | None:
        """Completes the features folder (nothing was embedded: an empty one); its manifest."""
        if self._features_dir is None:
            return None
        if self._writer is None:  # no image at all: nothing to build the base for
            self._writer = eval_features.Writer(self._features_dir, 0, {})
            self._writer.drop("the data audit read no images")
        return self._writer.finish()


def make_embedder(hparams_config: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS,
                  features_dir: str | None = None) -> Embedder:
    """The DataAudit's embedder (`trainer.contract.EMBED_FN`) for the run's hyperparameters."""
    return Embedder(HParams.from_config(hparams_config), max_pixels, features_dir)
