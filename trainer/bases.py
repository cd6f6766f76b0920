"""The pretrained bases the Trainer can build on: each one entry, with its own preprocessing.

A base is a Keras application built with `include_top=False` (its ImageNet classifier dropped),
cut at a named layer whose output is the bottleneck the head reads. Adding a base is adding an
entry here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    """How to build one base and feed it.

    `convention` is how Keras' ImageNet weights of the base expect their input (a name in
    `trainer.scaling.CONVENTIONS`; both InceptionV3 and MobileNetV2: `inception`, [-1, 1]). Other
    weights may have been trained otherwise: `trainer.scaling.resolve` decides per run.
    """

    name: str
    application: Callable[..., tf.keras.Model]
    default_cut_layer: str
    default_pooling: str
    min_image_size: int
    convention: str = "inception"


BASES: dict[str, BaseSpec] = {
    "inception_v3": BaseSpec(
        name="inception_v3",
        application=tf.keras.applications.InceptionV3,
        default_cut_layer="mixed7",
        default_pooling="flatten",
        min_image_size=75,
    ),
    "mobilenet_v2": BaseSpec(
        name="mobilenet_v2",
        application=tf.keras.applications.MobileNetV2,
        default_cut_layer="out_relu",  # the bottleneck: the last feature map before the top
        default_pooling="avg",  # MobileNetV2's usual head: global average pooling over it
        min_image_size=32,
    ),
}


def get_base_spec(name: str) -> BaseSpec:
    """The entry for `name`; a clear error names the choices."""
    if name not in BASES:
        raise ValueError(f"unknown base {name!r}; choose from {', '.join(BASES)}")
    return BASES[name]


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights_file(path: str, sha256: str | None) -> None:
    """Raises ValueError unless `path` exists and, when `sha256` is given, has that digest."""
    if not Path(path).is_file():
        raise ValueError(f"weights file {path} does not exist")
    if sha256:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise ValueError(f"weights file {path} has SHA-256 {actual}, expected {sha256}; "
                             "the file is not the one pinned")


def build_application(spec: BaseSpec, image_size: int, weights: str,
                      sha256: str | None = None) -> tf.keras.Model:
    """The whole no-top application with `weights` ('imagenet', 'none' or a .h5 path) loaded."""
    keras_weights = "imagenet" if weights == "imagenet" else None
    application = spec.application(include_top=False, weights=keras_weights,
                                   input_shape=(image_size, image_size, 3))
    if weights not in ("imagenet", "none"):
        check_weights_file(weights, sha256)
        application.load_weights(weights)
    return application
