"""Hyperparameters: one typed dataclass that travels to the Trainer through `custom_config`."""

from __future__ import annotations

import dataclasses
from typing import Any

from trainer import scaling
from trainer.augment import AugmentConfig
from trainer.balance import MODES as CLASS_WEIGHT_MODES
from trainer.bases import BaseSpec, get_base_spec
from trainer.configs import reject_unknown_keys
from trainer.contract import POOLINGS
from trainer.devices import DeviceConfig


@dataclasses.dataclass(frozen=True)
class HParams:
    """Everything the Trainer needs to build, train and export the model.

    `weights` is 'imagenet', 'none' or the path of a local no-top `.h5` file with the base's
    weights (loaded with Keras' `load_weights`), optionally pinned by `weights_sha256`.
    `cut_layer` and `pooling` default to the base's own (InceptionV3: `mixed7` and flatten).
    Fine-tuning runs only when `fine_tune_from` names a base layer: after the head has trained,
    that layer and those above it are unfrozen and trained at `fine_tune_learning_rate`.
    `early_stopping_patience` 0 turns early stopping off.
    `bottleneck_cache` trains the head on the frozen base's features computed once and kept on
    disk (`trainer/bottleneck.py`); `cache_augmented_copies` K > 0 caches K augmented copies of
    each training image instead of one plain one; `cache_batch_size` is the batch of the head's
    epochs on the cached features (0: `batch_size`, which the feature extraction always uses). A
    larger one makes those epochs faster but takes fewer optimiser steps per epoch, so it is only
    ever the user's choice. The cache cannot be combined with fine-tuning.
    `images_in_memory_mb` M > 0 holds the decoded training and eval images in memory when each
    set's decoded size is at most M MiB (`trainer.data.make_dataset`): decoded once, not again
    every epoch. 0, the default, streams them from disk every epoch, so memory stays flat
    whatever the data's size.
    `class_weights` weighs the loss by class against imbalance (`trainer.balance`): `auto`
    balances by the training split's class counts when the largest class has more than 1.5
    times the examples of the smallest, `balanced` always, `none` never.
    `input_scaling` is how the base is fed (`trainer.scaling`): a convention, or 'auto', which
    `trainer.scaling.resolve` turns into one before training; `input_scaling_source` says how it
    was decided ('' when the user chose it), for the run's record.
    """

    class_names: tuple[str, ...]
    image_size: int = 150
    base: str = "inception_v3"
    weights: str = "imagenet"
    weights_sha256: str | None = None
    cut_layer: str | None = None
    pooling: str | None = None
    dense_units: tuple[int, ...] = (1024,)
    dropout_rate: float = 0.2
    learning_rate: float = 1e-4
    epochs: int = 5
    steps_per_epoch: int | None = None
    batch_size: int = 32
    early_stopping_patience: int = 3
    fine_tune_from: str | None = None
    fine_tune_epochs: int = 3
    fine_tune_learning_rate: float = 1e-5
    warm_start: bool = True
    bottleneck_cache: bool = False
    cache_augmented_copies: int = 0
    cache_batch_size: int = 0
    images_in_memory_mb: int = 0
    class_weights: str = "auto"
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    devices: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    seed: int = 42
    input_scaling: str = scaling.AUTO
    input_scaling_source: str = ""

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError(f"need at least two classes, got {list(self.class_names)}")
        spec = get_base_spec(self.base)
        if self.image_size < spec.min_image_size:
            raise ValueError(f"image_size must be at least {spec.min_image_size} for {self.base}, "
                             f"got {self.image_size}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not self.dense_units or any(units < 1 for units in self.dense_units):
            raise ValueError(f"dense_units must be positive, got {list(self.dense_units)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be at least 1")
        if self.devices.xla == "on" and self.augment.geometric:
            raise ValueError("XLA cannot compile the rotation, shift, shear and zoom augmentation "
                             "(no XLA kernel for ImageProjectiveTransformV3 in TF 2.16); turn XLA "
                             "to auto or off, or those augmentations off")
        if self.early_stopping_patience < 0 or self.fine_tune_epochs < 1:
            raise ValueError("early_stopping_patience must be >= 0 and fine_tune_epochs >= 1")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.images_in_memory_mb < 0:
            raise ValueError(f"images_in_memory_mb {self.images_in_memory_mb} must be at least 0")
        if self.class_weights not in CLASS_WEIGHT_MODES:
            raise ValueError(f"class_weights must be one of {', '.join(CLASS_WEIGHT_MODES)}, "
                             f"got {self.class_weights!r}")
        scaling.check_convention(self.input_scaling, allow_auto=True)
        self._check_cache()

    def _check_cache(self) -> None:
        """The bottleneck cache's rules, stated once: the CLI shows these with flag names."""
        copies, batch = self.cache_augmented_copies, self.cache_batch_size
        if copies < 0:
            raise ValueError(f"cache_augmented_copies {copies} must be at least 0")
        if batch < 0:
            raise ValueError(f"cache_batch_size {batch} must be at least 0")
        if not self.bottleneck_cache:
            if copies:
                raise ValueError(f"cache_augmented_copies {copies} needs bottleneck_cache on")
            if batch:
                raise ValueError(f"cache_batch_size {batch} needs bottleneck_cache on")
            return
        if self.fine_tune_from:
            raise ValueError("bottleneck_cache on trains the head on stored features of the "
                             "frozen base, which fine_tune_from would change; drop one of the two")
        if copies and not self.augment.enabled:
            raise ValueError(f"cache_augmented_copies {copies} needs augmentation on (with it "
                             "off every copy would be the same)")

    @property
    def base_spec(self) -> BaseSpec:
        """The registry entry of `base`."""
        return get_base_spec(self.base)

    @property
    def resolved_cut_layer(self) -> str:
        """`cut_layer`, or the base's default."""
        return self.cut_layer or self.base_spec.default_cut_layer

    @property
    def resolved_pooling(self) -> str:
        """`pooling`, or the base's default."""
        return self.pooling or self.base_spec.default_pooling

    @property
    def resolved_input_scaling(self) -> str:
        """The convention the model applies: `input_scaling`, or for 'auto' with ImageNet or
        random weights the base's documented one. 'auto' with a weights file must be resolved
        first (`trainer.scaling.resolve`): guessing is how a base gets fed wrongly."""
        if self.input_scaling != scaling.AUTO:
            return self.input_scaling
        if self.weights in ("imagenet", "none"):
            return self.base_spec.convention
        raise ValueError(f"input_scaling auto for weights file {self.weights} is decided by "
                         "trainer.scaling.resolve before the model is built")

    @property
    def images_in_memory_bytes(self) -> int:
        """`make_dataset`'s `memory_bytes`: the bound on decoded images held in memory."""
        return self.images_in_memory_mb << 20

    @property
    def head_batch_size(self) -> int:
        """The batch of the head's epochs on the cache: `cache_batch_size`, or `batch_size`."""
        return self.cache_batch_size or self.batch_size

    @property
    def num_classes(self) -> int:
        """How many classes the head predicts."""
        return len(self.class_names)

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly dict for `custom_config` (ML Metadata stores it as JSON)."""
        config = dataclasses.asdict(self)
        config["class_names"] = list(self.class_names)
        config["dense_units"] = list(self.dense_units)
        config["augment"] = self.augment.to_config()
        config["devices"] = self.devices.to_config()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HParams:
        """The inverse of `to_config`; unknown keys are an error, not silently dropped."""
        reject_unknown_keys(cls, config, "hyperparameters")
        values = dict(config)
        values["class_names"] = tuple(values["class_names"])
        if "dense_units" in values:
            values["dense_units"] = tuple(values["dense_units"])
        if "augment" in values:
            values["augment"] = AugmentConfig.from_config(values["augment"])
        if "devices" in values:
            values["devices"] = DeviceConfig.from_config(values["devices"])
        return cls(**values)
