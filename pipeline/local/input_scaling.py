"""`imgpipe run` decides how the base is fed before the pipeline starts (`trainer.scaling`).

Deciding here, not only in the Trainer, puts the decided convention into the hyperparameters the
pipeline records in ML Metadata, and a base that cannot be read stops the run in one line before
any component runs. Detection reads a sample of the data's images, taken evenly from every class
folder and decoded and resized as Transform does; a file that does not decode is left out of the
sample (the ExampleGen quarantines and lists it as usual).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from components.image_example_gen.files import classify

if TYPE_CHECKING:
    import tensorflow as tf

    from trainer.hparams import HParams
    from trainer.scaling import Resolution


def sample_images(read_root: Path, image_size: int, count: int) -> np.ndarray:
    """Up to `count` images under `read_root` (class folders, or train/ and eval/ of them),
    round-robin over the class folders in path order: uint8 [N, S, S, 3], as Transform makes."""
    import tensorflow as tf

    from trainer.transform import decode_and_resize

    per_class: dict[str, list[Path]] = {}
    for path in sorted(p for p in read_root.rglob("*") if p.is_file()):
        relative = path.relative_to(read_root).as_posix()
        if relative.split("/")[0] in ("train", "eval") and relative.count("/") == 2:
            relative = relative.split("/", 1)[1]
        class_name, problem = classify(relative)
        if problem is None:
            per_class.setdefault(class_name, []).append(path)
    ordered = [paths[i] for i in range(max(map(len, per_class.values()), default=0))
               for paths in per_class.values() if i < len(paths)]
    images, undecodable = [], 0
    for path in ordered:
        if len(images) == count:
            break
        try:
            images.append(decode_and_resize(tf.constant(path.read_bytes()), image_size).numpy())
        except (tf.errors.OpError, OSError):
            undecodable += 1
    if undecodable:
        logging.info("input scaling detection: %d undecodable files left out of its sample",
                     undecodable)
    if not images:
        raise ValueError(f"no decodable image under {read_root} to detect input_scaling from; "
                         "pass input_scaling")
    return np.stack(images)


def resolve_input_scaling(hp: HParams, read_root: Path, application: tf.keras.Model | None = None
                          ) -> tuple[HParams, Resolution]:
    """`hp` with `input_scaling` decided and its source recorded; ValueError (one line, naming
    the `input_scaling` field) when it cannot be. `application` is the base already built with
    `hp.weights` (preflight's `check_weights`), read instead of building another. A convention
    given for a file with no record is cross-checked by detection (`Resolution.warning`)."""
    from trainer import scaling
    from trainer.bases import build_application

    def built() -> tf.keras.Model:
        if application is not None:
            return application
        return build_application(hp.base_spec, hp.image_size, hp.weights, hp.weights_sha256)

    def images() -> np.ndarray:
        return sample_images(read_root, hp.image_size, scaling.DETECTION_IMAGES)

    resolution = scaling.resolve(hp.input_scaling, hp.base_spec.convention, hp.weights, built,
                                 images)
    if resolution.how == "given" and hp.weights not in ("imagenet", "none"):
        try:  # a file with no record: detection still runs, as a cross-check of the choice
            resolution = scaling.cross_check(resolution, hp.weights, built, images)
        except ValueError as error:  # no decodable image: the given choice stands unchecked
            logging.info("input scaling cross-check skipped: %s", error)
    source = "" if resolution.how == "given" else resolution.source
    return dataclasses.replace(hp, input_scaling=resolution.convention,
                               input_scaling_source=source), resolution
