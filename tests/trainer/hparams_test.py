"""Hyperparameters survive the trip through `custom_config` and refuse nonsense."""

import json

import pytest

from trainer.hparams import HParams


def test_round_trip_through_json():
    hp = HParams(class_names=("cats", "dogs"), dense_units=(512, 1024), image_size=150)
    assert HParams.from_config(json.loads(json.dumps(hp.to_config()))) == hp


@pytest.mark.parametrize("overrides,message", [
    ({"class_names": ("only",)}, "two classes"),
    ({"image_size": 64}, "at least 75"),
    ({"dropout_rate": 1.0}, "dropout_rate"),
    ({"epochs": 0}, "epochs"),
])
def test_invalid_values_are_refused(overrides, message):
    values = {"class_names": ("a", "b"), **overrides}
    with pytest.raises(ValueError, match=message):
        HParams(**values)


def test_unknown_keys_are_an_error_not_silently_dropped():
    with pytest.raises(ValueError, match="unknown hyperparameters: colour"):
        HParams.from_config({"class_names": ["a", "b"], "colour": "red"})
