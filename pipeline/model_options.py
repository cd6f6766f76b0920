"""The model and training flags of `imgpipe run`, turned into `HParams`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pipeline.errors import UserError

BASE_CHOICES = ("inception_v3", "mobilenet_v2")


def _dense_units(value: str) -> tuple[int, ...]:
    try:
        units = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise UserError(f"--dense-units {value!r} must be comma-separated integers, "
                        "e.g. 1024 or 512,1024") from None
    if not units or min(units) < 1:
        raise UserError(f"--dense-units {value!r} must be positive integers")
    return units


MODEL_OPTIONS = [
    click.option("--base", default="inception_v3", show_default=True,
                 type=click.Choice(BASE_CHOICES), help="The pretrained base."),
    click.option("--weights", default="imagenet", show_default=True,
                 help="Base weights: imagenet, none, or the path of a no-top .h5 file."),
    click.option("--weights-sha256", default=None,
                 help="Refuse a local weights file whose SHA-256 differs."),
    click.option("--cut-layer", default=None,
                 help="Base layer the head reads [inception_v3: mixed7, mobilenet_v2: out_relu]."),
    click.option("--pooling", default=None, type=click.Choice(("flatten", "avg")),
                 help="Head pooling [inception_v3: flatten, mobilenet_v2: avg]."),
    click.option("--dense-units", default="1024", show_default=True,
                 help="Dense layers of the head, e.g. 512,1024 (the seeds' question)."),
    click.option("--dropout", default=0.2, show_default=True,
                 type=click.FloatRange(0.0, 1.0, max_open=True),
                 help="Dropout rate after the last dense layer."),
    click.option("--learning-rate", default=1e-4, show_default=True,
                 type=click.FloatRange(0.0, min_open=True), help="RMSprop's learning rate."),
    click.option("--image-size", default=150, show_default=True, type=click.IntRange(32, 1024)),
    click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 10_000)),
    click.option("--steps-per-epoch", default=None, type=click.IntRange(1, 10_000_000),
                 help="Train a fixed number of steps per epoch (the data repeats)."),
    click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096)),
    click.option("--early-stopping-patience", default=3, show_default=True,
                 type=click.IntRange(0, 1000),
                 help="Epochs without a better validation loss before stopping; 0 is off."),
    click.option("--fine-tune-from", default=None,
                 help="After the head trains, unfreeze the base from this layer (e.g. mixed6)."),
    click.option("--fine-tune-epochs", default=3, show_default=True,
                 type=click.IntRange(1, 10_000)),
    click.option("--fine-tune-learning-rate", default=1e-5, show_default=True,
                 type=click.FloatRange(0.0, min_open=True)),
    click.option("--no-warm-start", is_flag=True,
                 help="Do not start the head from the last blessed model."),
    click.option("--bottleneck-cache", default="off", show_default=True,
                 type=click.Choice(("off", "on")),
                 help="on: compute the frozen base's features once, on disk, and train the head "
                      "on them (no fine-tuning)."),
    click.option("--cache-augmented-copies", default=0, show_default=True,
                 type=click.IntRange(0, 1000),
                 help="With the cache: K augmented copies of each training image (0: one plain "
                      "copy, no augmentation)."),
    click.option("--cache-batch-size", default=0, show_default=True, type=int,
                 help="With the cache: batch size of the head epochs (0: --batch-size); larger "
                      "batches make cached epochs faster but take fewer optimiser steps."),
    click.option("--images-in-memory-mb", default=0, show_default=True, type=int,
                 help="Hold the decoded training and eval images in memory when each set fits "
                      "in this many MiB (0: stream them from disk every epoch, flat memory)."),
    click.option("--no-augment", is_flag=True, help="Train without in-graph augmentation."),
    click.option("--augment-rotation", default=40.0, show_default=True, type=float,
                 help="Largest random rotation, degrees."),
    click.option("--augment-shift", default=0.2, show_default=True, type=float,
                 help="Largest random width and height shift, fraction of the image."),
    click.option("--augment-shear", default=0.2, show_default=True, type=float,
                 help="Largest random shear, degrees (as ImageDataGenerator's shear_range)."),
    click.option("--augment-zoom", default=0.2, show_default=True, type=float,
                 help="Random zoom of each axis within 1 +- this."),
    click.option("--no-augment-flip", is_flag=True, help="No random horizontal flip."),
    click.option("--precision", default="auto", show_default=True,
                 type=click.Choice(("auto", "float32", "mixed_float16", "mixed_bfloat16")),
                 help="auto: mixed_float16 on GPU, float32 on CPU."),
    click.option("--xla", default="auto", show_default=True,
                 type=click.Choice(("auto", "on", "off")),
                 help="auto: XLA compiles the optimizer's update everywhere, and the whole step "
                      "with a GPU unless rotation/shift/shear/zoom augmentation is on; off: "
                      "neither."),
    click.option("--strategy", default="auto", show_default=True,
                 type=click.Choice(("auto", "mirrored", "default")),
                 help="auto: MirroredStrategy with more than one GPU."),
]


def model_options(command: Callable) -> Callable:
    """Adds every model and training flag to a click command."""
    for option in reversed(MODEL_OPTIONS):
        command = option(command)
    return command


def hparams_from_options(class_names: tuple[str, ...], weights: str,
                         options: dict[str, Any]):
    """`HParams` from the flags; a value the model refuses is a one-line user error."""
    from trainer.augment import AugmentConfig
    from trainer.devices import DeviceConfig
    from trainer.hparams import HParams

    cache = options.get("bottleneck_cache", "off") == "on"
    copies = options.get("cache_augmented_copies", 0)
    cache_batch = options.get("cache_batch_size", 0)
    if cache and options["fine_tune_from"]:
        raise UserError("--bottleneck-cache on trains the head on stored features of the frozen "
                        "base, which --fine-tune-from would change; drop one of the two")
    if copies and not cache:
        raise UserError(f"--cache-augmented-copies {copies} needs --bottleneck-cache on")
    if copies and options["no_augment"]:
        raise UserError(f"--cache-augmented-copies {copies} needs augmentation; drop "
                        "--no-augment or the copies")
    if cache_batch < 0:
        raise UserError(f"--cache-batch-size {cache_batch} must be at least 0")
    if cache_batch and not cache:
        raise UserError(f"--cache-batch-size {cache_batch} needs --bottleneck-cache on")
    images_mb = options.get("images_in_memory_mb", 0)
    if images_mb < 0:
        raise UserError(f"--images-in-memory-mb {images_mb} must be at least 0")
    try:
        if options["no_augment"]:
            augment = AugmentConfig.off()
        else:
            augment = AugmentConfig(
                horizontal_flip=not options["no_augment_flip"],
                rotation_degrees=options["augment_rotation"],
                width_shift=options["augment_shift"], height_shift=options["augment_shift"],
                shear=options["augment_shear"], zoom=options["augment_zoom"])
        return HParams(
            class_names=class_names,
            image_size=options["image_size"],
            base=options["base"],
            weights=weights,
            weights_sha256=options["weights_sha256"],
            cut_layer=options["cut_layer"],
            pooling=options["pooling"],
            dense_units=_dense_units(options["dense_units"]),
            dropout_rate=options["dropout"],
            learning_rate=options["learning_rate"],
            epochs=options["epochs"],
            steps_per_epoch=options["steps_per_epoch"],
            batch_size=options["batch_size"],
            early_stopping_patience=options["early_stopping_patience"],
            fine_tune_from=options["fine_tune_from"],
            fine_tune_epochs=options["fine_tune_epochs"],
            fine_tune_learning_rate=options["fine_tune_learning_rate"],
            warm_start=not options["no_warm_start"],
            bottleneck_cache=cache,
            cache_augmented_copies=copies,
            cache_batch_size=cache_batch,
            images_in_memory_mb=images_mb,
            augment=augment,
            devices=DeviceConfig(precision=options["precision"], xla=options["xla"],
                                 strategy=options["strategy"]),
        )
    except ValueError as error:
        raise UserError(str(error)) from None
