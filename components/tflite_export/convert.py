"""The SavedModel's classifier as a TFLite flatbuffer: a decoded image in, class probabilities out.

The exported SavedModel keeps `predict_images` (`trainer/export.py`): uint8 [N, S, S, 3] pixels,
already decoded and resized by Transform's graph, through the input scaling, the base and the
head. That function, with one image per call and the sigmoid's p turned into [1 - p, p], is what
is converted, so a TFLite model takes what a phone's camera pipeline has at hand (RGB pixels,
resized to S x S) and needs no preprocessing code: the input scaling is inside, as in serving.

- `float16`: weights stored as float16 (half the size), computed in float32.
- `int8`: full-integer post-training quantization calibrated on training images; the uint8 input
  is cast and quantized inside the model, and the output is dequantized to float32
  probabilities.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from trainer.contract import HPARAMS_FILE, PROBABILITIES

FLOAT16, INT8 = "float16", "int8"
FORMATS = (FLOAT16, INT8)
INPUT_NAME = "image"
PREDICT_IMAGES = "predict_images"  # the SavedModel's function from pixels to the head's output
LABELS_FILE = "labels.txt"  # one class name per line, in output order (TFLite's usual labels)
# Where the pusher puts accepted models inside the pushed version: TF Serving ignores
# assets.extra/ (it reads only its warmup file there), and the files come and go with the version.
PUSH_SUBDIR = "assets.extra/tflite"


def parse_formats(text: str) -> tuple[str, ...]:
    """'float16,int8' -> ('float16', 'int8'); ValueError naming what is wrong."""
    names = [part.strip() for part in text.split(",")]
    unknown = [name for name in names if name not in FORMATS]
    if not text.strip() or unknown:
        raise ValueError(f"{text!r}: each value must be one of {', '.join(FORMATS)}, "
                         "comma-separated, e.g. float16,int8")
    return tuple(dict.fromkeys(names))  # in the order given, each once


def model_file(fmt: str) -> str:
    """The file name of one format's model, e.g. 'model_int8.tflite'."""
    return f"model_{fmt}.tflite"


def metadata_file(fmt: str) -> str:
    """The JSON that travels beside one format's model: class names and input convention."""
    return f"model_{fmt}.json"


class Classifier:
    """A loaded SavedModel's pixels-to-probabilities path, and what a TFLite model of it needs."""

    def __init__(self, saved_model_dir: str) -> None:
        """Loads the SavedModel; ValueError when it has no `predict_images` (an older export)."""
        self.saved_model_dir = saved_model_dir
        self.loaded = tf.saved_model.load(saved_model_dir)
        if not hasattr(self.loaded, PREDICT_IMAGES):
            raise ValueError(f"the SavedModel at {saved_model_dir} has no {PREDICT_IMAGES} "
                             "function to convert; retrain it with this version of imgpipe")
        predict = getattr(self.loaded, PREDICT_IMAGES)
        self.image_size = int(predict.input_signature[0].shape[1])
        self.class_names = tuple(name.decode("utf-8")
                                 for name in self.loaded.class_names.numpy().tolist())
        self.hparams = _read_hparams(saved_model_dir)

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([1, self.image_size, self.image_size, 3], tf.uint8, name=INPUT_NAME)])
        def classify(image):
            outputs = predict(image)
            if outputs.shape[-1] == 1:  # one sigmoid unit: p of class 1
                outputs = tf.concat([1.0 - outputs, outputs], axis=-1)
            return {PROBABILITIES: outputs}

        self.function = classify.get_concrete_function()

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """[1, C] float32 class probabilities of one uint8 [1, S, S, 3] image."""
        return self.function(tf.constant(image, tf.uint8))[PROBABILITIES].numpy()

    def convert(self, fmt: str, representative_images: Sequence[np.ndarray] = ()) -> bytes:
        """The TFLite flatbuffer of `fmt`; int8 needs representative uint8 [S, S, 3] images."""
        converter = tf.lite.TFLiteConverter.from_concrete_functions([self.function], self.loaded)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if fmt == FLOAT16:
            converter.target_spec.supported_types = [tf.float16]
        elif fmt == INT8:
            if not len(representative_images):
                raise ValueError("int8 quantization needs representative training images")

            def representative() -> Iterator[list[np.ndarray]]:
                for image in representative_images:
                    yield [np.asarray(image, np.uint8)[np.newaxis]]

            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.float32
        else:
            raise ValueError(f"unknown TFLite format {fmt!r}; one of {', '.join(FORMATS)}")
        return converter.convert()

    def metadata(self, fmt: str) -> dict[str, Any]:
        """What a client needs besides the file: the classes in output order, the input."""
        scaling = self.hparams.get("input_scaling")
        return {
            "format": fmt,
            "class_names": list(self.class_names),
            "input": {
                "name": INPUT_NAME, "dtype": "uint8",
                "shape": [1, self.image_size, self.image_size, 3],
                "pixels": "RGB, 0-255, the image resized to the shape (bilinear, antialiased) "
                          "as imgpipe's Transform does; no scaling by the caller",
                "input_scaling_inside_model": scaling,
            },
            "output": {"name": PROBABILITIES, "dtype": "float32",
                       "shape": [1, len(self.class_names)],
                       "meaning": "the probability of each class, in class_names' order"},
            "base": self.hparams.get("base"),
        }


def _read_hparams(saved_model_dir: str) -> dict[str, Any]:
    """The hyperparameters the Trainer saved in the model ({} for a model without them)."""
    path = os.path.join(saved_model_dir, HPARAMS_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_model(directory: str, fmt: str, content: bytes, metadata: dict[str, Any]) -> str:
    """Writes `model_<fmt>.tflite`, its JSON and `labels.txt` into `directory`; the model's path."""
    tf.io.gfile.makedirs(directory)
    path = os.path.join(directory, model_file(fmt))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(content)
    with tf.io.gfile.GFile(os.path.join(directory, metadata_file(fmt)), "w") as f:
        json.dump(metadata, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(directory, LABELS_FILE), "w") as f:
        f.write("".join(f"{name}\n" for name in metadata["class_names"]))
    return path
