"""The inspection report: exact counts, the Dropout's input, BatchNorm's mode, exports."""

import json

import numpy as np
import pytest
import tensorflow as tf

from trainer import export
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams
from trainer.tools import inspect

SIZE = 75  # mixed7 is 3x3x768 at 75 px
FLAT = 3 * 3 * 768
# InceptionV3 up to mixed7, every weight frozen (BatchNorm's four included), at any input size.
BASE_PARAMS = 8_975_264
DEFAULT_HEAD = (FLAT * 1024 + 1024) + (1024 + 1)
SEEDS_HEAD = (FLAT * 512 + 512) + (512 * 1024 + 1024) + (1024 + 1)


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("cat", "dog"), image_size=SIZE, weights="none", seed=1)
    values.update(overrides)
    return HParams(**values)


def _params(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.mark.parametrize("dense_units,head,dropout_input", [
    ((1024,), DEFAULT_HEAD, "dense_0"),
    ((512, 1024), SEEDS_HEAD, "dense_1"),
])
def test_counts_and_dropout_input_from_hparams(dense_units, head, dropout_input):
    hp = _hparams(dense_units=dense_units)
    model = inspect.build_for_inspection(hp)
    report = inspect.inspect_model(model, hp, "flags")
    assert report.trainable_params == head == _params(model.trainable_weights)
    assert report.non_trainable_params == BASE_PARAMS == _params(model.non_trainable_weights)
    assert report.total_params == head + BASE_PARAMS == model.count_params()
    assert (report.head_trainable_params, report.base_trainable_params) == (head, 0)
    assert (report.dropout_input, report.dropout_input_units) == (dropout_input, 1024)
    assert report.dropout_output == "probability"
    assert (report.cut_layer, report.cut_output_shape, report.pooling) == (
        "mixed7", (3, 3, 768), "flatten")
    assert report.base_trainable_layers == 0
    rows = {layer.name: layer for layer in report.layers}
    assert not rows["inception_v3_mixed7"].trainable
    assert rows["inception_v3_mixed7"].non_trainable_params == BASE_PARAMS
    assert sum(row.trainable_params for row in report.layers) == head
    assert report.batchnorm.layers == 70 and report.batchnorm.inference_mode
    assert json.loads(json.dumps(report.to_json()))["batchnorm"]["inference_mode"] is True


def test_batchnorm_check_detects_a_base_called_without_training_false():
    base = model_lib.build_base(SIZE, "none")
    images = tf.keras.Input((SIZE, SIZE, 3), dtype=tf.uint8)
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(images)
    x = tf.keras.layers.Flatten()(base(x))  # the base follows the outer training flag
    x = tf.keras.layers.Dropout(0.2, name="dropout")(tf.keras.layers.Dense(4)(x))
    model = tf.keras.Model(images, tf.keras.layers.Dense(1, name="probability")(x))
    before = [w.numpy() for w in base.weights]
    norm = inspect.check_batchnorm(model)
    assert norm.call_training is None
    assert not norm.statistics_unchanged and not norm.inference_mode
    # The probe restores what it touched: flags and every moving statistic.
    assert not base.trainable and not any(layer.trainable for layer in base.layers)
    for value, weight in zip(before, base.weights, strict=True):
        np.testing.assert_array_equal(value, weight.numpy())


def test_fine_tuned_model_reports_the_unfrozen_base_layers():
    hp = _hparams(fine_tune_from="mixed6")
    report = inspect.inspect_model(inspect.build_for_inspection(hp), hp, "flags")
    assert report.base_trainable_layers > 0
    assert report.head_trainable_params == DEFAULT_HEAD
    assert report.trainable_params == DEFAULT_HEAD + report.base_trainable_params
    assert report.trainable_params + report.non_trainable_params == report.total_params
    # Unfrozen BatchNorm layers still keep their moving statistics: the call says training=False.
    assert report.batchnorm.inference_mode


@pytest.fixture(scope="module")
def exported_seeds_model(transform_output, tmp_path_factory):
    """A [512, 1024] head, fine-tuned from mixed6 as `train.fit` leaves it, exported."""
    hp = _hparams(dense_units=(512, 1024), fine_tune_from="mixed6", augment=AugmentConfig.off())
    model = model_lib.build_model(hp)
    model_lib.unfreeze_from(model_lib.get_base(model), hp.fine_tune_from)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # values unlike any fresh build's, to see them come back
        noise = rng.uniform(0.9, 1.1, weight.shape) * weight.numpy()
        weight.assign((noise + rng.uniform(-0.01, 0.01, weight.shape)).astype(np.float32))
    path = str(tmp_path_factory.mktemp("export") / "model")
    export.export(model, transform_output, hp.class_names, SIZE, path, hparams=hp)
    return hp, model, path


def test_exported_model_is_rebuilt_with_its_flags_counts_and_values(exported_seeds_model):
    hp, original, path = exported_seeds_model
    loaded_hp, model = inspect.load_exported_model(path)
    assert loaded_hp == hp
    for saved, rebuilt in zip(original.weights, model.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), rebuilt.numpy())
    report = inspect.inspect_model(model, loaded_hp, path)
    assert report.trainable_params == _params(original.trainable_weights)
    assert report.head_trainable_params == SEEDS_HEAD
    assert report.non_trainable_params == _params(original.non_trainable_weights)
    assert (report.dropout_input, report.dropout_input_units) == ("dense_1", 1024)
    assert report.fine_tune_from == "mixed6" and report.base_trainable_layers > 0


def test_export_without_hparams_is_a_clear_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")  # hparams.json is read before the graph
    with pytest.raises(ValueError, match="exported without its hyperparameters"):
        inspect.load_exported_model(str(tmp_path))
