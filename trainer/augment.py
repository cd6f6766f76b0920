"""In-graph augmentation, active only in training.

Keras preprocessing layers transform their input only when called with `training=True` (as `fit`
does) and pass it through unchanged at inference, so the exported model serves un-augmented.
The defaults are those of the classic Keras transfer-learning recipe,
`ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode='nearest')`, in the same units:
degrees for rotation and shear, fractions of the image size for shifts and zoom.

Rotation, shift, shear and zoom are composed into one matrix and the image is resampled once, as
ImageDataGenerator does (`RandomAffine`); the flip follows. Two differences from ImageDataGenerator,
both invisible for square images with equal shift ranges: the matrix is centred on the true image
centre (ImageDataGenerator swaps height and width when centring), and `width_shift` moves columns
and `height_shift` rows (ImageDataGenerator scales its column shift by the height and its row
shift by the width).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import tensorflow as tf

from trainer.configs import reject_unknown_keys

# Seed offsets per layer. Within `RandomAffine` every parameter is drawn even when its range is 0,
# so turning one augmentation off leaves the others' draws unchanged.
_SEED_OFFSETS = {"flip": 0, "affine": 1}
# The ranges' upper bounds, and whether they are allowed: past 180 degrees a rotation range repeats
# itself; a shift of a whole image or a zoom of 1 (scale 0) leaves nothing of it; a 90-degree
# shear is singular.
_LIMITS = {"rotation_degrees": (180.0, True), "width_shift": (1.0, False),
           "height_shift": (1.0, False), "shear": (90.0, False), "zoom": (1.0, False)}
_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


def check_range(name: str, value: Any, label: str | None = None) -> None:
    """Raises ValueError unless `value` is a finite number in [0, limit] of range `name`
    (`_LIMITS`; the limit itself only where it is allowed). `label` names it in the message."""
    label = label or name
    limit, inclusive = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{label} must be a finite number >= 0, got {value}")
    if value > limit or (value == limit and not inclusive):
        bound = "at most" if inclusive else "less than"
        raise ValueError(f"{label} must be {bound} {limit:g}, got {value}")


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
        for name in _LIMITS:
            check_range(name, getattr(self, name))

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


def _rows(*entries: tf.Tensor) -> tf.Tensor:
    """[N, 3, 3] matrices from nine [N] tensors given row by row."""
    return tf.reshape(tf.stack(entries, axis=1), [-1, 3, 3])


def affine_transforms(rotation: tf.Tensor, shift_x: tf.Tensor, shift_y: tf.Tensor,
                      shear: tf.Tensor, zoom_x: tf.Tensor, zoom_y: tf.Tensor,
                      image_height: tf.Tensor | int, image_width: tf.Tensor | int) -> tf.Tensor:
    """[N, 8] projective transforms (`ImageProjectiveTransformV3`'s layout) from per-image [N]
    parameters: ImageDataGenerator's one composed matrix, rotation @ shift @ shear @ zoom.

    Each matrix maps an output pixel (x = column, y = row) to the input point it samples, relative
    to the image centre ((W - 1) / 2, (H - 1) / 2), exactly as `apply_affine_transform` builds it:
    rotation [[cos r, -sin r], [sin r, cos r]], shift (x + shift_x, y + shift_y), shear
    [[1, -sin s], [0, cos s]] and zoom [[zoom_x, 0], [0, zoom_y]]. Angles are in radians, shifts in
    pixels; a zoom above 1 samples a larger area, so the content shrinks.
    """
    rotation, shear = tf.cast(rotation, tf.float32), tf.cast(shear, tf.float32)
    ones, zeros = tf.ones_like(rotation), tf.zeros_like(rotation)
    cos_r, sin_r = tf.cos(rotation), tf.sin(rotation)
    matrix = _rows(cos_r, -sin_r, zeros, sin_r, cos_r, zeros, zeros, zeros, ones)
    shift = _rows(ones, zeros, tf.cast(shift_x, tf.float32), zeros, ones,
                  tf.cast(shift_y, tf.float32), zeros, zeros, ones)
    skew = _rows(ones, -tf.sin(shear), zeros, zeros, tf.cos(shear), zeros, zeros, zeros, ones)
    scale = _rows(tf.cast(zoom_x, tf.float32), zeros, zeros, zeros, tf.cast(zoom_y, tf.float32),
                  zeros, zeros, zeros, ones)
    matrix = matrix @ shift @ skew @ scale
    center_x = (tf.cast(image_width, tf.float32) - 1.0) / 2.0
    center_y = (tf.cast(image_height, tf.float32) - 1.0) / 2.0
    # Centred: x_in = M (x_out - c) + c, so the offset becomes c - M[:2, :2] c + M[:2, 2].
    offset_x = center_x - matrix[:, 0, 0] * center_x - matrix[:, 0, 1] * center_y + matrix[:, 0, 2]
    offset_y = center_y - matrix[:, 1, 0] * center_x - matrix[:, 1, 1] * center_y + matrix[:, 1, 2]
    return tf.stack([matrix[:, 0, 0], matrix[:, 0, 1], offset_x,
                     matrix[:, 1, 0], matrix[:, 1, 1], offset_y, zeros, zeros], axis=1)


def mirrored(transforms: tf.Tensor, flip: tf.Tensor, width: tf.Tensor | int) -> tf.Tensor:
    """[N, 8] affine transforms whose output is also mirrored left-right where `flip` [N] is True.

    An affine transform (c0 = c1 = 0) maps an output pixel (x, y) to the input point
    (a0 x + a1 y + a2, b0 x + b1 y + b2); mirroring the output first, x -> (W - 1) - x, negates
    a0 and b0 and adds a0 (W - 1) and b0 (W - 1) to the offsets.
    """
    last = tf.cast(width, tf.float32) - 1.0
    a0, a1, a2, b0, b1, b2, c0, c1 = tf.unstack(transforms, axis=1)
    flipped = tf.stack([-a0, a1, a2 + a0 * last, -b0, b1, b2 + b0 * last, c0, c1], axis=1)
    return tf.where(flip[:, None], flipped, transforms)


@tf.keras.utils.register_keras_serializable(package="imgpipe")
class RandomAffine(tf.keras.__internal__.layers.BaseRandomLayer):
    """Random rotation, shift, shear and zoom in one resampling, as ImageDataGenerator does.

    Each image gets its own draws, in ImageDataGenerator's units: a rotation uniform in
    [-rotation_degrees, rotation_degrees] degrees; shifts uniform in [-width_shift, width_shift]
    times the width (columns) and [-height_shift, height_shift] times the height (rows); a shear
    angle uniform in [-shear_degrees, shear_degrees] DEGREES (ImageDataGenerator's `shear_range`
    is in degrees too, so its `shear_range=0.2` shears by at most 0.2 degrees); and per-axis
    zooms drawn independently in [1 - zoom, 1 + zoom]. `affine_transforms` composes them into one
    matrix, so the image is interpolated once: chaining Keras' RandomRotation, RandomTranslation
    and RandomZoom would resample it several times, slower and blurrier. With `horizontal_flip`
    half of the images (drawn per image) are also mirrored after the transform, by composing the
    mirror into the same matrix, which spares a separate flip pass. Like tf_keras' random layers
    it returns its input unchanged when `training` is False, and also when every range is 0 and
    there is no flip.

    Input and output: float images [N, H, W, C] (or one image [H, W, C]), channels last.
    """

    def __init__(self, rotation_degrees: float = 0.0, width_shift: float = 0.0,
                 height_shift: float = 0.0, shear_degrees: float = 0.0, zoom: float = 0.0,
                 fill_mode: str = "nearest", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0, horizontal_flip: bool = False,
                 **kwargs: Any) -> None:
        # force_generator: a tf.random.Generator gives fresh draws on every step inside `fit`'s
        # tf.function, as in tf_keras' own RandomRotation.
        super().__init__(seed=seed, force_generator=True, **kwargs)
        check_range("rotation_degrees", rotation_degrees)
        check_range("width_shift", width_shift)
        check_range("height_shift", height_shift)
        check_range("shear", shear_degrees, "shear_degrees")
        check_range("zoom", zoom)
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"fill_mode must be one of {_FILL_MODES}, got {fill_mode!r}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
        self.rotation_degrees = float(rotation_degrees)
        self.width_shift = float(width_shift)
        self.height_shift = float(height_shift)
        self.shear_degrees = float(shear_degrees)
        self.zoom = float(zoom)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.seed = seed
        self.fill_value = fill_value
        self.horizontal_flip = bool(horizontal_flip)

    @property
    def active(self) -> bool:
        """Whether any range is above 0, or the flip is on."""
        return any((self.rotation_degrees, self.width_shift, self.height_shift,
                    self.shear_degrees, self.zoom, self.horizontal_flip))

    def call(self, inputs: tf.Tensor, training: bool | tf.Tensor = True) -> tf.Tensor:
        """Transformed images when training, `inputs` (cast to the compute dtype) otherwise."""
        inputs = tf.cast(inputs, self.compute_dtype)
        if not self.active:
            return inputs
        # smart_cond decides in Python for a Python value (None counts as False, as in tf_keras'
        # `if training:`) and builds a tf.cond for a tensor.
        if not tf.is_tensor(training):
            training = bool(training)
        return tf.__internal__.smart_cond.smart_cond(
            training, lambda: self._transform(inputs), lambda: inputs)

    def _uniform(self, count: tf.Tensor, limit: float, center: float = 0.0) -> tf.Tensor:
        """[count] draws uniform in [center - limit, center + limit] (all `center` for limit 0:
        drawn anyway, so that the other parameters' draws do not depend on this range)."""
        return self._random_generator.random_uniform(
            shape=[count], minval=center - limit, maxval=center + limit)

    def _transform(self, inputs: tf.Tensor) -> tf.Tensor:
        """Every image transformed by its own random matrix."""
        unbatched = inputs.shape.rank == 3
        images = tf.expand_dims(inputs, 0) if unbatched else inputs
        shape = tf.shape(images)
        count, height, width = shape[0], shape[1], shape[2]
        transforms = affine_transforms(
            rotation=self._uniform(count, float(np.deg2rad(self.rotation_degrees))),
            shift_x=self._uniform(count, self.width_shift) * tf.cast(width, tf.float32),
            shift_y=self._uniform(count, self.height_shift) * tf.cast(height, tf.float32),
            shear=self._uniform(count, float(np.deg2rad(self.shear_degrees))),
            zoom_x=self._uniform(count, self.zoom, 1.0),
            zoom_y=self._uniform(count, self.zoom, 1.0),
            image_height=height, image_width=width)
        if self.horizontal_flip:  # drawn last, so the other draws do not depend on it
            transforms = mirrored(transforms, self._uniform(count, 0.5, 0.5) < 0.5, width)
        output = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=shape[1:3],
            fill_value=tf.constant(self.fill_value, tf.float32),
            fill_mode=self.fill_mode.upper(), interpolation=self.interpolation.upper())
        output = tf.squeeze(output, 0) if unbatched else output
        output.set_shape(inputs.shape)
        return output

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        """The input's shape: the transform keeps the image size."""
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, for Keras serialization."""
        return {**super().get_config(), "rotation_degrees": self.rotation_degrees,
                "width_shift": self.width_shift, "height_shift": self.height_shift,
                "shear_degrees": self.shear_degrees, "zoom": self.zoom,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value,
                "horizontal_flip": self.horizontal_flip}


def build_augmentation(config: AugmentConfig, seed: int) -> tf.keras.Sequential:
    """The enabled augmentations as one block of layers (empty, so the identity, when all off).

    As in ImageDataGenerator's `random_transform`: the affine transform, then the horizontal flip,
    both in `RandomAffine`'s one resampling. A flip alone is Keras' RandomFlip (exact: pixels are
    only reordered; cheaper than a resampling, and XLA compiles it).
    """
    layers: list[tf.keras.layers.Layer] = []
    if config.geometric:
        layers.append(RandomAffine(
            rotation_degrees=config.rotation_degrees, width_shift=config.width_shift,
            height_shift=config.height_shift, shear_degrees=config.shear, zoom=config.zoom,
            fill_mode="nearest", seed=seed + _SEED_OFFSETS["affine"],
            horizontal_flip=config.horizontal_flip, name="affine"))
    elif config.horizontal_flip:
        layers.append(tf.keras.layers.RandomFlip(
            "horizontal", seed=seed + _SEED_OFFSETS["flip"], name="flip"))
    return tf.keras.Sequential(layers, name="augmentation")
