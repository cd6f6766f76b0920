"""Input scaling: each convention is Keras' own, recorded in .h5 files, resolved in order, and
detected from BatchNorm statistics (on small models here; pretrained bases in
scaling_pretrained_test.py)."""

import h5py
import numpy as np
import pytest
import tensorflow as tf

from pipeline.cli.options import INPUT_SCALING_CHOICES, in_flag_names
from trainer import scaling
from trainer.hparams import HParams

PIXELS = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3)).astype(np.float32)


def _keras(convention: str, pixels: np.ndarray) -> np.ndarray:
    """The same pixels through Keras' own code for the convention."""
    if convention == scaling.UNIT:  # the seeds' recipe: ImageDataGenerator(rescale=1./255)
        generator = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1.0 / 255)
        return np.stack([generator.standardize(p.copy()) for p in pixels])
    mode = {scaling.INCEPTION: "tf", scaling.CAFFE: "caffe", scaling.TORCH: "torch"}[convention]
    return tf.keras.applications.imagenet_utils.preprocess_input(pixels.copy(), mode=mode)


@pytest.mark.parametrize("convention", scaling.CONVENTIONS)
def test_each_convention_is_what_keras_computes_in_the_layer_and_in_numpy(convention):
    expected = _keras(convention, PIXELS)
    layer = scaling.preprocess_layer(convention)
    np.testing.assert_allclose(layer(PIXELS.astype(np.uint8)).numpy(), expected, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(scaling.apply(convention, PIXELS), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.invert(expected), PIXELS, atol=1e-3)
    assert layer.name == "base_preprocess"


def test_the_conventions_differ_and_the_cli_offers_exactly_them():
    outputs = [scaling.apply(c, PIXELS) for c in scaling.CONVENTIONS]
    for i, a in enumerate(outputs):
        for b in outputs[i + 1:]:
            assert not np.allclose(a, b)
    assert set(INPUT_SCALING_CHOICES) == set(scaling.CHOICES)
    with pytest.raises(ValueError, match="input_scaling 'tf' is not one of"):
        HParams(class_names=("a", "b"), input_scaling="tf")


def _weights_file(path, convention=None) -> str:
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    model.save_weights(str(path), save_format="h5")
    if convention:
        scaling.record_convention(str(path), convention)
    return str(path)


def test_a_recorded_convention_is_read_back_and_keras_still_loads_the_file(tmp_path):
    path = _weights_file(tmp_path / "w.h5", scaling.TORCH)
    assert scaling.recorded_convention(path) == scaling.TORCH
    tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]).load_weights(path)
    assert scaling.recorded_convention(_weights_file(tmp_path / "bare.h5")) is None
    with h5py.File(path, "a") as f:
        f.attrs[scaling.H5_ATTRIBUTE] = "bgr"
    with pytest.raises(ValueError, match="records input scaling 'bgr'"):
        scaling.recorded_convention(path)


def test_resolution_order_record_then_choice_then_documented_then_detection(tmp_path):
    recorded = _weights_file(tmp_path / "r.h5", scaling.UNIT)
    bare = _weights_file(tmp_path / "b.h5")

    def never():
        raise AssertionError("nothing to detect here")

    assert scaling.resolve("auto", "inception", recorded, never, never).describe() == (
        f"unit (recorded: in {recorded})")
    assert scaling.resolve("unit", "inception", recorded, never, never).how == "recorded"
    with pytest.raises(scaling.ScalingError) as error:
        scaling.resolve("caffe", "inception", recorded, never, never)
    assert in_flag_names(str(error.value)) == (
        f"--input-scaling caffe contradicts the unit recorded in {recorded} (by pretrain-base); "
        "drop --input-scaling to use the file's, or pass --input-scaling unit")
    assert scaling.resolve("torch", "inception", bare, never, never).describe() == "torch (given)"
    assert scaling.resolve("auto", "inception", "imagenet").how == "documented"
    assert scaling.resolve("auto", "inception", "none").convention == "inception"
    with pytest.raises(scaling.ScalingError, match="pass input_scaling"):
        scaling.resolve("auto", "inception", bare)
    resolution = scaling.Resolution("unit", "detected", "unit 0.01, torch 1 (...)")
    assert scaling.Resolution.from_source("unit", resolution.source) == resolution


def _conv_bn(seed: int = 0) -> tf.keras.Model:
    """Input -> Conv (no bias) -> BatchNorm -> ReLU -> Conv -> BatchNorm: the shape of a base's
    stem. Only the first BatchNorm's input is linear in the pixels."""
    tf.keras.utils.set_random_seed(seed)
    x = inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(8, 3, use_bias=False, name="stem")(x)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Conv2D(8, 3, use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization(name="second_bn")(x)
    return tf.keras.Model(inputs, x)


def _train_statistics(model: tf.keras.Model, images: np.ndarray, convention: str) -> None:
    """What training under `convention` leaves in BatchNorm: the moving statistics of its
    inputs, absorbed by forward passes in training mode."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.5
    for _ in range(20):
        model(scaling.apply(convention, images), training=True)


def _shapes(seed: int, count: int = 48) -> np.ndarray:
    """Bright squares on dark backgrounds of varying tint: natural-ish pixel statistics."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (count, 1, 1, 3)) + rng.integers(0, 30, (count, 16, 16, 3))
    for image in images:
        top, left = rng.integers(0, 8, 2)
        image[top:top + 8, left:left + 8] += rng.integers(100, 160, 3)
    return np.clip(images, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("convention", scaling.CONVENTIONS)
def test_detection_picks_the_convention_the_statistics_were_learned_under(convention):
    model = _conv_bn()
    assert [layer.name for layer in scaling.first_batchnorms(model)] == ["stem_bn"]
    _train_statistics(model, _shapes(1), convention)
    detection = scaling.detect(model, _shapes(2))  # other images than those it learned on
    assert detection.convention == convention, detection.evidence()
    ranked = detection.ranked()
    assert ranked[1][1] >= scaling.MARGIN * ranked[0][1]
    assert detection.layers == ("stem_bn",) and detection.images == 48


def test_untrained_statistics_and_no_clear_winner_detect_nothing():
    untrained = scaling.detect(_conv_bn(), _shapes(2))
    assert untrained.convention is None and untrained.untrained
    model = _conv_bn()
    _train_statistics(model, _shapes(1), scaling.UNIT)
    # Demanding a margin no candidate can meet is the same as two candidates too close.
    unclear = scaling.detect(model, _shapes(2), margin=1e9)
    assert unclear.convention is None and not unclear.untrained
    assert unclear.evidence().startswith("unit ")


def test_a_clear_winner_still_far_from_the_statistics_is_not_taken():
    model = _conv_bn()
    stem_bn = model.get_layer("stem_bn")
    _train_statistics(model, _shapes(1), scaling.TORCH)
    settled = (stem_bn.moving_mean.numpy(), stem_bn.moving_variance.numpy())
    # A short pretraining: 40% of BatchNorm's initial mean 0 and variance 1 still in them.
    stem_bn.moving_mean.assign(0.6 * settled[0])
    stem_bn.moving_variance.assign(0.6 * settled[1] + 0.4)
    detection = scaling.detect(model, _shapes(2))
    ranked = detection.ranked()
    assert ranked[0][0] == scaling.TORCH and ranked[1][1] >= scaling.MARGIN * ranked[0][1]
    assert ranked[0][1] > scaling.MAX_DISTANCE
    assert detection.convention is None and not detection.untrained, detection.evidence()


def test_no_clear_winner_stops_in_one_line_naming_the_flag_with_the_evidence(tmp_path,
                                                                            monkeypatch):
    model = _conv_bn()
    _train_statistics(model, _shapes(1), scaling.TORCH)
    path = _weights_file(tmp_path / "w.h5")
    monkeypatch.setattr(scaling, "MARGIN", 1e9)
    with pytest.raises(scaling.ScalingError) as error:
        scaling.resolve("auto", "inception", path, lambda: model, lambda: _shapes(2))
    message = in_flag_names(str(error.value))
    assert "\n" not in message
    assert message.startswith(f"cannot tell how {path} was fed in training: no convention is "
                              "clearly closest within 0.1 (torch ")
    assert message.endswith("; pass --input-scaling (inception, unit, caffe, torch)")
    monkeypatch.setattr(scaling, "MARGIN", 3.0)
    detected = scaling.resolve("auto", "inception", path, lambda: model, lambda: _shapes(2))
    assert detected.describe().startswith("torch (detected: torch ")
    assert detected.to_record()["distances"] == detected.detection.distances


def test_a_given_convention_is_cross_checked_and_warned_about_only_when_detection_is_clear():
    model = _conv_bn()
    _train_statistics(model, _shapes(1), scaling.TORCH)
    given = scaling.Resolution(scaling.UNIT, "given")
    warned = scaling.cross_check(given, "w.h5", lambda: model, lambda: _shapes(2))
    assert (warned.convention, warned.how) == ("unit", "given")  # the choice stands
    assert warned.warning.startswith("input_scaling unit was given, but the BatchNorm statistics "
                                     "in w.h5 point to torch (torch ")
    assert "\n" not in warned.warning
    agreeing = scaling.Resolution(scaling.TORCH, "given")
    assert scaling.cross_check(agreeing, "w.h5", lambda: model, lambda: _shapes(2)) == agreeing
    assert scaling.cross_check(given, "w.h5", _conv_bn, lambda: _shapes(2)) == given  # untrained
