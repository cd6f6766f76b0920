"""The augmentation block: identity at inference, and each augmentation within its range."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
from tf_keras.src.preprocessing.image import apply_affine_transform

from trainer.augment import AugmentConfig, RandomAffine, affine_transforms, build_augmentation

SIZE = 64
DRAWS = 64  # images per batch; each gets its own random transform
OFF = AugmentConfig.off()
# One augmentation at a time. The shear range is 30 degrees so that its effect is measurable.
ONLY = {
    "flip": dataclasses.replace(OFF, horizontal_flip=True),
    "rotation": dataclasses.replace(OFF, rotation_degrees=40.0),
    "translation": dataclasses.replace(OFF, width_shift=0.2, height_shift=0.2),
    "shear": dataclasses.replace(OFF, shear=30.0),
    "zoom": dataclasses.replace(OFF, zoom=0.2),
}
CONFIGS = {**ONLY, "seeds": AugmentConfig(),
           "seeds_shear_only": dataclasses.replace(OFF, shear=0.2)}


def _noise(n: int = 16, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).random((n, size, size, 3), dtype=np.float32)


def _batch(image: np.ndarray, n: int = DRAWS) -> np.ndarray:
    """n copies of a [H, W] image as a float32 [n, H, W, 3] batch."""
    return np.repeat(image[None, :, :, None], n, axis=0).repeat(3, axis=-1).astype(np.float32)


def _augment(config: AugmentConfig, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """The block's training-mode output, one channel: [n, H, W]."""
    return build_augmentation(config, seed)(images, training=True).numpy()[..., 0]


def _centroids(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (row, column) centres of mass of [n, H, W] images."""
    rows, cols = np.mgrid[: images.shape[1], : images.shape[2]]
    mass = images.sum(axis=(1, 2))
    return ((images * rows).sum(axis=(1, 2)) / mass, (images * cols).sum(axis=(1, 2)) / mass)


# --- the configuration ---------------------------------------------------------------------------


def test_defaults_are_the_seeds_image_data_generator():
    assert AugmentConfig().to_config() == {
        "horizontal_flip": True, "rotation_degrees": 40.0, "width_shift": 0.2,
        "height_shift": 0.2, "shear": 0.2, "zoom": 0.2}


@pytest.mark.parametrize("field, value", [
    ("rotation_degrees", -1.0), ("rotation_degrees", 181.0), ("width_shift", 1.0),
    ("height_shift", -0.1), ("shear", -0.2), ("shear", 90.0), ("zoom", 1.0),
    ("zoom", float("nan")), ("zoom", "0.2"), ("horizontal_flip", "yes"), ("width_shift", True),
])
def test_invalid_values_are_rejected_with_the_field_named(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


def test_boundary_values_are_accepted():
    AugmentConfig(rotation_degrees=180, width_shift=0.99, height_shift=0, shear=89.9, zoom=0.99)


@pytest.mark.parametrize("config", [
    AugmentConfig(), OFF, AugmentConfig(False, 10.0, 0.1, 0.05, 5.0, 0.3)])
def test_config_round_trips_through_json(config):
    assert AugmentConfig.from_config(json.loads(json.dumps(config.to_config()))) == config


def test_from_config_rejects_unknown_keys_and_defaults_missing_ones():
    with pytest.raises(ValueError, match="shear_range"):
        AugmentConfig.from_config({"shear_range": 0.2})
    assert AugmentConfig.from_config({"zoom": 0.1}) == AugmentConfig(zoom=0.1)


def test_enabled_is_false_only_when_everything_is_off():
    assert not OFF.enabled
    assert AugmentConfig().enabled
    assert all(config.enabled for config in ONLY.values())


def test_off_builds_an_empty_identity_block():
    block = build_augmentation(OFF, seed=0)
    assert block.name == "augmentation" and block.layers == []
    images = _noise()
    np.testing.assert_array_equal(block(images, training=True), images)


def test_only_enabled_layers_are_built_with_distinct_seeds():
    block = build_augmentation(AugmentConfig(), seed=7)
    # ImageDataGenerator's order, the affine transform then the flip, in one layer.
    assert [layer.name for layer in block.layers] == ["affine"]
    zoom_only = build_augmentation(ONLY["zoom"], seed=7).layers
    assert [layer.name for layer in zoom_only] == ["affine"] and not zoom_only[0].horizontal_flip
    flip_only = build_augmentation(ONLY["flip"], seed=7).layers
    assert [layer.name for layer in flip_only] == ["flip"]
    assert isinstance(flip_only[0], tf.keras.layers.RandomFlip)
    affine = block.get_layer("affine")
    assert (affine.rotation_degrees, affine.width_shift, affine.height_shift,
            affine.shear_degrees, affine.zoom, affine.horizontal_flip) == (
                40.0, 0.2, 0.2, 0.2, 0.2, True)
    assert affine.seed != flip_only[0].seed


def test_the_seeds_augmentation_resamples_each_image_once():
    block = build_augmentation(AugmentConfig(), seed=0)
    graph = tf.function(lambda x: block(x, training=True)).get_concrete_function(
        tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)).graph
    ops = [op.type for op in graph.get_operations()]
    for function in graph._functions.values():  # the branches of smart_cond's tf.cond
        ops += [node.op for node in function.definition.node_def]
    assert ops.count("ImageProjectiveTransformV3") == 1


def test_turning_one_range_off_leaves_the_other_draws_unchanged():
    # A rotation about the centre leaves a centred blob's centre of mass where the shift puts it,
    # so with the same seed the shifts, and so the centroids, agree only if the rotation's draws
    # did not displace the shift's.
    blob = np.zeros((SIZE, SIZE))
    blob[30:34, 30:34] = 1.0
    shift = dataclasses.replace(OFF, width_shift=0.2)
    _, shifted = _centroids(_augment(shift, _batch(blob), seed=3))
    _, rotated = _centroids(_augment(dataclasses.replace(shift, rotation_degrees=40.0),
                                     _batch(blob), seed=3))
    assert np.abs(shifted - 31.5).max() > 0.1 * SIZE
    np.testing.assert_allclose(rotated, shifted, atol=0.3)


# --- inference and training modes ----------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_every_layer_is_the_identity_at_inference(name):
    block = build_augmentation(CONFIGS[name], seed=0)
    images = _noise()
    np.testing.assert_array_equal(block(images, training=False), images)
    for layer in block.layers:
        np.testing.assert_array_equal(layer(images, training=False), images)


def test_predict_of_a_model_with_the_block_is_the_identity():
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    model = tf.keras.Model(inputs, build_augmentation(AugmentConfig(), seed=0)(inputs))
    images = _noise()
    np.testing.assert_array_equal(model.predict(images, verbose=0), images)


@pytest.mark.parametrize("name", CONFIGS)
def test_training_changes_the_images(name):
    images = _noise()
    changed = build_augmentation(CONFIGS[name], seed=0)(images, training=True).numpy() != images
    # A flip leaves about half the images as they were; the others change every image.
    assert changed.any(axis=(1, 2, 3)).mean() > (0.2 if name == "flip" else 0.9)


# --- each augmentation within its range ----------------------------------------------------------


def test_flip_is_the_input_or_its_horizontal_mirror_exactly():
    images = _noise(DRAWS)
    out = build_augmentation(ONLY["flip"], seed=0)(images, training=True).numpy()
    same = (out == images).all(axis=(1, 2, 3))
    mirrored = (out == images[:, :, ::-1]).all(axis=(1, 2, 3))
    assert (same | mirrored).all()
    assert same.any() and mirrored.any()


def test_the_flip_in_the_affine_resampling_is_the_mirror_of_the_same_transform():
    """The flip, folded into RandomAffine's matrix, gives the unflipped transform's output
    (the same draws: the flip's is drawn last) or its exact mirror, image by image."""
    images = _noise(DRAWS)
    config = dict(rotation_degrees=40.0, width_shift=0.2, height_shift=0.2, shear_degrees=0.2,
                  zoom=0.2, seed=5)
    plain = RandomAffine(**config)(images, training=True).numpy()
    out = RandomAffine(**config, horizontal_flip=True)(images, training=True).numpy()
    same = np.isclose(out, plain, atol=1e-4).all(axis=(1, 2, 3))
    mirrored = np.isclose(out, plain[:, :, ::-1], atol=1e-4).all(axis=(1, 2, 3))
    assert (same | mirrored).all()
    assert 0.3 < mirrored.mean() < 0.7  # about half of the images, drawn per image
    assert not np.allclose(plain, images, atol=1e-2)  # and the transform itself ran


def test_a_flip_alone_in_the_affine_layer_mirrors_exactly():
    images = _noise(DRAWS)
    out = RandomAffine(horizontal_flip=True, seed=0)(images, training=True).numpy()
    same = np.isclose(out, images, atol=1e-5).all(axis=(1, 2, 3))
    mirrored = np.isclose(out, images[:, :, ::-1], atol=1e-5).all(axis=(1, 2, 3))
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_translation_moves_a_blob_by_at_most_a_fifth_of_the_size():
    blob = np.zeros((SIZE, SIZE))
    blob[30:34, 30:34] = 1.0
    rows, cols = _centroids(_augment(ONLY["translation"], _batch(blob)))
    dy, dx = np.abs(rows - 31.5), np.abs(cols - 31.5)
    assert dy.max() <= 0.2 * SIZE + 0.5 and dx.max() <= 0.2 * SIZE + 0.5
    assert dy.max() > 0.1 * SIZE and dx.max() > 0.1 * SIZE


def test_width_shift_moves_only_columns():
    blob = np.zeros((SIZE, SIZE))
    blob[30:34, 30:34] = 1.0
    rows, cols = _centroids(_augment(dataclasses.replace(OFF, width_shift=0.2), _batch(blob)))
    np.testing.assert_allclose(rows, 31.5, atol=1e-3)
    assert np.abs(cols - 31.5).max() > 0.1 * SIZE


def _bar_angle_degrees(images: np.ndarray) -> np.ndarray:
    """Per-image orientation of a bar from its second central moments, in (-90, 90]."""
    rows, cols = np.mgrid[: images.shape[1], : images.shape[2]]
    row_c, col_c = _centroids(images)
    dr, dc = rows - row_c[:, None, None], cols - col_c[:, None, None]
    mu_cc = (images * dc * dc).sum(axis=(1, 2))
    mu_rr = (images * dr * dr).sum(axis=(1, 2))
    mu_rc = (images * dr * dc).sum(axis=(1, 2))
    return np.rad2deg(0.5 * np.arctan2(2 * mu_rc, mu_cc - mu_rr))


def test_rotation_stays_within_40_degrees():
    bar = np.zeros((SIZE, SIZE))
    bar[31:33, 12:52] = 1.0
    angles = np.abs(_bar_angle_degrees(_augment(ONLY["rotation"], _batch(bar))))
    assert angles.max() <= 41.0
    assert angles.max() > 20.0


def test_zoom_scales_each_axis_independently_within_the_range():
    square = np.zeros((SIZE, SIZE))
    square[16:48, 16:48] = 1.0
    out = _augment(ONLY["zoom"], _batch(square))
    # Lengths through the centre; a zoom factor z in [0.8, 1.2] shows the square at 1 / z.
    width = out[:, 31:33, :].sum(axis=2).mean(axis=1) / 32
    height = out[:, :, 31:33].sum(axis=1).mean(axis=1) / 32
    for scale in (width, height):
        assert scale.min() >= 1 / 1.2 - 0.02 and scale.max() <= 1 / 0.8 + 0.02
        assert scale.min() < 0.9 and scale.max() > 1.1
    area = out.sum(axis=(1, 2)) / square.sum()
    assert area.min() >= 1 / 1.2**2 - 0.03 and area.max() <= 1 / 0.8**2 + 0.03
    assert np.abs(width - height).max() > 0.05  # ImageDataGenerator draws zx and zy apart


def _bar_slopes(images: np.ndarray, rows: slice) -> np.ndarray:
    """Per-image slope d(column)/d(row) of a roughly vertical bar, fitted over `rows`."""
    cols = np.arange(images.shape[2])
    band = images[:, rows, :]
    centres = (band * cols).sum(axis=2) / band.sum(axis=2)
    row_index = np.arange(images.shape[1])[rows]
    return np.array([np.polyfit(row_index, c, 1)[0] for c in centres])


def test_shear_leans_a_vertical_bar_within_the_range():
    bar = np.zeros((SIZE, SIZE))
    bar[4:60, 31:33] = 1.0
    slopes = _bar_slopes(_augment(ONLY["shear"], _batch(bar)), slice(8, 56))
    # The bar's slope is sin(angle), the angle in degrees uniform in [-30, 30].
    assert np.abs(slopes).max() <= np.sin(np.deg2rad(30.0)) + 0.01
    assert np.abs(slopes).max() > np.sin(np.deg2rad(15.0))
    assert (slopes > 0.05).any() and (slopes < -0.05).any()


# One composed matrix, checked against ImageDataGenerator's own: rotation, shift x, shift y
# (pixels), shear (degrees), zoom x, zoom y; its `tx` shifts columns and `ty` rows.
AFFINE_CASES = [
    (25.0, 0.0, 0.0, 0.0, 1.0, 1.0),
    (0.0, 4.0, -3.0, 0.0, 1.0, 1.0),
    (0.0, 0.0, 0.0, 25.0, 1.0, 1.0),
    (0.0, 0.0, 0.0, -25.0, 1.0, 1.0),
    (0.0, 0.0, 0.0, 0.0, 0.85, 1.15),
    (-30.0, 2.5, 5.0, 0.2, 1.1, 0.9),
    (40.0, -6.0, 1.0, 12.0, 0.8, 1.2),
]


@pytest.mark.parametrize("rotation, shift_x, shift_y, shear, zoom_x, zoom_y", AFFINE_CASES)
def test_affine_transforms_match_image_data_generator(rotation, shift_x, shift_y, shear,
                                                      zoom_x, zoom_y):
    # A smooth image, so that both bilinear resamplings agree to float precision.
    rows, cols = np.mgrid[:48, :48] / 47.0
    image = np.stack([np.sin(3 * rows + 2 * cols), rows * cols, np.cos(4 * cols)], axis=-1)
    image = image.astype(np.float32)
    expected = apply_affine_transform(image, theta=rotation, tx=shift_x, ty=shift_y, shear=shear,
                                      zx=zoom_x, zy=zoom_y, row_axis=0, col_axis=1,
                                      channel_axis=2, fill_mode="nearest", order=1)
    transforms = affine_transforms(*(tf.constant([v], tf.float32) for v in (
        np.deg2rad(rotation), shift_x, shift_y, np.deg2rad(shear), zoom_x, zoom_y)), 48, 48)
    actual = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transforms, output_shape=[48, 48], fill_value=0.0,
        fill_mode="NEAREST", interpolation="BILINEAR")
    np.testing.assert_allclose(actual[0], expected, atol=1e-4)
    assert shear == 0.2 or np.abs(expected - image).max() > 0.1


def test_affine_transforms_centre_non_square_images_on_their_true_centre():
    # A half-turn about the true centre maps the image onto itself reversed in both axes.
    image = np.random.default_rng(0).random((1, 20, 30, 1)).astype(np.float32)
    transforms = affine_transforms(tf.constant([np.pi]), *(tf.constant([v]) for v in
                                                           (0.0, 0.0, 0.0, 1.0, 1.0)), 20, 30)
    actual = tf.raw_ops.ImageProjectiveTransformV3(
        images=image, transforms=transforms, output_shape=[20, 30], fill_value=0.0,
        fill_mode="CONSTANT", interpolation="BILINEAR")
    np.testing.assert_allclose(actual[0], image[0, ::-1, ::-1], atol=1e-4)


def test_zero_ranges_are_the_identity_even_in_training():
    images = _noise()
    layer = RandomAffine(seed=1)
    assert not layer.active
    np.testing.assert_array_equal(layer(images, training=True), images)


@pytest.mark.parametrize("field, value", [
    ("rotation_degrees", 181.0), ("width_shift", 1.0), ("height_shift", -0.1),
    ("shear_degrees", 90.0), ("zoom", 1.0)])
def test_random_affine_refuses_ranges_out_of_bounds(field, value):
    with pytest.raises(ValueError, match=field):
        RandomAffine(**{field: value})


# --- RandomAffine as a Keras layer ---------------------------------------------------------------


def test_random_affine_draws_afresh_on_every_call_inside_a_tf_function():
    layer = RandomAffine(shear_degrees=20.0, seed=1)
    augment = tf.function(lambda images: layer(images, training=True))
    images = _noise(4, 32)
    first, second = augment(images).numpy(), augment(images).numpy()
    assert not np.array_equal(first, second)


def test_random_affine_serializes():
    layer = RandomAffine(rotation_degrees=10.0, width_shift=0.1, shear_degrees=12.5,
                         fill_mode="reflect", seed=3, name="s")
    assert RandomAffine.from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = tf.keras.Input((32, 32, 3))
    model = tf.keras.Model(inputs, layer(inputs))
    rebuilt = tf.keras.models.model_from_json(model.to_json())
    assert rebuilt.get_layer("s").shear_degrees == 12.5
    assert rebuilt.get_layer("s").rotation_degrees == 10.0


@pytest.mark.parametrize("block", ["shear", "seeds"])
def test_fit_traces_and_trains_with_the_augmentation(block):
    inputs = tf.keras.Input((32, 32, 3))  # unknown batch size
    if block == "shear":
        x = RandomAffine(shear_degrees=20.0, seed=1)(inputs)
    else:
        x = build_augmentation(AugmentConfig(), seed=1)(inputs)
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(tf.keras.layers.Flatten()(x))
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    labels = np.random.default_rng(1).integers(0, 2, (8, 1)).astype(np.float32)
    history = model.fit(_noise(8, 32), labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_random_affine_runs_under_mixed_precision():
    layer = RandomAffine(rotation_degrees=20.0, shear_degrees=20.0, seed=1,
                         dtype="mixed_float16")
    out = layer(_noise(2, 32), training=True)
    assert out.dtype == tf.float16 and out.shape == (2, 32, 32, 3)
