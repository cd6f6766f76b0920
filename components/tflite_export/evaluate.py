"""Running a TFLite model with the TFLite interpreter, and judging it against the SavedModel.

Both are measured the same way, on the same decoded eval images, one image per call (as a phone
classifies): accuracy, and the median time of one call. A TFLite model passes when its accuracy
is at most `tolerance_points` percentage points below the SavedModel's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf

_EPSILON = 1e-9  # accuracies are ratios of counts: equal ones may differ in the last bit


class TFLiteClassifier:
    """A TFLite model from `convert`: uint8 [1, S, S, 3] in, [1, C] probabilities out."""

    def __init__(self, model_path: str | None = None, model_content: bytes | None = None,
                 num_threads: int | None = None) -> None:
        """Loads the model from a file or from bytes; ValueError when it is not such a model."""
        self.interpreter = tf.lite.Interpreter(model_path=model_path, model_content=model_content,
                                               num_threads=num_threads)
        self._allocated = False  # at the first image: TFLite logs its delegate when it allocates
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"expected one input and one output, found {len(inputs)} and "
                             f"{len(outputs)}")
        self._input, self._output = inputs[0], outputs[0]
        shape = [int(d) for d in self._input["shape"]]
        if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(f"expected an input of shape [1, S, S, 3], found {shape}")
        self.image_size = shape[1]

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """[1, C] float32 probabilities of one uint8 [1, S, S, 3] image."""
        if not self._allocated:
            self.interpreter.allocate_tensors()
            self._allocated = True
        self.interpreter.set_tensor(self._input["index"], _as_input(image, self._input))
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self._output["index"])
        scale, zero_point = self._output["quantization"]
        if self._output["dtype"] != np.float32 and scale:  # a quantized output
            return ((output.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return output.astype(np.float32)


def _as_input(image: np.ndarray, details: dict) -> np.ndarray:
    """`image` in the input's type; a quantized float input takes the pixels through its scale."""
    scale, zero_point = details["quantization"]
    dtype = details["dtype"]
    if scale and dtype != np.float32:
        info = np.iinfo(dtype)
        quantized = np.round(image.astype(np.float32) / scale + zero_point)
        return np.clip(quantized, info.min, info.max).astype(dtype)
    return np.asarray(image).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One model on the eval images: accuracy, median latency of one image, its answers."""

    accuracy: float
    latency_ms: float
    probabilities: np.ndarray  # [N, C]

    def to_record(self) -> dict[str, float]:
        """The figures for the summary (no per-image answers)."""
        return {"accuracy": round(self.accuracy, 6), "latency_ms": round(self.latency_ms, 3)}


def measure(probabilities: Callable[[np.ndarray], np.ndarray],
            examples: Iterable[tuple[np.ndarray, int]]) -> Measurement:
    """Classifies each (uint8 [S, S, 3] image, label) alone; the first call is also a warm-up.

    `examples` may be a stream (a split read as it goes), so no split is held in memory.
    """
    answers, labels, seconds = [], [], []
    for image, label in examples:
        if not answers:
            probabilities(image[np.newaxis])  # lazy initialisation is not an image's latency
        start = time.perf_counter()
        answers.append(probabilities(image[np.newaxis])[0])
        seconds.append(time.perf_counter() - start)
        labels.append(label)
    if not answers:
        raise ValueError("no eval images to measure the model on")
    stacked = np.stack(answers).astype(np.float32)
    accuracy = float(np.mean(np.argmax(stacked, axis=1) == np.asarray(labels)))
    return Measurement(accuracy, float(np.median(seconds)) * 1000.0, stacked)


def refusal(candidate: Measurement, reference: Measurement, tolerance_points: float) -> str:
    """Why `candidate` may not be pushed ('' if it may): its accuracy, more than
    `tolerance_points` percentage points below the reference's."""
    floor = reference.accuracy - tolerance_points / 100.0
    if candidate.accuracy >= floor - _EPSILON:
        return ""
    return (f"accuracy {candidate.accuracy:.3f} is more than {tolerance_points:g} point(s) below "
            f"the SavedModel's {reference.accuracy:.3f} (--tflite-tolerance)")


def prediction_gap(candidate: Measurement, reference: Measurement) -> float:
    """The largest absolute difference between the two models' probabilities."""
    return float(np.max(np.abs(candidate.probabilities - reference.probabilities)))


def agreement(candidate: Measurement, reference: Measurement) -> float:
    """The share of images on which both models predict the same class."""
    return float(np.mean(np.argmax(candidate.probabilities, axis=1)
                         == np.argmax(reference.probabilities, axis=1)))

