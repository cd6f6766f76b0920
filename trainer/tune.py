"""The Tuner's module file (`--tune N`): a KerasTuner search over the head, on cached features.

The frozen base maps an image to the same features in every trial, so they are computed once:
the cut layer's output, flattened, for the training and eval images, written with
`trainer.bottleneck.write_cache`. Flatten pooling reads those records as they are; average
pooling is their mean over the cut layer's positions, so one cache serves both. Each trial then
builds and trains only the head (`trainer.model.head`) on the cached training features and is
scored on the cached eval features: no image goes through the base in a trial.

KerasTuner 1.4 imports Keras 3, while the models here are tf_keras: `HeadTuner` subclasses
KerasTuner's `BaseTuner`, which leaves building and training to `run_trial`, so it works with any
model. TFX's Tuner writes the best values; the Trainer applies them (`trainer.run`).
"""

from __future__ import annotations

import os

# TFX loads this module file itself; Keras 2 (tf_keras) must be chosen before TensorFlow is.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any

import keras_tuner as kt
import numpy as np
import tensorflow as tf
from keras_tuner.engine import base_tuner
from tfx import v1 as tfx

from trainer import balance, bottleneck, data, devices
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.contract import HPARAMS_KEY, TUNE_KEY, progress_logger
from trainer.hparams import HParams
from trainer.run import resolve_input_scaling, schema_class_names, with_data_class_names
from trainer.search_space import SearchSpace, TuneConfig, apply_values, describe_values

OBJECTIVE = "val_accuracy"  # the head's accuracy on the eval split's cached features
HYPERBAND_FACTOR = 3
# TensorFlow 2.16 keeps each compiled trial's weights and optimizer slots after the trial, freed
# Python objects and `clear_session` notwithstanding (benchmarks/README.md, "Tuning"); trials run
# eagerly keep nothing but are slower. Compiled trials may keep at most this share of the RAM.
KEPT_MEMORY_SHARE = 0.5


def physical_memory() -> int:
    """The machine's RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def kept_bytes(space: SearchSpace, features: CachedFeatures, trials: int) -> int:
    """At most what `trials` compiled trials leave behind: the widest head's first kernel and
    its RMSprop slot (float32) per trial, which dwarf the rest of the head."""
    widest = max(features.dim(pooling) for pooling in space.pooling)
    return trials * 2 * 4 * widest * max(space.dense_units)


def declare(space: SearchSpace) -> kt.HyperParameters:
    """The space as KerasTuner's hyperparameters: choices, ranges, and one value as `Fixed`."""
    hps = kt.HyperParameters()
    for name in ("dense_units", "pooling", "head_batch_size"):
        values = list(getattr(space, name))
        if len(values) == 1:
            hps.Fixed(name, values[0])
        else:
            hps.Choice(name, values)
    for name, sampling in (("dropout", "linear"), ("learning_rate", "log")):
        low, high = getattr(space, name)
        if low == high:
            hps.Fixed(name, float(low))
        else:
            hps.Float(name, float(low), float(high), sampling=sampling)
    return hps


def make_oracle(tune: TuneConfig, max_epochs: int, seed: int) -> kt.Oracle:
    """The search algorithm's oracle, stopping after `tune.trials` trials.

    Hyperband trains most trials for few epochs and the best for up to `max_epochs`; it has no
    trial count of its own, so it runs brackets until the count is reached.
    """
    common = {"objective": kt.Objective(OBJECTIVE, direction="max"),
              "hyperparameters": declare(tune.space), "tune_new_entries": False,
              "allow_new_entries": False, "seed": seed}
    if tune.algorithm == "random":
        oracle = kt.oracles.RandomSearchOracle(max_trials=tune.trials, **common)
    elif tune.algorithm == "bayesian":
        oracle = kt.oracles.BayesianOptimizationOracle(max_trials=tune.trials, **common)
    else:
        oracle = kt.oracles.HyperbandOracle(max_epochs=max(2, max_epochs),
                                            factor=HYPERBAND_FACTOR, hyperband_iterations=None,
                                            **common)
        oracle.max_trials = tune.trials
    oracle.verbose = 0  # KerasTuner prints to stdout; the progress lines of run_trial replace it
    return oracle


@dataclasses.dataclass
class CachedFeatures:
    """The cut layer's output of the training and eval images, flattened, on disk.

    When both caches fit in `bottleneck.MEMORY_BYTES` together, `hold` reads them into memory
    once, with their average-pooled form, for every trial; otherwise each trial streams them.
    """

    train: bottleneck.CacheInfo
    eval: bottleneck.CacheInfo
    channels: int  # the cut layer's channels: a record is positions x channels values
    held: dict[tuple[str, str], tuple[tf.Tensor, tf.Tensor]] = dataclasses.field(
        default_factory=dict)  # (split, pooling) -> (features, labels), one copy for all trials

    def dim(self, pooling: str) -> int:
        """The width of the head's input for `pooling`."""
        return self.train.feature_dim if pooling == "flatten" else self.channels

    def hold(self) -> bool:
        """Reads both caches into memory if they fit; whether they did."""
        if self.train.bytes + self.eval.bytes > bottleneck.MEMORY_BYTES:
            return False
        for split, info in (("train", self.train), ("eval", self.eval)):
            features, labels = bottleneck.read_arrays(info)
            averaged = features.reshape(len(features), -1, self.channels).mean(
                axis=1, dtype=np.float32)
            labels = tf.constant(labels)
            # Tensors, not arrays: `batches_in_memory` then gathers from them without a copy.
            self.held[split, "flatten"] = tf.constant(features), labels
            self.held[split, "avg"] = tf.constant(averaged), labels
            del features
        return True

    def dataset(self, split: str, pooling: str, batch_size: int, shuffle: bool, seed: int
                ) -> tf.data.Dataset:
        """Batches of (features, labels) as `pooling` gives them to the head."""
        if (split, pooling) in self.held:
            return data.batches_in_memory(self.held[split, pooling], batch_size, shuffle, seed)
        info = self.train if split == "train" else self.eval
        records = bottleneck.read_cache(info, batch_size, shuffle, seed)
        if pooling == "flatten":
            return records
        channels = self.channels

        def average(features: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            positions = tf.reshape(features, [tf.shape(features)[0], -1, channels])
            return tf.reduce_mean(positions, axis=1), labels

        return records.map(average)


def write_features(hp: HParams, train_files: list[str] | str, eval_files: list[str] | str,
                   directory: str) -> CachedFeatures:
    """Runs the frozen base once over the training and eval images; their features to disk.

    The extractor is the model's own input path (`build_features`: input scaling, the base in
    inference mode) with flatten pooling, so the records are the cut layer's output;
    augmentation is off.
    """
    plain = dataclasses.replace(hp, pooling="flatten", augment=AugmentConfig.off(),
                                cache_augmented_copies=0)
    images, cut, flattened = model_lib.build_features(plain)
    extractor = tf.keras.Model(images, flattened, name="bottleneck_features")
    channels = int(cut.shape[-1])
    train_images = data.make_dataset(train_files, hp.image_size, hp.batch_size, shuffle=True,
                                     seed=hp.seed)
    eval_images = data.make_dataset(eval_files, hp.image_size, hp.batch_size, shuffle=False)
    train = bottleneck.write_cache(extractor, train_images, os.path.join(directory, "train"))
    evaluation = bottleneck.write_cache(extractor, eval_images, os.path.join(directory, "eval"))
    return CachedFeatures(train, evaluation, channels)


class HeadTuner(base_tuner.BaseTuner):
    """Trials that train the tf_keras head alone on cached features and return its eval score.

    The features are written when the search begins (`cache(directory)`), into a temporary
    folder removed when it ends; `record` keeps what the cache cost, for the Tuner's trials file.
    """

    def __init__(self, oracle: kt.Oracle, hparams: HParams, space: SearchSpace,
                 cache: Callable[[str], CachedFeatures], directory: str,
                 class_weight: dict[int, float] | None = None,
                 compilation: devices.Compilation = devices.NO_XLA) -> None:
        super().__init__(oracle=oracle, directory=directory, project_name="head", overwrite=True)
        self.hparams = hparams
        self.space = space
        self.eager = False  # decided when the features' width is known (`on_search_begin`)
        self.class_weight = class_weight
        self.compilation = compilation
        self.record: dict[str, Any] = {}
        self.features: CachedFeatures | None = None
        self._cache = cache
        self._work: tempfile.TemporaryDirectory | None = None

    def on_search_begin(self) -> None:
        super().on_search_begin()
        self._work = tempfile.TemporaryDirectory(prefix="tuner-cache-")
        started = time.perf_counter()
        self.features = self._cache(self._work.name)
        held = self.features.hold()
        seconds = time.perf_counter() - started
        self.record["cache"] = {"train": self.features.train.describe(),
                                "eval": self.features.eval.describe(), "in_memory": held,
                                "seconds": round(seconds, 2)}
        progress_logger().info("tuning: features of %d training and %d eval images cached in "
                               "%.1f s", self.features.train.records, self.features.eval.records,
                               seconds)
        kept = kept_bytes(self.space, self.features, self.oracle.max_trials)
        self.eager = kept > KEPT_MEMORY_SHARE * physical_memory()
        self.record["trials_run_eagerly"] = self.eager
        if self.eager:
            progress_logger().info(
                "tuning: trials run eagerly (slower): compiled, they could keep up to %.1f GB "
                "(TensorFlow holds each compiled trial's weights)", kept / 1e9)

    def on_search_end(self) -> None:
        super().on_search_end()
        if self._work is not None:
            self._work.cleanup()
        self.features = self._work = None

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any
                  ) -> dict[str, float]:
        """Builds the head for the trial's values, fits it on the cache, scores it on eval."""
        started = time.perf_counter()  # the trial's whole cost: building the head too
        values = trial.hyperparameters.values
        hp = apply_values(self.hparams, values)
        epochs = int(values.get("tuner/epochs", hp.epochs))
        tf.keras.backend.clear_session()
        tf.keras.utils.set_random_seed(hp.seed)  # trials differ by their values alone
        pooling = hp.resolved_pooling
        features = tf.keras.Input((self.features.dim(pooling),), name="features")
        head = tf.keras.Model(features, model_lib.head(features, hp), name="head")
        model_lib.compile_model(head, hp.num_classes, hp.learning_rate, self.compilation)
        head.run_eagerly = self.eager
        batch = hp.head_batch_size
        train = self.features.dataset("train", pooling, batch, True, hp.seed)
        evaluation = self.features.dataset("eval", pooling, batch, False, hp.seed)
        stop = ([tf.keras.callbacks.EarlyStopping(monitor="val_loss",
                                                  patience=hp.early_stopping_patience,
                                                  restore_best_weights=True)]
                if hp.early_stopping_patience else [])
        history = head.fit(train.repeat() if hp.steps_per_epoch else train, epochs=epochs,
                           steps_per_epoch=hp.steps_per_epoch, validation_data=evaluation,
                           class_weight=self.class_weight, callbacks=stop, verbose=0)
        scores = head.evaluate(evaluation, return_dict=True, verbose=0)
        seconds = time.perf_counter() - started
        result = {OBJECTIVE: float(scores["accuracy"]), "val_loss": float(scores["loss"]),
                  "seconds": seconds, "epochs": float(len(history.history["loss"]))}
        progress_logger().info("tuning: trial %s of %s: %s: eval accuracy %.4f, loss %.4f "
                               "(%d epochs, %.1f s)", int(trial.trial_id) + 1,
                               self.oracle.max_trials, describe_values(values),
                               result[OBJECTIVE], result["val_loss"], result["epochs"], seconds)
        return result


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """TFX Tuner's entry point: the search `custom_config[TUNE_KEY]` asks for, on the cache."""
    tune = TuneConfig.from_config(fn_args.custom_config[TUNE_KEY])
    hp = with_data_class_names(HParams.from_config(fn_args.custom_config[HPARAMS_KEY]),
                               schema_class_names(fn_args.schema_path))
    tf.keras.utils.set_random_seed(hp.seed)
    hp, _ = resolve_input_scaling(hp, fn_args.train_files)
    counts = data.count_labels(fn_args.train_files, hp.num_classes)
    class_weight = balance.as_keras(balance.class_weights(counts, hp.class_weights))
    plan = devices.plan_devices(hp.devices, devices.visible_gpus(),
                                cpu_bfloat16=devices.cpu_supports_bfloat16())
    logging.info("tuning: %d trials of %s search over %s", tune.trials, tune.algorithm,
                 tune.space.to_config())
    tuner = HeadTuner(
        make_oracle(tune, hp.epochs, hp.seed), hp, tune.space,
        lambda directory: write_features(hp, fn_args.train_files, fn_args.eval_files, directory),
        directory=os.path.join(fn_args.working_dir or tempfile.gettempdir(), "keras_tuner"),
        class_weight=class_weight, compilation=plan.compilation)
    tuner.record.update(algorithm=tune.algorithm, trials_asked=tune.trials)
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={})
