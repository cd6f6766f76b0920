"""The bases: each one entry with its own cut layer, pooling and preprocessing; pinned weights."""

import pytest
import tensorflow as tf

from trainer import bases
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams


def test_mobilenet_v2_reads_its_bottleneck_through_global_average_pooling():
    hp = HParams(class_names=("a", "b"), image_size=96, base="mobilenet_v2", weights="none",
                 augment=AugmentConfig.off())
    model = model_lib.build_model(hp)
    base = model_lib.get_base(model)
    assert base.layers[-1].name == "out_relu"
    assert base.output_shape == (None, 3, 3, 1280)
    assert model.get_layer("avg_pool").output_shape == (None, 1280)
    assert base.trainable_weights == []
    assert sum(int(tf.size(w)) for w in model.trainable_weights) == 1280 * 1024 + 1024 + 1025


def test_cut_layer_and_pooling_are_configurable():
    hp = HParams(class_names=("a", "b"), image_size=75, weights="none", cut_layer="mixed5",
                 pooling="avg", augment=AugmentConfig.off())
    model = model_lib.build_model(hp)
    assert model_lib.get_base(model).layers[-1].name == "mixed5"
    assert model.get_layer("avg_pool").output_shape == (None, 768)


def test_unknown_cut_layer_and_base_are_refused():
    with pytest.raises(ValueError, match="no layer 'mixed99'"):
        model_lib.build_base(75, "none", "mixed99")
    with pytest.raises(ValueError, match="unknown base 'vgg'"):
        HParams(class_names=("a", "b"), base="vgg")


def test_a_pinned_weights_file_with_another_digest_is_refused(tmp_path):
    path = tmp_path / "w.h5"
    path.write_bytes(b"not the pinned file")
    digest = bases.file_sha256(str(path))
    bases.check_weights_file(str(path), digest)  # the right digest passes
    with pytest.raises(ValueError, match="expected 0+; the file is not the one pinned"):
        bases.check_weights_file(str(path), "0" * 64)
    with pytest.raises(ValueError, match="expected"):
        model_lib.build_base(75, str(path), weights_sha256="0" * 64)
