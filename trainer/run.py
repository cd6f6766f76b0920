"""The Trainer's entry point: wires data, model, training and export; decisions live in those."""

from __future__ import annotations

import os

# TFX loads this module file itself; Keras 2 (tf_keras) must be chosen before TensorFlow is.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import json
import logging

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from trainer import bottleneck, data, devices, export, scaling, train
from trainer import model as model_lib
from trainer.bases import build_application
from trainer.contract import (
    DEVICE_PLAN_KEY,
    HISTORY_FILE,
    HPARAMS_KEY,
    INPUT_SCALING_KEY,
    LABEL_NAME,
)
from trainer.hparams import HParams


def schema_class_names(schema_path: str | None) -> tuple[str, ...] | None:
    """The class names the curated schema records (label i is name i), if it records them."""
    if not schema_path:
        return None
    from tfx.utils import io_utils

    schema = io_utils.SchemaReader().read(schema_path)
    for feature in schema.feature:
        if feature.name == LABEL_NAME and feature.HasField("string_domain"):
            return tuple(feature.string_domain.value)
    return None


def with_data_class_names(hp: HParams, class_names: tuple[str, ...] | None) -> HParams:
    """`hp` with the class names of the data the Trainer receives, which win over those given
    when the pipeline was built: a scheduled run may read a span that came later."""
    if class_names is None or tuple(class_names) == hp.class_names:
        return hp
    logging.warning("training on the classes the data's schema records, %s, not the "
                    "configured %s", list(class_names), list(hp.class_names))
    return dataclasses.replace(hp, class_names=tuple(class_names))


def resolve_input_scaling(hp: HParams, train_files: list[str] | str
                          ) -> tuple[HParams, scaling.Resolution]:
    """`hp` with its input scaling decided (`trainer.scaling.resolve`), and how it was.

    `imgpipe run` decides before the pipeline starts and passes the result with its source; a
    compiled pipeline may leave 'auto' (its weights live in the image), decided here from the
    first training images. A file's recorded convention is checked against the choice either way.
    """
    def application() -> tf.keras.Model:
        return build_application(hp.base_spec, hp.image_size, hp.weights, hp.weights_sha256)

    def images():
        sample = data.make_dataset(train_files, hp.image_size, scaling.DETECTION_IMAGES,
                                   shuffle=True, seed=hp.seed)
        return next(iter(sample))[0].numpy()

    resolution = scaling.resolve(hp.input_scaling, hp.base_spec.convention, hp.weights,
                                 application, images)
    if resolution.how == "given" and hp.input_scaling_source:  # decided by `imgpipe run`
        resolution = scaling.Resolution.from_source(resolution.convention,
                                                    hp.input_scaling_source)
    logging.info("input scaling: %s", resolution.describe())
    return dataclasses.replace(hp, input_scaling=resolution.convention,
                               input_scaling_source=resolution.source), resolution


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains on Transform's output and exports the model for serving and evaluation."""
    hp = with_data_class_names(HParams.from_config(fn_args.custom_config[HPARAMS_KEY]),
                               schema_class_names(fn_args.schema_path))
    tf.keras.utils.set_random_seed(hp.seed)
    hp, resolution = resolve_input_scaling(hp, fn_args.train_files)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    # TF 2.16 has no XLA kernel for the affine warp behind rotation, shift, shear and zoom; with
    # the bottleneck cache only the head is fitted (augmentation runs, uncompiled, while caching).
    plan = devices.plan_devices(hp.devices, devices.visible_gpus(),
                                xla_compatible=hp.bottleneck_cache or not hp.augment.geometric,
                                cpu_bfloat16=devices.cpu_supports_bfloat16())
    # What the plan chose, in the model's metadata: the run summary and the report read it.
    record: dict = {"devices": plan.describe(), DEVICE_PLAN_KEY: plan.to_record(),
                    "warm_start_from": None,
                    "warm_started_weights": [], INPUT_SCALING_KEY: resolution.to_record()}
    logging.info("devices: %s", plan.describe())
    with devices.devices_applied(plan) as strategy:
        with strategy.scope():
            model = model_lib.build_model(hp, compilation=plan.compilation)
        if hp.warm_start and fn_args.base_model:
            record["warm_start_from"] = fn_args.base_model
            record["warm_started_weights"] = train.warm_start(model, fn_args.base_model)
            logging.info("warm start from %s: %s", fn_args.base_model,
                         record["warm_started_weights"])
        if hp.bottleneck_cache:
            history, record["bottleneck_cache"] = bottleneck.fit_cached(
                model, hp, fn_args.train_files, fn_args.eval_files, fn_args.model_run_dir,
                strategy=strategy, compilation=plan.compilation)
        else:
            train_data = data.make_dataset(fn_args.train_files, hp.image_size, hp.batch_size,
                                           shuffle=True, seed=hp.seed,
                                           memory_bytes=hp.images_in_memory_bytes)
            eval_data = data.make_dataset(fn_args.eval_files, hp.image_size, hp.batch_size,
                                          shuffle=False, memory_bytes=hp.images_in_memory_bytes)
            history = train.fit(model, hp, train_data, eval_data, fn_args.model_run_dir,
                                compilation=plan.compilation)
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
            json.dump({"history": history, **record}, f, indent=1)
        export.export(model, tf_transform_output, hp.class_names, hp.image_size,
                      fn_args.serving_model_dir, hparams=hp)
