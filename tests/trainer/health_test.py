"""The feature check stops on degenerate features and warns on a wrong input scale; the chance
check tells a head that learned nothing."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import contract, health, scaling
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.bases import build_application, get_base_spec
from trainer.hparams import HParams

SIZE = 75


def _healthy(n: int = 32, units: int = 200, seed: int = 0) -> np.ndarray:
    """ReLU-like features of O(1) scale that differ between images."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(0.2, 1.0, (n, units)), 0.0).astype(np.float32)


def test_healthy_features_pass_without_warnings():
    report = health.check_features(_healthy())
    assert report.errors == () and report.warnings == ()
    assert report.images == 32 and report.units == 200
    assert report.measures["dead_share"] < 0.1 and report.measures["spread"] > 0.3
    report.raise_if_degenerate()  # nothing to raise


def test_nan_or_infinite_features_are_an_error():
    features = _healthy()
    features[3, 7], features[5, 1] = np.nan, np.inf
    report = health.check_features(features)
    assert report.errors == ("2 of 6400 values are NaN or infinite",)
    with pytest.raises(health.FeatureHealthError) as raised:
        report.raise_if_degenerate()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("the frozen base's features on 32 training images are degenerate: "
                              "2 of 6400 values are NaN or infinite; check --weights")


def test_all_zero_features_are_an_error():
    report = health.check_features(np.zeros((16, 50), np.float32))
    assert report.errors == ("every feature is zero",)
    assert report.measures["dead_share"] == 1.0


def test_a_dead_share_above_the_threshold_is_an_error_and_below_it_is_not():
    features = _healthy(units=100)
    features[:, :91] = 0.0  # 91% of the units never fire
    assert report_errors(features) == [
        "91.0% of the 100 units are dead (zero on every image; at most 90% expected)"]
    features = _healthy(units=100)
    features[:, :89] = 0.0
    assert report_errors(features) == []


def report_errors(features: np.ndarray) -> list[str]:
    return list(health.check_features(features).errors)


def test_features_identical_across_images_are_an_error():
    row = _healthy(n=1)[0]
    same = np.tile(row, (20, 1))
    assert report_errors(same) == ["they are the same for every image (spread 0 < 0.001)"]
    # Differences of a ten-thousandth of the features' scale are still "the same".
    nearly = same + np.random.default_rng(1).normal(0, 1e-4, same.shape)
    assert len(report_errors(nearly)) == 1
    assert report_errors(same + np.random.default_rng(1).normal(0, 0.05, same.shape)) == []


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_features_far_off_a_trained_bases_scale_are_a_warning(scale):
    report = health.check_features(_healthy() * scale)
    assert report.errors == ()
    assert len(report.warnings) == 1 and "far off the 0.01..100 of a trained base" in (
        report.warnings[0])


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("a", "b"), image_size=SIZE, weights="none", dense_units=(4,),
                  augment=AugmentConfig.off(), epochs=1, early_stopping_patience=0, seed=3,
                  batch_size=8)
    values.update(overrides)
    return HParams(**values)


def _photos(n: int, seed: int) -> np.ndarray:
    """Smooth random images: blobs of colour, like photographs at this size."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 6, 3)).astype(np.float32)
    return np.clip(tf.image.resize(small, (SIZE, SIZE)).numpy(), 0, 255).astype(np.uint8)


def _pretrain_batchnorm(base: tf.keras.Model, images: np.ndarray, convention: str) -> None:
    """What pretraining leaves in BatchNorm: moving statistics of the inputs it saw, fed under
    `convention` (`trainer.scaling`). (Momentum 0 makes one pass in training mode set each
    layer's moving statistics to that batch's, layer after layer.)"""
    base.trainable = True  # frozen Keras 2 BatchNorm runs in inference mode even in training
    layers = [layer for layer in base.layers
              if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = 0.0
    base(scaling.apply(convention, images), training=True)
    base.trainable = False


@pytest.fixture(scope="module")
def model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    return model_lib.build_model(_hparams())


@pytest.mark.slow  # InceptionV3 built, its BatchNorm set twice: 11 CPU-seconds
def test_a_base_fed_with_another_input_scaling_than_its_weights_learned_is_reported(model):
    # `model` feeds the base InceptionV3's own scaling, x / 127.5 - 1 (--input-scaling inception,
    # what 'auto' gives random weights). A base whose BatchNorm learned on x / 255 (0..1) gets a
    # warning that names the input scaling; the same base behind --input-scaling unit passes.
    base = model_lib.get_base(model)
    sample = _photos(32, seed=2)
    # Random weights hold BatchNorm's initial statistics: nothing learned to compare with.
    assert health.batchnorm_drift(base, sample.astype(np.float32)) is None
    assert "batchnorm_drift" not in health.check_model(model, sample).measures
    _pretrain_batchnorm(base, _photos(32, seed=1), scaling.UNIT)
    wrong = health.check_model(model, sample)
    assert wrong.errors == ()
    assert [w for w in wrong.warnings if "is the input scaling the one these weights expect?"
            in w], wrong.warnings
    assert wrong.measures["batchnorm_drift"] > health.DRIFT_WARNING
    fed_right = model_lib.build_model(_hparams(input_scaling=scaling.UNIT), base=base)
    right = health.check_model(fed_right, sample)
    assert right.warnings == () and right.errors == ()
    assert right.measures["batchnorm_drift"] < health.DRIFT_WARNING / 2


@pytest.mark.slow  # the Trainer's run_fn up to the check: 12 CPU-seconds, 27 s on busy cores
def test_a_weights_file_of_zeros_stops_the_trainer_before_training(tmp_path, write_records,
                                                                    transform_output):
    from tfx import v1 as tfx

    from trainer import run

    # MobileNetV2 at 32 px: the smallest base there is, so the test stays cheap.
    application = build_application(get_base_spec("mobilenet_v2"), 32, "none")
    application.set_weights([np.zeros(w.shape, w.dtype.as_numpy_dtype)
                             for w in application.weights])
    weights = str(tmp_path / "zeros.h5")
    application.save_weights(weights, save_format="h5")
    images = tf.image.resize(_photos(8, seed=3), (32, 32)).numpy().astype(np.uint8)
    train = write_records(tmp_path / "train.gz", images, np.array([0, 1] * 4))
    # The scaling is given: detection alone would already stop on these weights (every
    # convention equally close), and this test is about the feature check.
    hp = _hparams(weights=weights, base="mobilenet_v2", image_size=32,
                  input_scaling=scaling.INCEPTION)
    fn_args = tfx.components.FnArgs(
        train_files=[train], eval_files=[train],
        transform_output=os.path.dirname(transform_output.transform_savedmodel_dir),
        serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"),
        custom_config={contract.HPARAMS_KEY: hp.to_config()}, schema_path=None, base_model=None)
    with pytest.raises(health.FeatureHealthError) as raised:
        run.run_fn(fn_args)
    assert str(raised.value) == (
        "the frozen base's features on 8 training images are degenerate: every feature is zero; "
        "check --weights and --cut-layer (see docs/model.md, the feature check)")
    record = json.loads((tmp_path / "run" / contract.HISTORY_FILE).read_text())
    assert record["health"]["errors"] == ["every feature is zero"]
    assert "history" not in record and not (tmp_path / "serving").exists()


def test_a_head_no_better_than_the_largest_class_or_a_constant_answer_is_at_chance():
    prior = health.constant_loss([90, 10])  # the entropy of 0.9 / 0.1
    assert prior == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)))
    # Balanced weights make every class weigh the same: the constant answer is 1/2, log 2.
    assert health.constant_loss([90, 10], [100 / 180, 100 / 20]) == pytest.approx(np.log(2))
    at_chance = health.chance_check({"accuracy": [0.85, 0.91], "loss": [0.5, 0.33]}, [90, 10])
    assert at_chance["at_chance"] and at_chance["chance_accuracy"] == 0.9
    assert at_chance["best_train_accuracy"] == 0.91 and at_chance["best_train_loss"] == 0.33
    assert at_chance["likely_causes"][0] == "a wrong input scaling for the base's weights"
    learned = health.chance_check({"accuracy": [0.5, 0.7], "loss": [0.69, 0.5]}, [50, 50])
    assert learned == {"best_train_accuracy": 0.7, "chance_accuracy": 0.5,
                       "best_train_loss": 0.5, "chance_loss": 0.6931, "at_chance": False}
    # With class weights a head that learned may be less accurate than the largest class
    # alone; its loss, well under log 2, says it learned.
    weights = [100 / 180, 100 / 20]
    assert not health.chance_check({"accuracy": [0.8], "loss": [0.45]}, [90, 10],
                                   weights)["at_chance"]
    assert health.chance_check({"accuracy": [0.8], "loss": [0.69]}, [90, 10],
                               weights)["at_chance"]
    assert health.chance_check({}, [5, 5]) == {}
