"""TFLiteExport's executor: artifact bookkeeping around `convert` and `evaluate`."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.util import model_utils
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import executor as executor_base
from components import stop
from components.exec_properties import int_property
from components.executor import Artifacts
from components.load_check.probe import describe_error
from components.tflite_export import convert, evaluate, properties
from trainer.contract import IMAGE_BYTES, LABEL, TRANSFORMED_IMAGE, progress_logger

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
EXAMPLES_KEY = "examples"  # ExampleGen's: training images calibrate int8
EVAL_EXAMPLES_KEY = "eval_examples"  # the Evaluator's eval split (DropLeakedEval's, if it runs)
TRANSFORM_GRAPH_KEY = "transform_graph"  # decodes and resizes the images, as in serving
TFLITE_MODELS_KEY = "tflite_models"
FORMATS_KEY = "formats"  # comma-separated, e.g. "float16,int8"
TOLERANCE_KEY = "tolerance_points"
REPRESENTATIVE_IMAGES_KEY = "representative_images"
DEFAULT_TOLERANCE_POINTS = 1.0
DEFAULT_REPRESENTATIVE_IMAGES = 100
REPORT_FILE = "tflite.json"  # the comparison, also recorded as the COMPARISON property

_LOG = logging.getLogger(__name__)


def check_parameters(formats: str, tolerance_points: float, representative_images: int) -> None:
    """Raises ValueError unless the formats parse, |tolerance| <= 100 and images >= 1."""
    convert.parse_formats(formats)
    if not -100.0 <= tolerance_points <= 100.0:
        raise ValueError(f"tolerance_points must be in [-100, 100], got {tolerance_points}")
    if representative_images < 1:
        raise ValueError(f"representative_images must be >= 1, got {representative_images}")


class SplitReader:
    """Raw examples as the model sees them: Transform's graph decodes and resizes each image,
    as the SavedModel's signatures and so the Evaluator do."""

    def __init__(self, transform_graph_dir: str, batch_size: int = 32) -> None:
        self._layer = tft.TFTransformOutput(transform_graph_dir).transform_features_layer()
        self._batch_size = batch_size
        self._spec = {IMAGE_BYTES: tf.io.FixedLenFeature([1], tf.string),
                      LABEL: tf.io.FixedLenFeature([1], tf.int64)}

    def read(self, split_dir: str, limit: int = 0) -> Iterator[tuple[np.ndarray, int]]:
        """(uint8 [S, S, 3] image, label) of each example of a split, decoded as it goes; limit
        0 is all. ValueError when the split has no files."""
        files = sorted(tf.io.gfile.glob(posixpath.join(split_dir, "*.gz")))
        if not files:
            raise ValueError(f"no examples in {split_dir}")
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
        if limit:
            dataset = dataset.take(limit)
        for serialized in dataset.batch(self._batch_size):
            features = tf.io.parse_example(serialized, self._spec)
            pngs = self._layer({IMAGE_BYTES: features[IMAGE_BYTES]})[TRANSFORMED_IMAGE]
            for png, label in zip(pngs.numpy(), features[LABEL].numpy()[:, 0], strict=True):
                yield tf.io.decode_png(png, channels=3).numpy(), int(label)


def tree_size(directory: str) -> int:
    """Bytes of every file under `directory`."""
    return sum(tf.io.gfile.stat(os.path.join(root, name)).length
               for root, _, names in tf.io.gfile.walk(directory) for name in names)


def refused_all(formats: tuple[str, ...], tolerance_points: float, reason: str
                ) -> dict[str, Any]:
    """The comparison when no format could be tried: each refused for `reason`."""
    return {"tolerance_points": tolerance_points,
            **{fmt: {"accepted": False, "reason": reason} for fmt in formats}}


def export_formats(model_dir: str, reader: SplitReader, train_dir: str, eval_dir: str,
                   formats: tuple[str, ...], tolerance_points: float,
                   representative_images: int, output_dir: str) -> dict[str, Any]:
    """Converts, writes and measures each format; the comparison, with a verdict per format."""
    try:
        classifier = convert.Classifier(model_dir)
        train_images = [image for image, _ in reader.read(train_dir, representative_images)]
        reference = evaluate.measure(classifier.probabilities, reader.read(eval_dir))
    except Exception as error:  # nothing to convert or measure with; the SavedModel still goes
        _LOG.warning("no TFLite model made of %s", model_dir, exc_info=True)
        return refused_all(formats, tolerance_points,
                           f"not converted: {describe_error(error)}")
    comparison: dict[str, Any] = {
        "tolerance_points": tolerance_points, "eval_images": len(reference.probabilities),
        "representative_images": len(train_images),
        "saved_model": {**reference.to_record(), "size_bytes": tree_size(model_dir)}}
    for fmt in formats:
        stop.raise_if_requested()
        progress_logger().info("converting the model to TFLite %s", fmt)
        start = time.monotonic()
        try:
            content = classifier.convert(fmt, train_images)
        except Exception as error:  # a format that fails is refused; the SavedModel still goes
            _LOG.warning("TFLite %s failed", fmt, exc_info=True)
            comparison[fmt] = {"accepted": False,
                               "reason": f"conversion failed: {describe_error(error)}"}
            continue
        seconds = time.monotonic() - start
        # Not caught: a file that cannot be written (a full disk) fails the step, as anywhere.
        path = convert.write_model(output_dir, fmt, content, classifier.metadata(fmt))
        try:
            measured = evaluate.measure(evaluate.TFLiteClassifier(model_path=path).probabilities,
                                        reader.read(eval_dir))
        except Exception as error:  # the interpreter cannot run it: refused, as above
            _LOG.warning("TFLite %s could not be measured", fmt, exc_info=True)
            comparison[fmt] = {"accepted": False,
                               "reason": f"the TFLite interpreter failed: {describe_error(error)}"}
            continue
        reason = evaluate.refusal(measured, reference, tolerance_points)
        comparison[fmt] = {
            **measured.to_record(), "size_bytes": len(content),
            "conversion_seconds": round(seconds, 2), "file": convert.model_file(fmt),
            "max_probability_gap": round(evaluate.prediction_gap(measured, reference), 6),
            "agreement": round(evaluate.agreement(measured, reference), 6),
            "accepted": not reason, "reason": reason}
    return comparison


class Executor(executor_base.Executor):
    """Converts a blessed model to TFLite and keeps each format that is as accurate."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Records the comparison and the accepted formats on the TFLiteModels artifact."""
        output = artifact_utils.get_single_instance(output_dict[TFLITE_MODELS_KEY])
        formats = convert.parse_formats(exec_properties[FORMATS_KEY])
        tolerance = exec_properties.get(TOLERANCE_KEY)
        tolerance = DEFAULT_TOLERANCE_POINTS if tolerance is None else float(tolerance)
        representative = int_property(exec_properties, REPRESENTATIVE_IMAGES_KEY,
                                      DEFAULT_REPRESENTATIVE_IMAGES)
        check_parameters(exec_properties[FORMATS_KEY], tolerance, representative)
        blessing = artifact_utils.get_single_instance(input_dict[MODEL_BLESSING_KEY])
        if not model_utils.is_model_blessed(blessing):
            comparison = refused_all(formats, tolerance, "not converted: the model is not blessed")
        else:
            model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
            model_dir = path_utils.serving_model_path(
                model.uri, path_utils.is_old_model_artifact(model))
            examples = input_dict[EXAMPLES_KEY]
            comparison = export_formats(
                model_dir, SplitReader(artifact_utils.get_single_uri(
                    input_dict[TRANSFORM_GRAPH_KEY])),
                artifact_utils.get_split_uri(examples, "train"),
                artifact_utils.get_split_uri(input_dict.get(EVAL_EXAMPLES_KEY) or examples,
                                             "eval"),
                formats, tolerance, representative, output.uri)
        accepted = [fmt for fmt in formats if comparison[fmt]["accepted"]]
        tf.io.gfile.makedirs(output.uri)
        with tf.io.gfile.GFile(os.path.join(output.uri, REPORT_FILE), "w") as f:
            json.dump(comparison, f, indent=1)
        output.set_string_custom_property(properties.ACCEPTED, json.dumps(accepted))
        output.set_string_custom_property(properties.COMPARISON, json.dumps(comparison))
        for fmt in formats:
            if comparison[fmt]["accepted"]:
                _LOG.info("TFLite %s accepted: %s", fmt, comparison[fmt])
            else:
                progress_logger().warning("TFLite %s refused: %s", fmt,
                                          comparison[fmt]["reason"])
