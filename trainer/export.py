"""Serving signatures: the model takes raw encoded images; clients never re-implement preprocessing.

- `serving_default` (TF Serving's Predict API): `image_bytes` [N] tf.string (JPEG, PNG, BMP or GIF
  bytes) -> `probabilities` [N, C] float32 and `classes` [N] tf.string (the predicted class names).
- `from_examples` (TFMA's Evaluator): serialized raw `tf.Example`s [N] -> `probability`, the head's
  own output ([N, 1] sigmoid or [N, C] softmax).
Both run Transform's graph first, then the model with `training=False`. Transform's graph refuses
images over its pixel limit before decoding them (`trainer.image_header`), and `serving_default`
refuses requests of more than `max_rows` images (InvalidArgumentError: TF Serving's
INVALID_ARGUMENT), so one request's memory is bounded in TF Serving too. `from_examples` has no
row limit: TFMA sends it batches of its own choosing.

The SavedModel holds a plain `tf.Module` (the variables, Transform's layer, the functions), not the
Keras object: Keras would trace every layer's call for its own metadata, which for InceptionV3
costs more than the rest of the export together, and loading it back would rebuild every layer.
The functions are traced without autograph (they have no data-dependent Python control flow),
which makes tracing much faster.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
import tensorflow_transform as tft

from trainer import model as model_lib
from trainer.contract import (
    CLASSES,
    DEFAULT_MAX_ROWS,
    EXAMPLES_INPUT,
    EXAMPLES_SIGNATURE,
    HPARAMS_FILE,
    IMAGE_BYTES,
    PROBABILITIES,
    PROBABILITY,
    SERVING_SIGNATURE,
    TRANSFORMED_IMAGE,
)
from trainer.hparams import HParams
from trainer.image_header import checked_rows
from trainer.transform import decode_png_batch


def build_serving_module(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         class_names: tuple[str, ...], image_size: int,
                         max_rows: int = DEFAULT_MAX_ROWS
                         ) -> tuple[tf.Module, dict[str, tf.types.experimental.ConcreteFunction]]:
    """A module with the model's variables and Transform's graph, and the two signatures."""
    module = tf.Module()
    module.model_variables = list(model.variables)
    module.tft_layer = tf_transform_output.transform_features_layer()
    module.class_names = tf.Variable(list(class_names), trainable=False, name="class_names")
    raw_spec = {k: v for k, v in tf_transform_output.raw_feature_spec().items()
                if k == IMAGE_BYTES}

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="images")])
    def predict_images(images):
        return model(images, training=False)

    def predict_raw(raw_features):
        transformed = module.tft_layer(raw_features)
        return predict_images(decode_png_batch(transformed[TRANSFORMED_IMAGE], image_size))

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)])
    def serve_image_bytes(image_bytes):
        image_bytes = checked_rows(image_bytes, max_rows)
        outputs = predict_raw({IMAGE_BYTES: tf.reshape(image_bytes, [-1, 1])})
        probabilities = model_lib.class_probabilities(outputs)
        classes = tf.gather(module.class_names, tf.argmax(probabilities, axis=-1))
        return {PROBABILITIES: probabilities, CLASSES: classes}

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(serialized):
        return {PROBABILITY: predict_raw(tf.io.parse_example(serialized, raw_spec))}

    module.predict_images = predict_images
    return module, {
        SERVING_SIGNATURE: serve_image_bytes.get_concrete_function(),
        EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
    }


def export(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
           class_names: tuple[str, ...], image_size: int, serving_model_dir: str,
           hparams: HParams | None = None, max_rows: int = DEFAULT_MAX_ROWS) -> None:
    """Saves the model for TF Serving and TFMA, with both signatures, and `hparams` if given."""
    module, signatures = build_serving_module(model, tf_transform_output, class_names, image_size,
                                              max_rows)
    tf.saved_model.save(module, serving_model_dir, signatures=signatures)
    if hparams is not None:
        path = os.path.join(serving_model_dir, HPARAMS_FILE)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(hparams.to_config(), f, indent=1)
