"""Bottleneck cache: the stored features are the base's, the reader streams them from disk, the
head trained on them is the full model's head, and the cache refuses fine-tuning."""

from pathlib import Path

import click
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline.cli.options import hparams_from_options, model_options
from pipeline.errors import UserError
from trainer import bottleneck, contract
from trainer import model as model_lib
from trainer.augment import AugmentConfig
from trainer.hparams import HParams

SIZE = 75


def _hparams(**overrides) -> HParams:
    values = dict(class_names=("a", "b"), image_size=SIZE, weights="none", dense_units=(8,),
                  augment=AugmentConfig.off(), epochs=1, early_stopping_patience=0, seed=3,
                  batch_size=4, learning_rate=1e-2, bottleneck_cache=True)
    values.update(overrides)
    return HParams(**values)


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
    # A learnable signal for a random base: class 1 is brighter.
    labels = np.array([0, 1] * (n // 2), dtype=np.int64)
    images[labels == 1] = np.clip(images[labels == 1].astype(int) + 60, 0, 255)
    return images, labels


def _dataset(images: np.ndarray, labels: np.ndarray, batch: int = 4) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


def _read_all(info: bottleneck.CacheInfo, shuffle: bool = False,
              memory_bytes: int = bottleneck.MEMORY_BYTES) -> tuple[np.ndarray, np.ndarray]:
    return _epoch(bottleneck.read_cache(info, 4, shuffle=shuffle, memory_bytes=memory_bytes))


def _epoch(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    features, labels = zip(*[(f.numpy(), y.numpy()) for f, y in dataset], strict=True)
    return np.concatenate(features), np.concatenate(labels)


@pytest.fixture(scope="module")
def model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    return model_lib.build_model(_hparams())


def test_cached_features_are_the_bases_pooled_output_on_the_same_images(model, tmp_path):
    images, labels = _images(10)
    info = bottleneck.write_cache(bottleneck.feature_model(model), _dataset(images, labels),
                                  str(tmp_path))
    assert info.records == 10 and info.feature_dim == 3 * 3 * 768  # mixed7 at 75 px, flattened
    features, read_labels = _read_all(bottleneck.load_cache_info(str(tmp_path)))
    base = model_lib.get_base(model)
    scaled = model.get_layer("base_preprocess")(images)
    expected = tf.reshape(base(scaled, training=False), [10, -1]).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(read_labels, labels)
    assert np.abs(expected).max() > 0  # not a cache of zeros


def test_k_augmented_copies_give_k_records_per_image_each_augmented(tmp_path):
    hp = _hparams(augment=AugmentConfig(), cache_augmented_copies=3)
    augmented_model = model_lib.build_model(hp)
    images, labels = _images(6)
    extractor = bottleneck.feature_model(augmented_model)
    info = bottleneck.write_cache(extractor, _dataset(images, labels), str(tmp_path / "aug"), 3)
    assert info.records == 3 * 6
    features, read_labels = _read_all(info)
    np.testing.assert_array_equal(read_labels, np.tile(labels, 3))
    plain = extractor(images, training=False).numpy()
    copies = features.reshape(3, 6, -1)
    for copy in copies:  # every copy is augmented: none equals the plain features
        assert not np.allclose(copy, plain, atol=1e-6)
    assert not np.allclose(copies[0], copies[1], atol=1e-6)  # and the copies differ


def test_the_reader_streams_from_the_shard_files(model, tmp_path, monkeypatch):
    # Small shards: 10 images make 4 files, read in a shuffled file order and buffer.
    record_bytes = (3 * 3 * 768 + 1) * 4
    monkeypatch.setattr(bottleneck, "SHARD_BYTES", 3 * record_bytes)
    extractor = bottleneck.feature_model(model)
    images, labels = _images(10)
    info = bottleneck.write_cache(extractor, _dataset(images, labels), str(tmp_path))
    assert len(info.shards) == 4 and all(Path(s).is_file() for s in info.shards)
    assert sum(Path(s).stat().st_size for s in info.shards) == 10 * record_bytes
    in_order, _ = _read_all(info, memory_bytes=0)
    shuffled, shuffled_labels = _read_all(info, shuffle=True, memory_bytes=0)
    order = np.lexsort(shuffled.T[:5])
    np.testing.assert_array_equal(shuffled[order], in_order[np.lexsort(in_order.T[:5])])
    assert sorted(shuffled_labels) == sorted(labels)
    # The dataset holds file names, not features: rewriting the files changes what it yields.
    dataset = bottleneck.read_cache(info, 4, shuffle=False, memory_bytes=info.bytes - 1)
    assert dataset.options().autotune.enabled is False  # see data.without_autotuning
    other, _ = _images(10, seed=5)
    bottleneck.write_cache(extractor, _dataset(other, labels), str(tmp_path))
    rewritten = np.concatenate([f.numpy() for f, _ in dataset])
    np.testing.assert_allclose(rewritten, extractor(other, training=False).numpy(), rtol=1e-5,
                               atol=1e-7)
    assert not np.allclose(rewritten, in_order)


def test_a_cache_within_the_memory_bound_is_read_once_and_reshuffled_each_epoch(model, tmp_path,
                                                                             monkeypatch):
    record_bytes = (3 * 3 * 768 + 1) * 4
    monkeypatch.setattr(bottleneck, "SHARD_BYTES", 3 * record_bytes)  # 4 shards, as above
    extractor = bottleneck.feature_model(model)
    images, labels = _images(10)
    info = bottleneck.write_cache(extractor, _dataset(images, labels), str(tmp_path))
    assert info.bytes == 10 * record_bytes and info.describe()["in_memory"]
    streamed = _read_all(info, memory_bytes=0)
    in_memory = _read_all(info, memory_bytes=info.bytes)
    for a, b in zip(streamed, in_memory, strict=True):  # the same records in the same order
        np.testing.assert_array_equal(a, b)
    dataset = bottleneck.read_cache(info, 4, shuffle=True, memory_bytes=info.bytes)
    assert dataset.options().autotune.enabled is False  # see data.without_autotuning
    index = {row.tobytes(): i for i, row in enumerate(streamed[0])}
    assert len(index) == 10  # the records are distinct, so each epoch's order can be read back
    orders = []
    for features, read_labels in (_epoch(dataset) for _ in range(3)):
        order = [index[row.tobytes()] for row in features]
        assert sorted(order) == list(range(10))  # every record once per epoch
        np.testing.assert_array_equal(read_labels, streamed[1][order])  # with its own label
        orders.append(tuple(order))
    assert len(set(orders)) > 1  # a new permutation each epoch
    # The dataset holds the features themselves: the files can go.
    for shard in info.shards:
        Path(shard).unlink()
    assert sorted(index[row.tobytes()] for row in _epoch(dataset)[0]) == list(range(10))


def test_in_the_cached_head_dropout_drops_in_training_and_is_the_identity_at_inference(
        model, check_dropout_is_training_only):
    # The head trains alone on cached features (no augmentation, no base): Dropout is the only
    # layer that can make training outputs differ.
    head = bottleneck.head_model(model)
    assert [layer.name for layer in head.layers[1:]] == ["dense_0", "dropout", "probability"]
    features = tf.random.uniform((16, head.input.shape[-1]), 0.0, 2.0, seed=6)
    check_dropout_is_training_only(head, features)


def test_fit_cached_trains_the_full_models_head_and_leaves_the_base(tmp_path, write_records):
    hp = _hparams(epochs=3)
    tf.keras.utils.set_random_seed(1)
    model = model_lib.build_model(hp)
    base_before = [w.numpy().copy() for w in model_lib.get_base(model).weights]
    head_before = model.get_layer("dense_0").kernel.numpy().copy()
    train_images, train_labels = _images(16, seed=1)
    eval_images, eval_labels = _images(8, seed=2)
    train_file = write_records(tmp_path / "train.gz", train_images, train_labels)
    eval_file = write_records(tmp_path / "eval.gz", eval_images, eval_labels)
    history, caches = bottleneck.fit_cached(model, hp, [train_file], [eval_file],
                                            str(tmp_path / "logs"), cache_root=str(tmp_path))
    assert len(history["loss"]) == 3 and len(history["val_loss"]) == 3
    assert caches["train"]["records"] == 16 and caches["eval"]["records"] == 8
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("bottleneck-")] == []
    for before, weight in zip(base_before, model_lib.get_base(model).weights, strict=True):
        np.testing.assert_array_equal(before, weight.numpy())
    kernel = model.get_layer("dense_0").kernel.numpy()
    assert not np.allclose(kernel, head_before)
    # The assembled model is head(base(x)) with the trained weights, computed by hand.
    features = tf.reshape(model_lib.get_base(model)(
        model.get_layer("base_preprocess")(eval_images), training=False), [8, -1]).numpy()
    hidden = np.maximum(features @ kernel + model.get_layer("dense_0").bias.numpy(), 0.0)
    output = model.get_layer("probability")
    logits = hidden @ output.kernel.numpy() + output.bias.numpy()
    np.testing.assert_allclose(model(eval_images, training=False).numpy(),
                               1.0 / (1.0 + np.exp(-logits)), rtol=1e-4, atol=1e-6)


class _StepCounter(tf.keras.callbacks.Callback):
    """Counts the training steps, one optimiser update each. (`optimizer.iterations` over-counts
    on a dataset of unknown length: tf_keras' probing call that meets the end of the data adds
    one without updating a weight.)"""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1


def test_fit_cached_trains_the_head_in_batches_of_the_cache_batch_size(model, tmp_path,
                                                                     write_records, monkeypatch):
    # 10 records: at the head's batch of 8 an epoch is ceil(10 / 8) = 2 steps (3 at the
    # extraction's batch of 4).
    hp = _hparams(epochs=2, batch_size=4, cache_batch_size=8)
    counter, fed = _StepCounter(), []
    real_fit, real_callbacks = bottleneck.train.fit, bottleneck.train.callbacks

    def fit(head, hp, train_data, *args, **kwargs):
        fed.append([int(labels.shape[0]) for _, labels in train_data])
        return real_fit(head, hp, train_data, *args, **kwargs)

    monkeypatch.setattr(bottleneck.train, "fit", fit)
    monkeypatch.setattr(bottleneck.train, "callbacks",
                        lambda *args: [*real_callbacks(*args), counter])
    train_file = write_records(tmp_path / "train.gz", *_images(10, seed=1))
    eval_file = write_records(tmp_path / "eval.gz", *_images(4, seed=2))
    history, caches = bottleneck.fit_cached(model, hp, [train_file], [eval_file],
                                            str(tmp_path / "logs"), cache_root=str(tmp_path))
    assert caches["train"]["records"] == 10 and caches["batch_size"] == 8
    assert fed == [[8, 2]]
    assert len(history["loss"]) == 2 and counter.steps == -(-10 // 8) * 2


@pytest.mark.parametrize("flags,message", [
    (["--bottleneck-cache", "on", "--fine-tune-from", "mixed6"],
     "--bottleneck-cache on trains the head on stored features of the frozen base, which "
     "--fine-tune-from would change; drop one of the two"),
    (["--cache-augmented-copies", "2"], "--cache-augmented-copies 2 needs --bottleneck-cache on"),
    (["--bottleneck-cache", "on", "--cache-augmented-copies", "2", "--no-augment"],
     "--cache-augmented-copies 2 needs augmentation on (with it off every copy would "
     "be the same)"),
    (["--cache-batch-size", "128"], "--cache-batch-size 128 needs --bottleneck-cache on"),
    (["--bottleneck-cache", "on", "--cache-batch-size", "-1"],
     "--cache-batch-size -1 must be at least 0"),
])
def test_the_flags_refuse_the_cache_with_fine_tuning_in_one_line(flags, message):
    @click.command()
    @model_options
    def command(**options):
        hparams_from_options(("a", "b"), "none", options)

    result = CliRunner().invoke(command, flags)
    assert isinstance(result.exception, UserError)  # imgpipe's main: one line, exit code 2
    assert str(result.exception) == message


def test_the_flags_turn_the_cache_on():
    @click.command()
    @model_options
    def command(**options):
        hp = hparams_from_options(("a", "b"), "none", options)
        click.echo(f"{hp.bottleneck_cache} {hp.cache_augmented_copies} {hp.cache_batch_size} "
                   f"{hp.head_batch_size}")

    assert CliRunner().invoke(command, []).output == "False 0 0 32\n"
    result = CliRunner().invoke(command, ["--bottleneck-cache", "on",
                                          "--cache-augmented-copies", "4",
                                          "--cache-batch-size", "128"])
    assert result.output == "True 4 128 128\n"


@pytest.mark.slow  # the Trainer's whole run_fn: caches, trains, exports
def test_run_fn_with_the_cache_exports_a_model_that_serves_raw_images(transform_output, tmp_path,
                                                                      write_records):
    import json
    import os

    from tfx import v1 as tfx

    from trainer import run

    hp = _hparams(epochs=1, dense_units=(4,))
    images, labels = _images(8, seed=1)
    fn_args = tfx.components.FnArgs(
        train_files=[write_records(tmp_path / "train.gz", images, labels)],
        eval_files=[write_records(tmp_path / "eval.gz", *_images(4, seed=2))],
        transform_output=os.path.dirname(transform_output.transform_savedmodel_dir),
        serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(tmp_path / "run"),
        custom_config={contract.HPARAMS_KEY: hp.to_config()}, schema_path=None, base_model=None)
    run.run_fn(fn_args)
    record = json.loads((tmp_path / "run" / "history.json").read_text())
    assert record["bottleneck_cache"]["train"]["records"] == 8
    assert record["bottleneck_cache"]["eval"]["records"] == 4
    assert len(record["history"]["loss"]) == 1 and len(record["history"]["val_loss"]) == 1
    # What the summary reads besides: class counts and weights, the feature and chance checks.
    assert record["class_counts"] == {"a": 4, "b": 4}
    assert record["class_weights"] == {"mode": "auto", "largest_over_smallest": 1.0,
                                       "weights": None}
    assert record["health"]["images"] == 8 and record["health"]["errors"] == []
    chance = record["chance"]
    assert chance["chance_accuracy"] == 0.5 and chance["chance_loss"] == 0.6931  # log 2
    assert chance["at_chance"] == (chance["best_train_accuracy"] <= 0.52
                                   and chance["best_train_loss"] >= 0.95 * 0.6931)
    served = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    out = served(image_bytes=tf.constant([tf.io.encode_png(images[0]).numpy(),
                                          tf.io.encode_jpeg(images[1]).numpy()]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
