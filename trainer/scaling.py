"""Input scaling: how a pretrained base was fed when it learned, applied in the model's graph,
recorded beside weights, and detected from the weights themselves.

A base only works when fed as it was trained: a base trained on `x / 255` and fed `x / 127.5 - 1`
sees every activation shifted and stretched, and a frozen base cannot adapt. The conventions are
those of Keras' applications, `imagenet_utils.preprocess_input` (keras-team/tf-keras,
`tf_keras/src/applications/imagenet_utils.py`, `_preprocess_numpy_input`), on RGB pixels 0-255:

- `inception` (Keras' mode 'tf'; InceptionV3, MobileNetV2, Xception): `x / 127.5 - 1`.
- `unit`: `x / 255`, as `ImageDataGenerator(rescale=1./255)` (the seeds' recipe).
- `caffe` (ResNet50, VGG): RGB -> BGR, then the ImageNet mean `[103.939, 116.779, 123.68]` (in BGR
  order) subtracted, no scaling.
- `torch` (DenseNet): `x / 255`, then per RGB channel minus `[0.485, 0.456, 0.406]`, divided by
  `[0.229, 0.224, 0.225]`.

Each is one per-channel affine map after an optional channel reversal; `InputScaling` applies it
as the model's first layer, so the exported signatures apply it too (no training/serving skew).

Public API (stable; other trainer modules and tools call it):
- `CONVENTIONS`, `AUTO`, `CHOICES`; `preprocess_layer(convention)`; `apply(convention, pixels)`.
- `recorded_convention(path)` / `record_convention(path, convention)`: the attribute
  `H5_ATTRIBUTE` of a weights `.h5` file (Keras' `load_weights` ignores it).
- `detect(application, images) -> Detection`: see its docstring for the rule.
- `resolve(...) -> Resolution`: the one decision, given, recorded, documented or detected.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

INCEPTION, UNIT, CAFFE, TORCH = "inception", "unit", "caffe", "torch"
CONVENTIONS = (INCEPTION, UNIT, CAFFE, TORCH)
AUTO = "auto"
CHOICES = (*CONVENTIONS, AUTO)
H5_ATTRIBUTE = "imgpipe_input_scaling"
LAYER_NAME = "base_preprocess"

# Keras' constants (imagenet_utils._preprocess_numpy_input): caffe's mean is in BGR order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)

# Detection's rule: the runner-up's distance must be at least MARGIN times the winner's, and the
# winner's at most MAX_DISTANCE. Settled statistics put the right convention within 0.03 here;
# statistics only partly settled (a short pretraining) can put a wrong one first by more than
# MARGIN, but not this close (benchmarks/README.md, input-scaling detection).
MARGIN = 3.0
MAX_DISTANCE = 0.1
DETECTION_IMAGES = 64  # a few batches of training images are enough evidence
_EPSILON = 1e-3  # BatchNorm's default epsilon, added to variances as the layer does


@dataclasses.dataclass(frozen=True)
class Affine:
    """`convention` as `x[..., ::-1] if reverse_channels`, then `x * scale + offset` per channel."""

    reverse_channels: bool
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]


def check_convention(convention: str, allow_auto: bool = False) -> str:
    """`convention` if known; ValueError naming the choices otherwise."""
    allowed = CHOICES if allow_auto else CONVENTIONS
    if convention not in allowed:
        raise ValueError(f"input_scaling {convention!r} is not one of {', '.join(allowed)}")
    return convention


def affine(convention: str) -> Affine:
    """The per-channel affine map of a convention (channels in the order the base receives)."""
    check_convention(convention)
    if convention == INCEPTION:
        return Affine(False, (1 / 127.5,) * 3, (-1.0,) * 3)
    if convention == UNIT:
        return Affine(False, (1 / 255,) * 3, (0.0,) * 3)
    if convention == CAFFE:
        return Affine(True, (1.0,) * 3, tuple(-m for m in CAFFE_MEAN_BGR))
    return Affine(False, tuple(1 / (255 * s) for s in TORCH_STD),
                  tuple(-m / s for m, s in zip(TORCH_MEAN, TORCH_STD, strict=True)))


def apply(convention: str, pixels: np.ndarray) -> np.ndarray:
    """NumPy float32 of `pixels` (RGB 0-255, channels last) under `convention`."""
    a = affine(convention)
    x = np.asarray(pixels, np.float32)
    if a.reverse_channels:
        x = x[..., ::-1]
    return x * np.float32(a.scale) + np.float32(a.offset)


class InputScaling(tf.keras.layers.Layer):
    """RGB pixels (any dtype, 0-255) -> the base's input under one convention, in the graph.

    Computes in the layer's compute dtype, as Keras' `Rescaling` does (float16 under a mixed
    policy: caffe's largest value, about 152, is exact enough there).
    """

    def __init__(self, convention: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.convention = check_convention(convention)
        self._affine = affine(convention)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = tf.cast(inputs, self.compute_dtype)
        if self._affine.reverse_channels:
            x = tf.reverse(x, axis=[-1])
        scale = tf.constant(self._affine.scale, self.compute_dtype)
        offset = tf.constant(self._affine.offset, self.compute_dtype)
        return x * scale + offset

    def invert(self, values: np.ndarray) -> np.ndarray:
        """Pixels (float, 0-255 RGB) back from this layer's outputs: to show what the base saw."""
        a = self._affine
        x = (np.asarray(values, np.float32) - np.float32(a.offset)) / np.float32(a.scale)
        return x[..., ::-1] if a.reverse_channels else x

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "convention": self.convention}


def preprocess_layer(convention: str, name: str = LAYER_NAME) -> InputScaling:
    """The model's first layer for a base trained under `convention`."""
    return InputScaling(convention, name=name)


def recorded_convention(weights_path: str) -> str | None:
    """The convention recorded in a weights `.h5` file's attributes, or None when it has none."""
    import h5py

    with h5py.File(weights_path, "r") as f:
        value = f.attrs.get(H5_ATTRIBUTE)
    if value is None:
        return None
    value = value.decode() if isinstance(value, bytes) else str(value)
    if value not in CONVENTIONS:
        raise ValueError(f"weights file {weights_path} records input scaling {value!r}, not one "
                         f"of {', '.join(CONVENTIONS)}")
    return value


def record_convention(weights_path: str, convention: str) -> None:
    """Writes `convention` into a weights `.h5` file's attributes (Keras ignores extra ones)."""
    import h5py

    check_convention(convention)
    with h5py.File(weights_path, "a") as f:
        f.attrs[H5_ATTRIBUTE] = convention


@dataclasses.dataclass(frozen=True)
class Detection:
    """What `detect` measured: the distance per candidate (smaller is closer), and the winner.

    `convention` is None when no candidate was clearly best (see `detect`), or when the
    statistics are `untrained`: still at BatchNorm's initial values (mean 0, variance 1), so the
    layers never saw data and hold no evidence.
    """

    convention: str | None
    distances: dict[str, float]
    layers: tuple[str, ...]
    images: int
    untrained: bool = False

    def ranked(self) -> list[tuple[str, float]]:
        """(convention, distance), closest first."""
        return sorted(self.distances.items(), key=lambda item: item[1])

    def evidence(self) -> str:
        """'unit 0.021, torch 0.44, inception 0.93, caffe 71.3 (batch statistics of 64 images
        against conv2d's BatchNorm statistics)'."""
        ranked = ", ".join(f"{name} {distance:.3g}" for name, distance in self.ranked())
        return (f"{ranked} (distance of the batch statistics of {self.images} images from the "
                f"stored BatchNorm statistics of {', '.join(self.layers)})")


def first_batchnorms(application: tf.keras.Model) -> list[tf.keras.layers.BatchNormalization]:
    """The BatchNorm layers whose input is reached from the model's input through no other
    BatchNorm layer (InceptionV3 and MobileNetV2: the one after the first convolution)."""
    tensors = {id(application.input)}
    found = []
    for layer in application.layers[1:]:
        inputs = [t for node in layer.inbound_nodes for t in tf.nest.flatten(node.input_tensors)]
        if not any(id(t) in tensors for t in inputs):
            continue
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            found.append(layer)
        else:
            tensors.update(id(t) for t in tf.nest.flatten(layer.output))
    if not found:
        raise ValueError(f"{application.name} has no BatchNorm layer to read statistics from")
    return found


def gaussian_distance(mean: np.ndarray, variance: np.ndarray, stored_mean: np.ndarray,
                      stored_variance: np.ndarray) -> float:
    """Mean over channels of KL(N(mean, variance) || N(stored_mean, stored_variance)), in nats.

    Zero when the statistics agree; a shift of one stored standard deviation adds 0.5, a
    variance off by a factor 4 about 0.81, by 1/4 about 0.32.
    """
    v, sv = variance + _EPSILON, stored_variance + _EPSILON
    kl = 0.5 * (v / sv + (mean - stored_mean) ** 2 / sv - 1.0 + np.log(sv / v))
    return float(np.mean(kl))


def detect(application: tf.keras.Model, images: np.ndarray, margin: float | None = None,
           candidates: tuple[str, ...] = CONVENTIONS) -> Detection:
    """Which convention `application`'s weights were trained under, from its BatchNorm layers.

    A BatchNorm layer stores the moving mean and variance of the inputs it saw in training. The
    first BatchNorm layers' inputs depend on the pixels only through the convention and the
    layers before them (a convolution), so `images` (uint8 [N, S, S, 3], RGB: a sample of the
    training images) are fed under each candidate up to those layers, and their batch mean and
    variance per channel compared with the stored ones (`gaussian_distance`, averaged over the
    layers). Rule: the closest candidate wins when its distance is at most MAX_DISTANCE and the
    runner-up's at least `margin` times its own; otherwise `convention` is None. Statistics
    still at their initial values (mean 0, variance 1: BatchNorm never trained) give None and
    `untrained`.
    """
    margin = MARGIN if margin is None else margin
    norms = first_batchnorms(application)
    probe = tf.keras.Model(application.input, [layer.input for layer in norms])
    stored = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in norms]
    distances = {}
    for convention in candidates:
        outputs = probe(apply(convention, images), training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        per_layer = []
        for output, (stored_mean, stored_variance) in zip(outputs, stored, strict=True):
            values = tf.reshape(tf.cast(output, tf.float64), [-1, output.shape[-1]]).numpy()
            per_layer.append(gaussian_distance(values.mean(axis=0), values.var(axis=0),
                                               stored_mean, stored_variance))
        distances[convention] = float(np.mean(per_layer))
    untrained = all(np.all(mean == 0) and np.all(variance == 1) for mean, variance in stored)
    ranked = sorted(distances.items(), key=lambda item: item[1])
    clear = (len(ranked) == 1 or ranked[1][1] >= margin * ranked[0][1]) and all(
        math.isfinite(d) for _, d in ranked[:2]) and ranked[0][1] <= MAX_DISTANCE
    winner = ranked[0][0] if clear and not untrained else None
    return Detection(winner, distances, tuple(layer.name for layer in norms), len(images),
                     untrained)


@dataclasses.dataclass(frozen=True)
class Resolution:
    """The convention a run feeds its base, and how it was decided.

    `how` is 'given' (the user's choice), 'recorded' (in the weights file), 'documented' (Keras'
    ImageNet weights of this base), 'random' (`weights` none, or a file whose BatchNorm layers
    never trained: nothing learned to match, the base's documented convention) or 'detected'
    (`detection` holds the evidence).
    """

    convention: str
    how: str
    detail: str = ""
    detection: Detection | None = None
    warning: str = ""  # one line when a given convention contradicts detection (`cross_check`)

    @classmethod
    def from_source(cls, convention: str, source: str) -> Resolution:
        """The inverse of `source` (a decision made earlier, e.g. by `imgpipe run`)."""
        how, _, detail = source.partition(": ")
        return cls(convention, how, detail)

    @property
    def source(self) -> str:
        """How it was decided, one line: 'detected: unit 0.019, inception 2.5, ...'."""
        return self.how + (f": {self.detail}" if self.detail else "")

    def describe(self) -> str:
        """One line for logs, the run summary and the report: 'unit (detected: ...)'."""
        return f"{self.convention} ({self.source})"

    def to_record(self) -> dict[str, Any]:
        """JSON-friendly, for history.json."""
        record: dict[str, Any] = {"convention": self.convention, "how": self.how,
                                  "description": self.describe()}
        if self.detection is not None:
            record["distances"] = self.detection.distances
            record["layers"] = list(self.detection.layers)
            record["images"] = self.detection.images
        return record


class ScalingError(ValueError):
    """The convention cannot be decided, or contradicts the weights file's record; one line."""


def resolve(requested: str, documented: str, weights: str,
            application: Callable[[], tf.keras.Model] | None = None,
            images: Callable[[], np.ndarray] | None = None) -> Resolution:
    """The convention to feed a base, decided once before training.

    `requested` is the user's choice (a convention or 'auto'), `documented` the base's own
    convention for Keras' ImageNet weights, `weights` 'imagenet', 'none' or a `.h5` path.
    `application()` builds the no-top base with the weights loaded and `images()` returns a
    sample of training images (uint8 [N, S, S, 3]); both are called only to detect. Order: a
    convention recorded in the file wins (a different explicit one is a ScalingError), then an
    explicit choice, then imagenet's documented one, then detection (a file whose BatchNorm
    layers never trained is treated as random weights).
    """
    check_convention(requested, allow_auto=True)
    recorded = None
    if weights not in ("imagenet", "none"):
        recorded = recorded_convention(weights)
    if recorded is not None:
        if requested not in (AUTO, recorded):
            raise ScalingError(f"input_scaling {requested} contradicts the {recorded} recorded "
                               f"in {weights} (by pretrain-base); drop input_scaling to use "
                               f"the file's, or pass input_scaling {recorded}")
        return Resolution(recorded, "recorded", f"in {weights}")
    if requested != AUTO:
        return Resolution(requested, "given")
    if weights == "imagenet":
        return Resolution(documented, "documented", "Keras' ImageNet weights of this base")
    if weights == "none":
        return Resolution(documented, "random", "weights none learned nothing to match")
    if application is None or images is None:
        raise ScalingError(f"input_scaling auto needs training images to detect how {weights} "
                           "was trained; pass input_scaling")
    detection = detect(application(), images())
    if detection.untrained:
        return Resolution(documented, "random", f"the BatchNorm statistics in {weights} are at "
                          "their initial values, nothing learned to match", detection)
    if detection.convention is None:
        raise ScalingError(f"cannot tell how {weights} was fed in training: no convention is "
                           f"clearly closest within {MAX_DISTANCE:g} ({detection.evidence()}); "
                           f"pass input_scaling ({', '.join(CONVENTIONS)})")
    return Resolution(detection.convention, "detected", detection.evidence(), detection)


def cross_check(resolution: Resolution, weights: str, application: Callable[[], tf.keras.Model],
                images: Callable[[], np.ndarray]) -> Resolution:
    """`resolution` (a convention given for a weights file with no record), with `warning` set
    when detection clearly picks another convention: the choice stands, but one of the two is
    probably wrong, and a wrongly fed base trains without any error. Unclear or untrained
    statistics say nothing, so no warning."""
    detection = detect(application(), images())
    if detection.untrained or detection.convention in (None, resolution.convention):
        return resolution
    return dataclasses.replace(resolution, warning=(
        f"input_scaling {resolution.convention} was given, but the BatchNorm statistics in "
        f"{weights} point to {detection.convention} ({detection.evidence()}); check how the base "
        "was trained"))
