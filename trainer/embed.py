"""The frozen base's features of encoded images, for the data audit (`components/data_audit`).

The same base, weights, cut layer and input convention as the Trainer's model (from the run's
`HParams`), images decoded and resized as Transform does, and the cut layer's output averaged
over its positions: a vector per image (768 values for InceptionV3's `mixed7`) that a small
shift barely moves, whatever pooling the head uses. The audit runs before Transform and the
Trainer, so it computes these itself; the DataAudit executor loads `make_embedder` by its name
in `trainer.contract.EMBED_FN`, as TFX loads `run_fn`, so components never import Keras models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from trainer import model as model_lib
from trainer import scaling, tracing
from trainer.contract import DEFAULT_MAX_PIXELS
from trainer.hparams import HParams
from trainer.transform import decode_and_resize

BATCH_SIZE = 32


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
    extractor = build_extractor(hp)
    size = hp.image_size
    decode = tf.function(
        lambda batch: tf.map_fn(lambda b: decode_and_resize(b, size, max_pixels), batch,
                                fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8)),
        input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    extract = tf.function(lambda x: tf.cast(extractor(x, training=False), tf.float32),
                          input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
                          autograph=False)

    def embed(image_bytes: Sequence[bytes]) -> np.ndarray:
        out = [np.zeros((0, int(extractor.output.shape[-1])), np.float32)]
        for start in range(0, len(image_bytes), BATCH_SIZE):
            batch = tf.constant(list(image_bytes[start:start + BATCH_SIZE]), tf.string)
            out.append(extract(decode(batch)).numpy())
        return np.concatenate(out)

    return embed
