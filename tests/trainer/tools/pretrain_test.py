"""`pretrain-base` writes a no-top InceptionV3 weights file Keras' `load_weights` can load."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.local.sample_data import write_sample_data
from trainer import model as model_lib
from trainer.tools.pretrain import pretrain_base

pytestmark = pytest.mark.slow


def test_pretrained_weights_load_with_load_weights_and_differ_from_init(tmp_path):
    write_sample_data(tmp_path / "src", ("triangle", "cross", "ring"), 10, 75, seed=1)
    result = pretrain_base(tmp_path / "src", tmp_path / "base.h5", image_size=75, epochs=1,
                           batch_size=8)
    assert result.class_names == ("cross", "ring", "triangle")
    assert result.train_images + result.val_images == 30
    assert 0.0 <= result.val_accuracy <= 1.0

    tf.keras.backend.clear_session()
    fresh = tf.keras.applications.InceptionV3(include_top=False, weights=None,
                                              input_shape=(75, 75, 3))
    initial = [w.numpy().copy() for w in fresh.weights]
    fresh.load_weights(str(result.weights_path))
    loaded = [w.numpy() for w in fresh.weights]
    mixed7 = fresh.layers.index(fresh.get_layer("mixed7"))
    trained_layers = [layer for layer in fresh.layers[:mixed7] if layer.weights]
    first_conv = fresh.layers.index(trained_layers[0])
    assert not np.allclose(initial[0], loaded[0]), "first conv kernel was not trained"
    assert first_conv < mixed7

    # The pipeline's loader takes the same file, at another image size too.
    base = model_lib.build_base(150, str(result.weights_path), "mixed7")
    assert base.output_shape == (None, 7, 7, 768)
