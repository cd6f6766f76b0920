"""Input scaling decided before training, by `imgpipe run` (from the data folder) and by the
Trainer's `run_fn` (from Transform's output), on a MobileNetV2 base whose BatchNorm statistics
were learned from images fed in [0, 1] and whose file does not say so."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pipeline.local.input_scaling import resolve_input_scaling, sample_images
from pipeline.local.preflight import check_weights
from trainer import bases, run, scaling
from trainer.hparams import HParams

SIZE = 32


def _images(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (count, 1, 1, 3)) + rng.integers(0, 40, (count, SIZE, SIZE, 3))
    for image in images:
        top, left = rng.integers(0, SIZE // 2, 2)
        image[top:top + SIZE // 2, left:left + SIZE // 2] += rng.integers(100, 160, 3)
    return np.clip(images, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def unit_base(tmp_path_factory) -> str:
    """A no-top MobileNetV2 .h5 whose BatchNorm layers absorbed images fed as x / 255."""
    tf.keras.utils.set_random_seed(0)
    base = tf.keras.applications.MobileNetV2(include_top=False, weights=None,
                                             input_shape=(SIZE, SIZE, 3))
    for layer in base.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.5
    pixels = scaling.apply(scaling.UNIT, _images(1, 32))
    for _ in range(15):
        base(pixels, training=True)
    path = str(tmp_path_factory.mktemp("base") / "unit.h5")
    base.save_weights(path, save_format="h5")
    return path


def _hparams(weights: str, **values) -> HParams:
    return HParams(class_names=("a", "b"), base="mobilenet_v2", image_size=SIZE,
                   weights=weights, **values)


def test_imgpipe_run_detects_from_the_data_folder_and_records_how(unit_base, tmp_path):
    images = _images(2, 12)
    for i, image in enumerate(images):
        folder = tmp_path / "data" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    (tmp_path / "data" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    sample = sample_images(tmp_path / "data", SIZE, 64)
    assert sample.shape == (12, SIZE, SIZE, 3)  # the undecodable file left out
    hp, resolution = resolve_input_scaling(_hparams(unit_base), tmp_path / "data")
    assert (hp.input_scaling, resolution.how) == ("unit", "detected")
    assert hp.input_scaling_source == resolution.source
    assert hp.input_scaling_source.startswith("detected: unit ")
    assert HParams.from_config(hp.to_config()) == hp  # as ML Metadata and hparams.json keep it


def test_imgpipe_run_detects_and_cross_checks_on_the_base_preflight_built(unit_base, tmp_path,
                                                                        monkeypatch):
    for i, image in enumerate(_images(2, 8)):
        folder = tmp_path / "data" / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    application = check_weights(_hparams(unit_base))
    assert application is not None and check_weights(_hparams("none")) is None

    def no_second_build(*_args, **_kwargs):
        raise AssertionError("the base was built again")

    monkeypatch.setattr(bases, "build_application", no_second_build)
    hp, resolution = resolve_input_scaling(_hparams(unit_base), tmp_path / "data", application)
    assert (hp.input_scaling, resolution.how, resolution.warning) == ("unit", "detected", "")
    # Given for a file with no record: the choice stands, detection cross-checks it.
    given = _hparams(unit_base, input_scaling="inception")
    hp, resolution = resolve_input_scaling(given, tmp_path / "data", application)
    assert (hp.input_scaling, resolution.how) == ("inception", "given")
    assert resolution.warning.startswith(f"input_scaling inception was given, but the BatchNorm "
                                         f"statistics in {unit_base} point to unit (unit ")
    agreeing = resolve_input_scaling(_hparams(unit_base, input_scaling="unit"), tmp_path / "data",
                                     application)[1]
    assert agreeing.warning == ""


def test_run_fn_detects_from_transforms_output_or_keeps_what_imgpipe_run_decided(
        unit_base, tmp_path, write_records):
    records = write_records(tmp_path / "train.gz", _images(3, 20), np.zeros(20, np.int64))
    hp, resolution = run.resolve_input_scaling(_hparams(unit_base), records)
    assert (hp.input_scaling, resolution.how) == ("unit", "detected")
    assert resolution.to_record()["images"] == 20
    decided = dataclasses.replace(hp, input_scaling_source="detected: unit 0.01, torch 1 (...)")
    kept, record = run.resolve_input_scaling(decided, records)
    assert record.describe() == "unit (detected: unit 0.01, torch 1 (...))"
    assert kept == decided
    given, record = run.resolve_input_scaling(_hparams(unit_base, input_scaling="torch"), records)
    assert (given.input_scaling, record.describe()) == ("torch", "torch (given)")
