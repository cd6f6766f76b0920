"""Hyperparameters survive the trip through `custom_config` and refuse nonsense."""

import dataclasses
import json

import pytest

from trainer.augment import AugmentConfig
from trainer.devices import DeviceConfig
from trainer.hparams import HParams


def test_round_trip_through_json():
    hp = HParams(class_names=("cats", "dogs"), dense_units=(512, 1024), image_size=150,
                 base="mobilenet_v2", fine_tune_from="block_13_expand", weights_sha256="ab" * 32,
                 augment=AugmentConfig(shear=10.0, horizontal_flip=False),
                 devices=DeviceConfig(precision="mixed_bfloat16", xla="off", strategy="mirrored"))
    assert HParams.from_config(json.loads(json.dumps(hp.to_config()))) == hp


@pytest.mark.parametrize("overrides,message", [
    ({"class_names": ("only",)}, "two classes"),
    ({"image_size": 64}, "at least 75"),
    ({"dropout_rate": 1.0}, "dropout_rate"),
    ({"epochs": 0}, "epochs"),
    ({"pooling": "max"}, "pooling"),
    ({"dense_units": ()}, "dense_units"),
    ({"devices": DeviceConfig(xla="on")}, "XLA cannot compile"),
    ({"bottleneck_cache": True, "fine_tune_from": "mixed6"}, "fine_tune_from would change"),
    ({"cache_augmented_copies": 2}, "cache_augmented_copies 2 needs bottleneck_cache on"),
    ({"bottleneck_cache": True, "cache_augmented_copies": -1}, "at least 0"),
    ({"bottleneck_cache": True, "cache_batch_size": -1}, "cache_batch_size -1 must be at least 0"),
    ({"cache_batch_size": 128}, "cache_batch_size 128 needs bottleneck_cache on"),
    ({"bottleneck_cache": True, "cache_augmented_copies": 2, "augment": AugmentConfig.off()},
     "needs augmentation on"),
])
def test_invalid_values_are_refused(overrides, message):
    values = {"class_names": ("a", "b"), **overrides}
    with pytest.raises(ValueError, match=message):
        HParams(**values)


def test_unknown_keys_are_an_error_not_silently_dropped():
    with pytest.raises(ValueError, match="unknown hyperparameters: colour"):
        HParams.from_config({"class_names": ["a", "b"], "colour": "red"})


def test_xla_is_allowed_when_only_the_flip_is_on():
    hp = HParams(class_names=("a", "b"), devices=DeviceConfig(xla="on"),
                 augment=AugmentConfig(rotation_degrees=0, width_shift=0, height_shift=0,
                                       shear=0, zoom=0))
    assert not hp.augment.geometric and hp.augment.enabled


def test_the_cache_settings_round_trip_and_old_configs_default_to_no_cache():
    hp = HParams(class_names=("a", "b"), bottleneck_cache=True, cache_augmented_copies=3,
                 cache_batch_size=256)
    restored = HParams.from_config(json.loads(json.dumps(hp.to_config())))
    assert restored == hp and restored.head_batch_size == 256
    old = HParams(class_names=("a", "b")).to_config()
    del old["bottleneck_cache"], old["cache_augmented_copies"], old["cache_batch_size"]
    restored = HParams.from_config(old)
    assert not restored.bottleneck_cache and restored.cache_augmented_copies == 0
    assert restored.cache_batch_size == 0


def test_the_head_batch_size_is_the_batch_size_unless_the_cache_sets_its_own():
    assert HParams(class_names=("a", "b"), batch_size=16).head_batch_size == 16
    cached = HParams(class_names=("a", "b"), batch_size=16, bottleneck_cache=True)
    assert cached.head_batch_size == 16
    assert dataclasses.replace(cached, cache_batch_size=64).head_batch_size == 64
