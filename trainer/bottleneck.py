"""Bottleneck cache: the frozen base's features computed once, on disk; the head trains on them.

Without augmentation the frozen base (called with `training=False`) maps an image to the same
features in every epoch, so a full forward pass per image per epoch repeats work. In cache mode:

1. `feature_model(model)` is the model up to its pooling layer (`flatten` or `avg_pool`): the
   features exactly as the head reads them. It runs once over the training and eval images and
   `write_cache` streams each batch to disk. With `cache_augmented_copies` K > 0 it makes K
   passes over the training images with the augmentation active (the base still in inference
   mode), so K different augmented copies of each image.
2. `head_model(model)` is the head alone (Dense layers, Dropout, output) on a features input. It
   *shares its layers* with the full model, so training it trains the full model's head, which
   is then exported, served and evaluated as usual, raw image bytes in.
3. `read_cache` gives the records back every epoch, batched by `hp.head_batch_size`. A cache of
   at most `MEMORY_BYTES` is read once into memory and each epoch gathers its batches by a new
   permutation, which spares every epoch a pass through the file reader and the shuffle buffer;
   a larger one streams from the shard files (file order shuffled, interleaved, then a shuffle
   buffer bounded in bytes). Either way memory stays bounded whatever the dataset's size.

On disk a cache is a folder of shard files of fixed-length records, each `feature_dim + 1`
float32 values (the features, then the label), and `manifest.json`; under a mixed policy the
features are cast to float32. Fine-tuning changes the base, which would make the cache stale: the
two are refused together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from typing import Any

import numpy as np
import tensorflow as tf

from trainer import data, devices, train
from trainer import model as model_lib
from trainer.hparams import HParams

MANIFEST = "manifest.json"
POOLING_LAYERS = ("flatten", "avg_pool")
SHARD_BYTES = 32 << 20  # small shards, so shuffling the file order mixes the records well
SHUFFLE_BYTES = 64 << 20  # the bound on the records held by the reader's shuffle buffer
MEMORY_BYTES = 1 << 30  # caches up to this size are held in memory for the head's epochs


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """What `write_cache` wrote: where, how many records of what width, and how long it took."""

    directory: str
    feature_dim: int
    records: int
    shards: tuple[str, ...]
    augmented_copies: int
    seconds: float

    @property
    def record_bytes(self) -> int:
        """Bytes per record: the float32 features and the label."""
        return (self.feature_dim + 1) * 4

    @property
    def bytes(self) -> int:
        """The cache's size on disk, and in memory when `read_cache` holds it there."""
        return self.records * self.record_bytes

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary for `history.json`."""
        return {"records": self.records, "feature_dim": self.feature_dim,
                "shards": len(self.shards), "bytes": self.bytes,
                "in_memory": self.bytes <= MEMORY_BYTES,
                "augmented_copies": self.augmented_copies, "seconds": round(self.seconds, 2)}


def pooling_layer(model: tf.keras.Model) -> tf.keras.layers.Layer:
    """The layer of a `build_model` model whose output the head reads."""
    for layer in model.layers:
        if layer.name in POOLING_LAYERS:
            return layer
    raise ValueError(f"{model.name} has no pooling layer ({', '.join(POOLING_LAYERS)})")


def feature_model(model: tf.keras.Model) -> tf.keras.Model:
    """Images in, pooled base features out: the full model's own layers up to its pooling."""
    return tf.keras.Model(model.input, pooling_layer(model).output, name="bottleneck_features")


def head_model(model: tf.keras.Model) -> tf.keras.Model:
    """The head on a features input, sharing its layers (and so its weights) with `model`."""
    pool = pooling_layer(model)
    layers = model.layers[model.layers.index(pool) + 1:]
    features = tf.keras.Input((int(pool.output.shape[-1]),), name="features")
    x = features
    for layer in layers:  # the head is a chain: Dense layers, Dropout, the output
        x = layer(x)
    return tf.keras.Model(features, x, name="head")


class ShardWriter:
    """Appends records to numbered shard files of at most `SHARD_BYTES` each (`tf.io.gfile`:
    a local folder, or an artifact's `gs://` one)."""

    def __init__(self, directory: str, record_bytes: int) -> None:
        self.directory = directory
        self.per_shard = max(1, SHARD_BYTES // record_bytes)
        self.shards: list[str] = []
        self.records = 0
        self._file = None
        self._in_shard = 0

    def write(self, records: np.ndarray) -> None:
        start = 0
        while start < len(records):
            if self._file is None or self._in_shard == self.per_shard:
                self._open_next()
            take = min(self.per_shard - self._in_shard, len(records) - start)
            self._file.write(records[start:start + take].tobytes())
            self._in_shard += take
            self.records += take
            start += take

    def _open_next(self) -> None:
        self.close()
        path = os.path.join(self.directory, f"features-{len(self.shards):05d}.bin")
        self.shards.append(path)
        self._file = tf.io.gfile.GFile(path, "wb")
        self._in_shard = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_cache(extractor: tf.keras.Model, images: tf.data.Dataset, directory: str,
                augmented_copies: int = 0) -> CacheInfo:
    """Runs `extractor` over batches of (uint8 images, labels) and streams the features to disk.

    `augmented_copies` 0 writes one un-augmented record per image; K > 0 makes K passes with
    `training=True` (the augmentation active), K records per image. Only one batch of features
    is in memory at a time.
    """
    os.makedirs(directory, exist_ok=True)
    augment = augmented_copies > 0
    feature_dim = int(extractor.output.shape[-1])
    writer = ShardWriter(directory, (feature_dim + 1) * 4)
    extract = tf.function(lambda x: tf.cast(extractor(x, training=augment), tf.float32),
                          autograph=False,
                          input_signature=[tf.TensorSpec(extractor.input.shape, tf.uint8)])
    start = time.perf_counter()
    try:
        for _ in range(max(1, augmented_copies)):
            for batch_images, labels in images:
                features = extract(batch_images).numpy()
                label_column = labels.numpy().astype(np.float32).reshape(-1, 1)
                writer.write(np.concatenate([features, label_column], axis=1))
    finally:
        writer.close()
    info = CacheInfo(directory, feature_dim, writer.records, tuple(writer.shards),
                     augmented_copies, time.perf_counter() - start)
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump({**dataclasses.asdict(info), "dtype": "float32",
                   "layout": "records of feature_dim features then the label"}, f, indent=1)
    return info


def load_cache_info(directory: str) -> CacheInfo:
    """The `CacheInfo` a `write_cache` call recorded in `directory`."""
    with open(os.path.join(directory, MANIFEST)) as f:
        manifest = json.load(f)
    fields = {f.name for f in dataclasses.fields(CacheInfo)}
    values = {k: v for k, v in manifest.items() if k in fields}
    values["shards"] = tuple(values["shards"])
    return CacheInfo(**values)


def read_cache(info: CacheInfo, batch_size: int, shuffle: bool, seed: int = 42,
               memory_bytes: int = MEMORY_BYTES) -> tf.data.Dataset:
    """Batches of (float32 features [N, D], int64 labels [N]): held in memory when the cache is
    at most `memory_bytes`, else streamed from the shard files; records in their written order
    unless `shuffle`, then in a new order each epoch."""
    if info.bytes <= memory_bytes:
        return _read_into_memory(info, batch_size, shuffle, seed)
    return _stream(info, batch_size, shuffle, seed)


def _read_into_memory(info: CacheInfo, batch_size: int, shuffle: bool, seed: int
                      ) -> tf.data.Dataset:
    """The records read once; each epoch gathers its batches by a permutation of their indices."""
    return data.batches_in_memory(read_arrays(info), batch_size, shuffle, seed)


def read_arrays(info: CacheInfo) -> tuple[np.ndarray, np.ndarray]:
    """The whole cache as (float32 features [N, D], int64 labels [N]), in the written order."""
    features = np.empty((info.records, info.feature_dim), np.float32)
    labels = np.empty(info.records, np.int64)
    start = 0
    for path in info.shards:  # one shard (at most SHARD_BYTES) in flight at a time
        with tf.io.gfile.GFile(path, "rb") as f:
            shard = np.frombuffer(f.read(), np.float32).reshape(-1, info.feature_dim + 1)
        features[start:start + len(shard)] = shard[:, :-1]
        labels[start:start + len(shard)] = shard[:, -1]
        start += len(shard)
    return features, labels


def _stream(info: CacheInfo, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """The records read from the shard files every epoch, through a shuffle buffer bounded in
    bytes when `shuffle`."""
    files = tf.data.Dataset.from_tensor_slices(list(info.shards))
    if shuffle:
        files = files.shuffle(len(info.shards), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        lambda path: tf.data.FixedLengthRecordDataset(path, info.record_bytes),
        cycle_length=min(8, len(info.shards)) if shuffle else 1, block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if shuffle:
        buffer = max(batch_size, min(info.records, SHUFFLE_BYTES // info.record_bytes))
        records = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    def decode(raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        values = tf.io.decode_raw(raw, tf.float32)  # [N, D + 1]
        return values[:, :-1], tf.cast(values[:, -1], tf.int64)

    return data.without_autotuning(
        records.batch(batch_size).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE))


def fit_cached(model: tf.keras.Model, hp: HParams, train_files: list[str] | str,
               eval_files: list[str] | str, log_dir: str,
               strategy: tf.distribute.Strategy | None = None,
               compilation: devices.Compilation = devices.NO_XLA,
               cache_root: str | None = None, class_weight: dict[int, float] | None = None,
               eval_cache: CacheInfo | None = None
               ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Caches the features of the training and eval images, trains `model`'s head on them.

    `eval_cache`: the eval images' features computed before (`trainer.eval_features`), used
    instead of computing them again.

    The cache lives in a temporary folder under `cache_root` (the system's temporary folder by
    default) and is removed afterwards. The features are extracted in batches of `batch_size`,
    the head trains on them in batches of `hp.head_batch_size`. Returns the history (as
    `train.fit`'s, `class_weight` passed on to it) and a summary of the two caches and that batch
    size.
    """
    if hp.augment.enabled and not hp.cache_augmented_copies:
        logging.warning("bottleneck cache without augmented copies: the head trains on "
                        "un-augmented features (set cache_augmented_copies for augmentation)")
    strategy = strategy or tf.distribute.get_strategy()
    extractor = feature_model(model)
    with strategy.scope():
        head = head_model(model)
        model_lib.compile_model(head, hp.num_classes, hp.learning_rate, compilation)
    with tempfile.TemporaryDirectory(prefix="bottleneck-", dir=cache_root) as work:
        # Shuffled before caching, so consecutive records (and so each shard) mix the classes.
        train_images = data.make_dataset(train_files, hp.image_size, hp.batch_size,
                                         shuffle=True, seed=hp.seed)
        train_cache = write_cache(extractor, train_images, os.path.join(work, "train"),
                                  hp.cache_augmented_copies)
        if eval_cache is None:
            eval_images = data.make_dataset(eval_files, hp.image_size, hp.batch_size,
                                            shuffle=False)
            eval_cache = write_cache(extractor, eval_images, os.path.join(work, "eval"))
        batch_size = hp.head_batch_size
        logging.info("bottleneck cache: %d training and %d eval records in %.1f s; head epochs "
                     "in batches of %d", train_cache.records, eval_cache.records,
                     train_cache.seconds + eval_cache.seconds, batch_size)
        history = train.fit(head, hp, read_cache(train_cache, batch_size, True, hp.seed),
                            read_cache(eval_cache, batch_size, False), log_dir, compilation,
                            class_weight)
    return history, {"train": train_cache.describe(), "eval": eval_cache.describe(),
                     "batch_size": batch_size}
