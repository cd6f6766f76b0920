"""The transfer-learning choices, proven on the model the Trainer builds."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams

SMALL = 75  # InceptionV3's smallest input; the structure is the same at any size.


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("cat", "dog"), image_size=SMALL, weights="none", seed=1)
    values.update(overrides)
    return HParams(**values)


@pytest.fixture(scope="module")
def model() -> tf.keras.Model:
    return model_lib.build_model(_hparams(augment=AugmentConfig.off()))


def test_base_is_cut_at_mixed7_with_7x7x768_features_at_150px():
    base = model_lib.build_base(150, "none", "mixed7")
    assert base.layers[-1].name == "mixed7"
    assert base.output_shape == (None, 7, 7, 768)
    # Nothing above mixed7 (mixed8, mixed9, mixed10) is kept.
    assert not any(layer.name.startswith(("mixed8", "mixed9", "mixed10")) for layer in base.layers)


def test_flatten_reads_the_cut_layer(model):
    flatten = model.get_layer("flatten")
    assert flatten.input_shape == model.get_layer("inception_v3_mixed7").output_shape
    assert flatten.output_shape == (None, 3 * 3 * 768)  # mixed7 is 3x3 at 75 px


def test_only_the_head_is_trainable(model):
    base = model.get_layer("inception_v3_mixed7")
    assert not base.trainable
    assert all(not layer.trainable for layer in base.layers)
    assert base.trainable_weights == []
    trainable_layers = {w.name.split("/")[0] for w in model.trainable_weights}
    assert trainable_layers == {"dense_0", "probability"}
    flat = 3 * 3 * 768
    expected = (flat * 1024 + 1024) + (1024 * 1 + 1)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


def test_fit_changes_the_head_and_never_the_base(model):
    base = model.get_layer("inception_v3_mixed7")
    before_base = [w.numpy().copy() for w in base.weights]  # includes BatchNorm moving stats
    before_head = model.get_layer("dense_0").kernel.numpy().copy()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, SMALL, SMALL, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 4, dtype=np.float32)
    model.fit(images, labels, epochs=2, batch_size=4, verbose=0)
    for before, after in zip(before_base, base.weights, strict=True):
        np.testing.assert_allclose(before, after.numpy())
    assert not np.allclose(before_head, model.get_layer("dense_0").kernel.numpy())


def test_dropout_drops_units_only_in_training(model):
    dropout = model.get_layer("dropout")
    assert dropout.rate == pytest.approx(0.2)
    # Dropout's input is the last Dense layer's output: it never reaches into the base.
    assert dropout.input is model.get_layer("dense_0").output
    x = tf.ones((4, 1024))
    trained = dropout(x, training=True).numpy()
    assert (trained == 0).any()
    kept = trained[trained != 0]
    np.testing.assert_allclose(kept, 1 / (1 - 0.2), rtol=1e-6)
    assert 0.1 < (trained == 0).mean() < 0.3
    np.testing.assert_array_equal(dropout(x, training=False).numpy(), x.numpy())


def test_in_the_model_dropout_drops_in_training_and_is_the_identity_at_inference(
        model, check_dropout_is_training_only):
    # Augmentation is off and the frozen base's BatchNorm runs in inference mode (the next test),
    # so Dropout is the only layer that can make training outputs differ.
    assert [layer.name for layer in model.layers[1:]] == [
        "base_preprocess", "inception_v3_mixed7", "flatten", "dense_0", "dropout", "probability"]
    images = tf.cast(tf.random.uniform((8, SMALL, SMALL, 3), 0, 255, seed=5), tf.uint8)
    check_dropout_is_training_only(model, images)


def test_frozen_base_runs_batchnorm_in_inference_mode_even_in_training(model):
    base = model.get_layer("inception_v3_mixed7")
    x = tf.random.uniform((2, SMALL, SMALL, 3), -1.0, 1.0, seed=3)
    np.testing.assert_allclose(base(x, training=True).numpy(), base(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_whole_model_is_deterministic_at_inference_and_not_in_training():
    model = model_lib.build_model(_hparams(augment=AugmentConfig()))
    images = tf.cast(tf.random.uniform((4, SMALL, SMALL, 3), 0, 255, seed=4), tf.uint8)
    np.testing.assert_array_equal(model(images, training=False).numpy(),
                                  model(images, training=False).numpy())
    assert not np.allclose(model(images, training=True).numpy(),
                           model(images, training=True).numpy())


def test_seeds_head_with_two_dense_layers():
    model = model_lib.build_model(_hparams(dense_units=(512, 1024), augment=AugmentConfig.off()))
    assert model.get_layer("dropout").input is model.get_layer("dense_1").output
    flat = 3 * 3 * 768
    expected = (flat * 512 + 512) + (512 * 1024 + 1024) + (1024 + 1)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


def test_softmax_head_for_three_classes():
    hp = _hparams(class_names=("a", "b", "c"), augment=AugmentConfig.off())
    model = model_lib.build_model(hp)
    assert model.output_shape == (None, 3)
    assert model.get_layer("probability").activation is tf.keras.activations.softmax


def test_optimizer_is_rmsprop_at_1e_4(model):
    assert isinstance(model.optimizer, tf.keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)
    assert model.loss == "binary_crossentropy"


def test_local_weights_file_loads_as_in_the_seeds(tmp_path):
    tf.keras.backend.clear_session()  # Same automatic layer names in both models below.
    source = tf.keras.applications.InceptionV3(include_top=False, weights=None,
                                               input_shape=(SMALL, SMALL, 3))
    path = tmp_path / "weights.h5"
    source.save_weights(str(path))
    source_by_name = {w.name: w.numpy() for w in source.weights}
    tf.keras.backend.clear_session()
    base = model_lib.build_base(SMALL, str(path), "mixed7")
    assert len(base.weights) > 200
    for weight in base.weights:
        np.testing.assert_array_equal(weight.numpy(), source_by_name[weight.name])


def test_exact_trainable_parameters_at_150px_default_and_seeds_heads():
    default = model_lib.build_model(_hparams(image_size=150, augment=AugmentConfig.off()))
    seeds = model_lib.build_model(_hparams(image_size=150, dense_units=(512, 1024),
                                           augment=AugmentConfig.off()))

    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    assert trainable(default) == 38_537_217  # 7*7*768*1024 + 1024 + 1024 + 1
    assert trainable(seeds) == 7 * 7 * 768 * 512 + 512 + 512 * 1024 + 1024 + 1024 + 1


def test_get_base_skips_the_augmentation_block():
    # The augmentation block is a nested model too; fine-tuning must find the real base.
    hp = HParams(class_names=("a", "b"), image_size=75, weights="none")
    assert hp.augment.enabled
    model = model_lib.build_model(hp)
    base = model_lib.get_base(model)
    assert base.name.startswith("inception_v3")
    model_lib.unfreeze_from(base, "mixed6")
    assert base.get_layer("mixed7").trainable
