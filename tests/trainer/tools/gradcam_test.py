"""Grad-CAM on the cut layer: heatmaps in range, on the model's own path, and where the class is."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams
from trainer.tools import gradcam

SIZE = 75


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("plain", "corner"), image_size=SIZE, weights="none", seed=0)
    values.update(overrides)
    return HParams(**values)


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model() -> tf.keras.Model:
    # Augmentation on, as `imgpipe run` builds it: Grad-CAM must run it as the identity.
    tf.keras.utils.set_random_seed(0)
    return model_lib.build_model(_hparams())


def test_heatmaps_are_on_the_cut_layer_grid_and_in_0_1(model):
    heatmaps = gradcam.gradcam(model, _images(4, 1))
    assert heatmaps.shape == (4, 3, 3)  # mixed7 at 75 px
    assert heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    peaks = heatmaps.max(axis=(1, 2))
    assert np.all((peaks == 1.0) | (peaks == 0.0))
    assert np.any(peaks == 1.0)


def test_gradient_model_is_the_models_own_inference_path(model):
    images = _images(3, 2)
    activations, head_input = gradcam.gradient_model(model)(images, training=False)
    pixels = model.get_layer("base_preprocess")(tf.convert_to_tensor(images))
    base = model_lib.get_base(model)
    np.testing.assert_allclose(activations.numpy(), base(pixels, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
    output = model.get_layer("probability")
    probabilities = tf.sigmoid(tf.matmul(head_input, output.kernel) + output.bias)
    np.testing.assert_allclose(probabilities.numpy(), model(images, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_binary_classes_explain_opposite_evidence(model):
    images = _images(2, 3)
    plain = gradcam.gradcam(model, images, class_index=0)
    corner = gradcam.gradcam(model, images, class_index=1)
    # Class 0's score is minus class 1's logit: every cell is evidence for exactly one class.
    assert np.all(plain * corner == 0.0)
    assert np.all((plain > 0.0) | (corner > 0.0))


def test_overlay_blends_a_coloured_upsampled_heatmap():
    image = np.full((40, 60, 3), 128, dtype=np.uint8)
    heatmap = np.zeros((3, 3), dtype=np.float32)
    heatmap[0, 0] = 1.0
    upsampled = gradcam.upsample(heatmap, (40, 60))
    assert upsampled.shape == (40, 60) and upsampled.min() >= 0.0 and upsampled.max() <= 1.0
    assert upsampled[0, 0] > 0.9 and upsampled[-1, -1] == 0.0
    blended = gradcam.overlay(image, heatmap, alpha=0.5)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    np.testing.assert_array_equal(gradcam.overlay(image, heatmap, alpha=0.0), image)
    red, blue = blended[..., 0].astype(int), blended[..., 2].astype(int)
    assert red[0, 0] > blue[0, 0] and blue[-1, -1] > red[-1, -1]  # jet: hot red, cold blue


def _corner_dataset(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noise; class 1 adds a bright 16 px square somewhere in the top-left quadrant."""
    images = rng.integers(0, 110, (count, SIZE, SIZE, 3)).astype(np.uint8)
    labels = np.arange(count) % 2
    for i in np.flatnonzero(labels):
        row, col = rng.integers(2, 14, 2)
        images[i, row:row + 16, col:col + 16] = 255
    return images, labels.astype(np.float32)


@pytest.mark.slow  # trains the classifier for five epochs
def test_gradcam_puts_the_heat_where_the_class_signal_is():
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    train_images, train_labels = _corner_dataset(128, rng)
    test_images, test_labels = _corner_dataset(32, rng)
    # Cut at mixed2: at 75 px mixed7 is a 3x3 grid whose cells all see most of the image, while
    # mixed2's 7x7 grid can say which quadrant holds the square.
    hp = _hparams(cut_layer="mixed2", dense_units=(32,), learning_rate=1e-3,
                  augment=AugmentConfig.off())
    model = model_lib.build_model(hp)
    # Trained with the base unfrozen: a frozen base with random weights gives features too weak
    # for the head to learn from (it stays at 50%), and there are no pretrained weights offline.
    model_lib.get_base(model).trainable = True
    model_lib.compile_model(model, hp.num_classes, hp.learning_rate)
    model.fit(train_images, train_labels, epochs=5, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(test_images, test_labels, verbose=0)
    assert accuracy >= 0.9

    corner_images = test_images[test_labels == 1]
    heatmaps = gradcam.gradcam(model, corner_images)
    assert heatmaps.shape == (len(corner_images), 7, 7)
    upsampled = np.stack([gradcam.upsample(h, (SIZE, SIZE)) for h in heatmaps])
    half = SIZE // 2
    in_quadrant = upsampled[:, :half, :half].sum(axis=(1, 2)) / upsampled.sum(axis=(1, 2))
    assert in_quadrant.mean() > 0.5  # a uniform heatmap would put 0.25 there
    peaks = [np.unravel_index(h.argmax(), h.shape) for h in heatmaps]
    assert sum(row < 4 and col < 4 for row, col in peaks) >= 0.9 * len(peaks)
