"""Hyperparameters: one typed dataclass that travels to the Trainer through `custom_config`."""

from __future__ import annotations

import dataclasses
from typing import Any

MIN_IMAGE_SIZE = 75  # InceptionV3 with include_top=False needs at least 75x75 inputs.


@dataclasses.dataclass(frozen=True)
class HParams:
    """Everything the Trainer needs to build, train and export the model.

    `weights` is 'imagenet', 'none' or the path of a local `.h5` file with the base's weights
    (the seeds' `load_weights(local_weights_file)`).
    """

    class_names: tuple[str, ...]
    image_size: int = 150
    weights: str = "imagenet"
    cut_layer: str = "mixed7"
    dense_units: tuple[int, ...] = (1024,)
    dropout_rate: float = 0.2
    learning_rate: float = 1e-4
    epochs: int = 5
    batch_size: int = 32
    augment: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError(f"need at least two classes, got {list(self.class_names)}")
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {self.image_size}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")

    @property
    def num_classes(self) -> int:
        """How many classes the head predicts."""
        return len(self.class_names)

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly dict for `custom_config` (ML Metadata stores it as JSON)."""
        config = dataclasses.asdict(self)
        config["class_names"] = list(self.class_names)
        config["dense_units"] = list(self.dense_units)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HParams:
        """The inverse of `to_config`; unknown keys are an error, not silently dropped."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"unknown hyperparameters: {', '.join(unknown)}")
        values = dict(config)
        values["class_names"] = tuple(values["class_names"])
        if "dense_units" in values:
            values["dense_units"] = tuple(values["dense_units"])
        return cls(**values)
