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

from trainer import (
    balance,
    bottleneck,
    data,
    devices,
    eval_features,
    export,
    health,
    scaling,
    train,
)
from trainer import model as model_lib
from trainer.bases import build_application
from trainer.contract import (
    DEFAULT_MAX_ROWS,
    DEVICE_PLAN_KEY,
    EVAL_FEATURES_KEY,
    HISTORY_FILE,
    HPARAMS_KEY,
    INPUT_SCALING_KEY,
    LABEL_NAME,
    MAX_ROWS_KEY,
    progress_logger,
)
from trainer.hparams import HParams
from trainer.search_space import apply_values, describe_values


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


def with_tuned_values(hp: HParams, hyperparameters: dict | None) -> HParams:
    """`hp` with the Tuner's best values (`fn_args.hyperparameters`, KerasTuner's config) when
    the pipeline tuned (`--tune`); `hp` as it is otherwise."""
    if not hyperparameters:
        return hp
    values = hyperparameters.get("values", {})
    tuned = apply_values(hp, values)
    progress_logger().info("training with the Tuner's best values: %s", describe_values(values))
    return tuned


def write_record(model_run_dir: str, record: dict) -> None:
    """`history.json` beside the model: what the summary and the report read of training."""
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), "w") as f:
        json.dump(record, f, indent=1)


def check_features(model: tf.keras.Model, hp: HParams, train_files: list[str],
                   record: dict) -> None:
    """The feature check (`trainer.health`) on a sample of training images, before any training:
    recorded in `record["health"]`, warnings shown on the terminal, degenerate features stop the
    Trainer with one line (`FeatureHealthError`)."""
    images = data.sample_images(train_files, hp.image_size, health.SAMPLE_IMAGES, hp.seed)
    report = health.check_model(model, images)
    record["health"] = report.describe()
    logging.info("feature check on %d training images: %s", report.images, record["health"])
    for warning in report.warnings:
        progress_logger().warning("feature check: %s", warning)
    report.raise_if_degenerate()


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
    hp = with_tuned_values(hp, fn_args.hyperparameters)
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
        try:
            check_features(model, hp, fn_args.train_files, record)
        except health.FeatureHealthError:
            write_record(fn_args.model_run_dir, record)  # the report shows the measures
            raise
        counts = data.count_labels(fn_args.train_files, hp.num_classes)
        weights = balance.class_weights(counts, hp.class_weights)
        record["class_counts"] = dict(zip(hp.class_names, counts, strict=True))
        record["class_weights"] = {
            "mode": hp.class_weights, "largest_over_smallest": balance.imbalance_ratio(counts),
            "weights": dict(zip(hp.class_names, weights, strict=True)) if weights else None}
        logging.info("class counts %s, class weights %s", record["class_counts"],
                     record["class_weights"])
        eval_cache, record["validation"] = eval_features.use(
            fn_args.custom_config.get(EVAL_FEATURES_KEY), hp, model, fn_args.eval_files, plan)
        if hp.bottleneck_cache:
            history, record["bottleneck_cache"] = bottleneck.fit_cached(
                model, hp, fn_args.train_files, fn_args.eval_files, fn_args.model_run_dir,
                strategy=strategy, compilation=plan.compilation,
                class_weight=balance.as_keras(weights), eval_cache=eval_cache)
        else:
            train_data = data.make_dataset(fn_args.train_files, hp.image_size, hp.batch_size,
                                           shuffle=True, seed=hp.seed,
                                           memory_bytes=hp.images_in_memory_bytes)
            eval_data = data.make_dataset(fn_args.eval_files, hp.image_size, hp.batch_size,
                                          shuffle=False, memory_bytes=hp.images_in_memory_bytes)
            validation = None
            if eval_cache:  # the head validates on the audit's features while the base is frozen
                with strategy.scope():
                    validation = eval_features.HeadValidation(model, hp, eval_cache,
                                                              plan.compilation)
            history = train.fit(model, hp, train_data, eval_data, fn_args.model_run_dir,
                                compilation=plan.compilation,
                                class_weight=balance.as_keras(weights),
                                head_validation=validation)
        record["chance"] = chance = health.chance_check(history, counts, weights)
        if chance.get("at_chance"):
            progress_logger().warning(
                "the head ended at chance on its training data (best accuracy %.3f, always the "
                "largest class %.3f; best loss %.3f, a constant answer %.3f); likely causes: %s",
                chance["best_train_accuracy"], chance["chance_accuracy"],
                chance["best_train_loss"], chance["chance_loss"],
                "; ".join(health.LIKELY_CAUSES))
        write_record(fn_args.model_run_dir, {"history": history, **record})
        export.export(model, tf_transform_output, hp.class_names, hp.image_size,
                      fn_args.serving_model_dir, hparams=hp,
                      max_rows=int(fn_args.custom_config.get(MAX_ROWS_KEY, DEFAULT_MAX_ROWS)))
