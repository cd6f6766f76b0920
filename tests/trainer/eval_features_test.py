"""The data audit's eval features serve the Trainer's validation only when they are the Trainer's
own: written by the audit's embedder, read back, checked against the Trainer's model on its own
eval records; validating the head on them gives what validating the model on the images gives,
and the base never sees the eval images during the head's epochs."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainer import bottleneck, devices, eval_features, train
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.bases import build_application, get_base_spec
from trainer.embed import make_embedder
from trainer.hparams import HParams

SIZE = 48
FLOAT32 = devices.plan_devices(devices.DeviceConfig(), [], cpu_bfloat16=False)


def _weights(path: str, seed: int) -> str:
    tf.keras.utils.set_random_seed(seed)
    build_application(get_base_spec("mobilenet_v2"), SIZE, "none").save_weights(
        path, save_format="h5")
    return path


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random pictures (so resizing and PNG leave them as they are); class 1 redder."""
    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * (n // 2), np.int64)
    small = rng.integers(0, 150, (n, 6, 6, 3))
    small[labels == 1, ..., 0] += 105
    images = np.stack([np.asarray(Image.fromarray(s.astype(np.uint8)).resize(
        (SIZE, SIZE), Image.Resampling.BICUBIC)) for s in small])
    return images, labels


def _png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A weights file, 24 eval images as the audit reads them (encoded) and as the Trainer
    reads them (Transform's records), and the features the audit's embedder kept of them."""
    root = tmp_path_factory.mktemp("eval_features")
    hp = HParams(class_names=("blue", "red"), base="mobilenet_v2", image_size=SIZE,
                 weights=_weights(str(root / "base.h5"), seed=5), pooling="flatten",
                 dense_units=(8,), augment=AugmentConfig(), input_scaling="inception", epochs=2,
                 early_stopping_patience=0, batch_size=8)
    images, labels = _images(24, seed=1)
    embed = make_embedder(hp.to_config(), features_dir=str(root / "features"))
    encoded = [_png(image) for image in images]
    pooled = embed(encoded[:10], labels[:10])  # two batches, as the audit's reader gives them
    pooled = np.concatenate([pooled, embed(encoded[10:], labels[10:])])
    manifest = embed.finish()
    return root, hp, images, labels, pooled, manifest


def test_the_embedder_keeps_what_the_head_reads_with_labels_and_pixel_digests(setting):
    root, hp, images, labels, pooled, manifest = setting
    assert manifest["written"] and manifest["records"] == 24
    assert manifest["config"] == eval_features.features_config(hp)
    stored, reason = eval_features.load(str(root / "features"))
    assert reason == ""
    np.testing.assert_array_equal(stored.keys, eval_features.pixel_keys(images))
    batches = [(f.numpy(), y.numpy()) for f, y in bottleneck.read_cache(stored.cache, 5, False)]
    features, stored_labels = (np.concatenate(a) for a in zip(*batches, strict=True))
    np.testing.assert_array_equal(stored_labels, labels)
    model = model_lib.build_model(hp)  # the same weights file: the same base
    expected = bottleneck.feature_model(model)(images, training=False).numpy()
    assert features.shape == expected.shape == (24, int(np.prod(model_lib.get_base(
        model).output.shape[1:])))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    assert pooled.shape == (24, model_lib.get_base(model).output.shape[-1])  # the audit's own


def test_the_trainer_takes_its_own_features_and_the_head_validates_as_the_model_would(
        setting, write_records, tmp_path):
    root, hp, images, labels, _, _ = setting
    eval_file = write_records(tmp_path / "eval.gz", images[::-1], labels[::-1])  # another order
    model = model_lib.build_model(hp)
    cache, record = eval_features.use(str(root / "features"), hp, model, [eval_file], FLOAT32)
    assert cache is not None, record
    assert record["on"] == eval_features.VALIDATED_ON_FEATURES and record["records"] == 24
    assert record["largest_difference"] <= eval_features.TOLERANCE
    logs: dict = {}
    validation = eval_features.HeadValidation(model, hp, cache)
    validation.on_epoch_end(0, logs)
    expected = model.evaluate(tf.data.Dataset.from_tensor_slices((images, labels)).batch(8),
                              verbose=0, return_dict=True)
    assert set(logs) == {"val_loss", "val_accuracy"}
    assert logs["val_loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-6)
    assert logs["val_accuracy"] == pytest.approx(expected["accuracy"])


def _refusal(setting, write_records, tmp_path, hp=None, images=None, labels=None,
             plan=FLOAT32, directory=None) -> dict:
    root, default_hp, default_images, default_labels, _, _ = setting
    hp = hp or default_hp
    tmp_path.mkdir(parents=True, exist_ok=True)
    eval_file = write_records(tmp_path / "eval.gz",
                              default_images if images is None else images,
                              default_labels if labels is None else labels)
    model = model_lib.build_model(hp)
    cache, record = eval_features.use(directory if directory is not None else
                                      str(root / "features"), hp, model, [eval_file], plan)
    assert cache is None and record["on"] == eval_features.VALIDATED_ON_IMAGES
    return record


def test_features_of_other_settings_other_images_or_another_base_are_refused(
        setting, write_records, tmp_path):
    root, hp, images, labels, _, _ = setting
    record = _refusal(setting, write_records, tmp_path / "a",
                      hp=dataclasses.replace(hp, pooling="avg"))
    assert record["reason"].startswith("they were made with other settings")
    other = images.copy()
    other[3] = 255 - other[3]
    record = _refusal(setting, write_records, tmp_path / "b", images=other)
    assert record["reason"] == "they are of other images or labels (24 records, the Trainer's 24)"
    record = _refusal(setting, write_records, tmp_path / "e", labels=1 - labels)
    assert record["reason"] == "they are of other images or labels (24 records, the Trainer's 24)"
    record = _refusal(setting, write_records, tmp_path / "f", images=images[:20],
                      labels=labels[:20])
    assert record["reason"] == "they are of other images or labels (24 records, the Trainer's 20)"
    # Another weights file under the same settings' name: only the features themselves tell.
    changed = _weights(str(tmp_path / "base.h5"), seed=6)
    copy = tmp_path / "features"
    shutil.copytree(root / "features", copy)
    manifest = json.loads((copy / bottleneck.MANIFEST).read_text())
    manifest["config"]["weights"] = changed
    (copy / bottleneck.MANIFEST).write_text(json.dumps(manifest))
    record = _refusal(setting, write_records, tmp_path / "d",
                      hp=dataclasses.replace(hp, weights=changed), directory=str(copy))
    assert record["reason"].startswith("they are not the Trainer's own (they differ by ")
    assert record["largest_difference"] > 100 * eval_features.TOLERANCE


def test_without_features_or_in_mixed_precision_the_trainer_validates_on_the_images(
        setting, write_records, tmp_path):
    record = _refusal(setting, write_records, tmp_path / "a", directory="")
    assert record["reason"] == "no data audit before the Trainer"
    mixed = dataclasses.replace(FLOAT32, precision_policy="mixed_bfloat16")
    record = _refusal(setting, write_records, tmp_path / "b", plan=mixed)
    assert "mixed_bfloat16" in record["reason"]


def test_an_eval_split_over_the_limit_is_not_kept_and_says_why(tmp_path):
    writer = eval_features.Writer(str(tmp_path), feature_dim=3, config={}, limit_bytes=40)
    writer.add(np.ones((2, 3)), np.zeros(2), np.arange(2, dtype=np.uint64))  # 32 bytes
    writer.add(np.ones((1, 3)), np.zeros(1), np.arange(1, dtype=np.uint64))  # 48: over
    manifest = writer.finish()
    assert not manifest["written"] and "more than 40 bytes" in manifest["reason"]
    assert sorted(os.listdir(tmp_path)) == [bottleneck.MANIFEST]
    stored, reason = eval_features.load(str(tmp_path))
    assert stored is None and "more than 40 bytes" in reason


class _Untouchable:
    """Stands for the eval images: the head's epochs must not read them."""

    def __iter__(self):
        raise AssertionError("the eval images were read")


def test_fit_validates_the_head_on_the_features_not_on_the_images(setting, tmp_path):
    root, hp, images, labels, _, _ = setting
    hp = dataclasses.replace(hp, epochs=2)
    model = model_lib.build_model(hp)
    stored, _ = eval_features.load(str(root / "features"))
    validation = eval_features.HeadValidation(model, hp, stored.cache)
    train_data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    history = train.fit(model, hp, train_data, _Untouchable(), str(tmp_path / "logs"),
                        head_validation=validation)
    assert len(history["val_loss"]) == len(history["loss"]) == 2
    final = model.evaluate(train_data, verbose=0, return_dict=True)  # the same 24 images
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-4)
