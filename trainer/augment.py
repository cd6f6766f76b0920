"""In-graph augmentation, active only in training.

Keras preprocessing layers transform their input only when called with `training=True` (as `fit`
does) and pass it through unchanged at inference, so the exported model serves un-augmented.
The defaults follow the seeds' `ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
height_shift_range=0.2, shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
fill_mode='nearest')`, in the same units: degrees for rotation and shear, fractions of the image
size for shifts and zoom.

Two differences from ImageDataGenerator, both harmless for square images and symmetric ranges:
each augmentation is its own layer and resamples the image once (ImageDataGenerator composes one
affine matrix), and transforms are centred on the true image centre (ImageDataGenerator swaps
height and width when centring, which only matters for non-square images).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import tensorflow as tf

from trainer.configs import reject_unknown_keys

# Fixed seed offsets per augmentation, so that turning one off leaves the others' draws unchanged.
_SEED_OFFSETS = {"flip": 0, "rotation": 1, "translation": 2, "shear": 3, "zoom": 4}
_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the training augmentation, in ImageDataGenerator's units.

    `rotation_degrees` and `shear` are angles in degrees (the draw is uniform in [-r, r]);
    `width_shift` and `height_shift` are fractions of the width and height; `zoom` draws each axis'
    scale independently in [1 - zoom, 1 + zoom]. Zero turns an augmentation off.
    """

    horizontal_flip: bool = True
    rotation_degrees: float = 40.0
    width_shift: float = 0.2
    height_shift: float = 0.2
    shear: float = 0.2
    zoom: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.horizontal_flip, bool):
            raise ValueError(f"horizontal_flip must be a bool, got {self.horizontal_flip!r}")
        # Upper bounds: past 180 degrees a rotation range repeats itself; a shift of a whole
        # image or a zoom of 1 (scale 0) leaves nothing of it; a 90-degree shear is singular.
        limits = {"rotation_degrees": (180.0, True), "width_shift": (1.0, False),
                  "height_shift": (1.0, False), "shear": (90.0, False), "zoom": (1.0, False)}
        for name, (limit, inclusive) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
            if value > limit or (value == limit and not inclusive):
                bound = "at most" if inclusive else "less than"
                raise ValueError(f"{name} must be {bound} {limit:g}, got {value}")

    @classmethod
    def off(cls) -> AugmentConfig:
        """A configuration with every augmentation turned off."""
        return cls(horizontal_flip=False, rotation_degrees=0.0, width_shift=0.0,
                   height_shift=0.0, shear=0.0, zoom=0.0)

    @property
    def geometric(self) -> bool:
        """Whether rotation, shift, shear or zoom is on (all resample through an affine warp)."""
        return any(
            (self.rotation_degrees, self.width_shift, self.height_shift, self.shear, self.zoom))

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is on."""
        return self.horizontal_flip or self.geometric

    def to_config(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AugmentConfig:
        """The inverse of `to_config`; unknown keys are an error, missing ones take defaults."""
        reject_unknown_keys(cls, config, "augmentation settings")
        return cls(**config)


def shear_matrix(angles: tf.Tensor, image_height: tf.Tensor, image_width: tf.Tensor) -> tf.Tensor:
    """[N, 8] projective transforms shearing by `angles` (radians) as ImageDataGenerator does.

    Each row maps an output pixel (x = column, y = row) to the input pixel it samples, relative to
    the centre (cx, cy): x' - cx = (x - cx) - sin(a) (y - cy) and y' - cy = cos(a) (y - cy).
    A vertical line through the centre thus leans with slope dx/dy = sin(a) (its bottom moves
    right for a > 0), and heights are stretched by 1 / cos(a), exactly as in
    `apply_affine_transform`'s shear matrix [[1, -sin a, 0], [0, cos a, 0], [0, 0, 1]].
    `image_width` is unused but kept for symmetry with tf_keras' `get_rotation_matrix`.
    """
    del image_width  # The shear moves pixels along rows by an amount set by their row only.
    angles = tf.cast(angles, tf.float32)
    center_y = (tf.cast(image_height, tf.float32) - 1.0) / 2.0
    sin, cos = tf.sin(angles), tf.cos(angles)
    ones, zeros = tf.ones_like(angles), tf.zeros_like(angles)
    return tf.stack([ones, -sin, sin * center_y,
                     zeros, cos, (1.0 - cos) * center_y,
                     zeros, zeros], axis=1)


@tf.keras.utils.register_keras_serializable(package="imgpipe")
class RandomShear(tf.keras.__internal__.layers.BaseRandomLayer):
    """Randomly shears images during training, as ImageDataGenerator's `shear_range` does.

    Each image gets its own angle drawn uniformly in [-shear_degrees, shear_degrees], in DEGREES:
    ImageDataGenerator documents `shear_range` as "Shear angle in counter-clockwise direction in
    degrees" and converts it with `np.deg2rad`, so the seeds' `shear_range=0.2` shears by at most
    0.2 degrees (the top row of a 150 px image moves by about a quarter of a pixel). See
    `shear_matrix` for the exact transform. Like tf_keras' random layers, the layer returns its
    input unchanged when `training` is False, and also when `shear_degrees` is 0.

    Input and output: float images [N, H, W, C] (or one image [H, W, C]), channels last.
    """

    def __init__(self, shear_degrees: float, fill_mode: str = "nearest",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, **kwargs: Any) -> None:
        # force_generator: a tf.random.Generator gives fresh draws on every step inside `fit`'s
        # tf.function, as in tf_keras' own RandomRotation.
        super().__init__(seed=seed, force_generator=True, **kwargs)
        if not 0.0 <= shear_degrees < 90.0:
            raise ValueError(f"shear_degrees must be in [0, 90), got {shear_degrees}")
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"fill_mode must be one of {_FILL_MODES}, got {fill_mode!r}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
        self.shear_degrees = float(shear_degrees)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.seed = seed
        self.fill_value = fill_value

    def call(self, inputs: tf.Tensor, training: bool | tf.Tensor = True) -> tf.Tensor:
        """Sheared images when training, `inputs` (cast to the compute dtype) otherwise."""
        inputs = tf.cast(inputs, self.compute_dtype)
        if self.shear_degrees == 0.0:
            return inputs
        # smart_cond decides in Python for a Python value (None counts as False, as in tf_keras'
        # `if training:`) and builds a tf.cond for a tensor.
        if not tf.is_tensor(training):
            training = bool(training)
        return tf.__internal__.smart_cond.smart_cond(
            training, lambda: self._shear(inputs), lambda: inputs)

    def _shear(self, inputs: tf.Tensor) -> tf.Tensor:
        """Every image sheared by its own random angle."""
        unbatched = inputs.shape.rank == 3
        images = tf.expand_dims(inputs, 0) if unbatched else inputs
        shape = tf.shape(images)
        limit = float(np.deg2rad(self.shear_degrees))
        angles = self._random_generator.random_uniform(
            shape=[shape[0]], minval=-limit, maxval=limit)
        output = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=shear_matrix(angles, shape[1], shape[2]),
            output_shape=shape[1:3],
            fill_value=tf.constant(self.fill_value, tf.float32),
            fill_mode=self.fill_mode.upper(),
            interpolation=self.interpolation.upper(),
        )
        output = tf.squeeze(output, 0) if unbatched else output
        output.set_shape(inputs.shape)
        return output

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        """The input's shape: shearing keeps the image size."""
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, for Keras serialization."""
        return {**super().get_config(), "shear_degrees": self.shear_degrees,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}


def build_augmentation(config: AugmentConfig, seed: int) -> tf.keras.Sequential:
    """The enabled augmentations as one block of layers (empty, so the identity, when all off)."""
    # Rotation, translation, shear then zoom: applied one after the other, they compose in the
    # order of ImageDataGenerator's matrix (rotation @ shift @ shear @ zoom). It flips last, but
    # with every range symmetric the order of the flip does not change the distribution.
    layers: list[tf.keras.layers.Layer] = []
    if config.horizontal_flip:
        layers.append(tf.keras.layers.RandomFlip(
            "horizontal", seed=seed + _SEED_OFFSETS["flip"], name="flip"))
    if config.rotation_degrees:
        # RandomRotation's factor is a fraction of a full turn.
        layers.append(tf.keras.layers.RandomRotation(
            config.rotation_degrees / 360.0, fill_mode="nearest",
            seed=seed + _SEED_OFFSETS["rotation"], name="rotation"))
    if config.width_shift or config.height_shift:
        layers.append(tf.keras.layers.RandomTranslation(
            config.height_shift, config.width_shift, fill_mode="nearest",
            seed=seed + _SEED_OFFSETS["translation"], name="translation"))
    if config.shear:
        layers.append(RandomShear(
            config.shear, fill_mode="nearest", seed=seed + _SEED_OFFSETS["shear"], name="shear"))
    if config.zoom:
        # A width_factor of its own draws the two axes' scales independently, as
        # ImageDataGenerator does (`zx, zy = np.random.uniform(..., 2)`).
        layers.append(tf.keras.layers.RandomZoom(
            config.zoom, config.zoom, fill_mode="nearest",
            seed=seed + _SEED_OFFSETS["zoom"], name="zoom"))
    return tf.keras.Sequential(layers, name="augmentation")
