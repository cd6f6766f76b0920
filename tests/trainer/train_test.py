"""Training stages: the head, fine-tuning above a named layer, warm start, early stopping."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import export, train
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams

SIZE = 75

pytestmark = pytest.mark.slow  # each test trains InceptionV3's head, some of its base


def _data(n: int = 16, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.array([0, 1] * (n // 2), dtype=np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("a", "b"), image_size=SIZE, weights="none",
                  augment=AugmentConfig.off(), epochs=1, early_stopping_patience=0, seed=2)
    values.update(overrides)
    return HParams(**values)


def test_fine_tuning_changes_only_the_layers_from_the_named_one_up(tmp_path):
    hp = _hparams(fine_tune_from="mixed6", fine_tune_epochs=1, fine_tune_learning_rate=1e-3)
    model = model_lib.build_model(hp)
    base = model_lib.get_base(model)
    first = [layer.name for layer in base.layers].index("mixed6")
    before = {w.name: w.numpy().copy() for w in base.weights}
    history = train.fit(model, hp, _data(), _data(8, seed=1), str(tmp_path))
    assert len(history["loss"]) == 2  # one head epoch, one fine-tuning epoch
    below = {w.name for layer in base.layers[:first] for w in layer.weights}
    above = [w for layer in base.layers[first:] for w in layer.trainable_weights]
    assert below and above
    for weight in base.weights:
        if weight.name in below or "moving_" in weight.name:
            # Frozen layers and every BatchNorm moving statistic stay exactly as they were.
            np.testing.assert_array_equal(before[weight.name], weight.numpy(), weight.name)
    assert any(not np.array_equal(before[w.name], w.numpy()) for w in above)
    # The second stage really ran at the fine-tuning learning rate.
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_without_fine_tuning_the_base_never_changes(tmp_path):
    hp = _hparams(epochs=2)
    model = model_lib.build_model(hp)
    base = model_lib.get_base(model)
    before = [w.numpy().copy() for w in base.weights]
    train.fit(model, hp, _data(), _data(8, seed=1), str(tmp_path))
    for old, weight in zip(before, base.weights, strict=True):
        np.testing.assert_array_equal(old, weight.numpy())


def test_warm_start_copies_the_exported_head(transform_output, tmp_path):
    hp = _hparams()
    first = model_lib.build_model(hp)
    train.fit(first, hp, _data(), _data(8, seed=1), str(tmp_path / "logs"))
    export.export(first, transform_output, hp.class_names, SIZE, str(tmp_path / "blessed"))
    second = model_lib.build_model(_hparams(seed=9))
    head = [w for w in second.weights if w.name.startswith(train.HEAD_LAYER_PREFIXES)]
    assert not np.allclose(head[0].numpy(), first.get_layer("dense_0").kernel.numpy())
    copied = train.warm_start(second, str(tmp_path / "blessed"))
    assert sorted(copied) == sorted(w.name for w in head) and len(copied) == 4
    for layer in ("dense_0", "probability"):
        for a, b in zip(first.get_layer(layer).weights, second.get_layer(layer).weights,
                        strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_warm_start_skips_a_head_of_another_shape(transform_output, tmp_path):
    hp = _hparams()
    export.export(model_lib.build_model(hp), transform_output, hp.class_names, SIZE,
                  str(tmp_path / "blessed"))
    other = model_lib.build_model(_hparams(dense_units=(64,)))
    copied = train.warm_start(other, str(tmp_path / "blessed"))
    assert copied == ["probability/bias:0"]


def test_early_stopping_restores_the_best_weights(tmp_path):
    callbacks = train.callbacks(_hparams(early_stopping_patience=2), str(tmp_path))
    stopping = [c for c in callbacks if isinstance(c, tf.keras.callbacks.EarlyStopping)]
    assert len(stopping) == 1
    assert stopping[0].monitor == "val_loss" and stopping[0].restore_best_weights
    assert stopping[0].patience == 2
    assert not any(isinstance(c, tf.keras.callbacks.EarlyStopping)
                   for c in train.callbacks(_hparams(early_stopping_patience=0), str(tmp_path)))
