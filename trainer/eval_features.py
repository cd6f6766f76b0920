"""The eval split's features, computed once before the Trainer, for the head's validation.

The data audit runs the frozen base over every image once (`trainer/embed.py`). For the eval
split it also keeps what the head reads (the model's pooling layer's output, as in
`trainer.bottleneck`), each image's label and a digest of its pixels, in the bottleneck cache's
record format, in its `EvalFeatures` artifact, which the Trainer receives. While the base is
frozen, each epoch then validates the head on those features (`HeadValidation`) instead of
running the base over the eval images again: the audit's pass replaces one pass per epoch.

The Trainer takes them only when they are its own (`use`): the same base, weights, cut layer,
pooling, image size and input scaling; the same images (pixel digests) with the same labels;
float32 compute; and its own features of a batch of its eval images equal to the stored ones.
Else it validates on the images, as without the audit, and `history.json` says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import numpy as np
import tensorflow as tf

from trainer import bottleneck, data, devices
from trainer import model as model_lib
from trainer.hparams import HParams

KEYS_FILE = "keys.bin"  # 8 bytes of BLAKE2b of each record's uint8 pixels, in record order
LIMIT_BYTES = 2 << 30  # larger eval splits are not kept: the Trainer validates on the images
CHECK_IMAGES = 32  # eval images whose features the Trainer computes itself and compares
# Stored and recomputed features may differ by float32 rounding (the batches differ); more than
# this, relative to the batch's largest feature, means they are not the same features.
TOLERANCE = 1e-4
VALIDATED_ON_FEATURES = "the data audit's features of the eval images"
VALIDATED_ON_IMAGES = "the eval images"


def features_config(hp: HParams) -> dict[str, Any]:
    """What decides the features the head reads, with `hp`'s input scaling already decided."""
    return {"base": hp.base, "weights": hp.weights, "weights_sha256": hp.weights_sha256,
            "cut_layer": hp.resolved_cut_layer, "pooling": hp.resolved_pooling,
            "image_size": hp.image_size, "input_scaling": hp.input_scaling}


def pixel_keys(images: np.ndarray) -> np.ndarray:
    """uint8 images [N, S, S, 3] -> uint64 [N]: a digest of each image's pixels."""
    return np.array([int.from_bytes(hashlib.blake2b(np.ascontiguousarray(image).tobytes(),
                                                    digest_size=8).digest(), "little")
                     for image in images], np.uint64)


class Writer:
    """Streams the eval split's head features, labels and pixel digests to `directory`.

    Past `limit_bytes` it stops, removes what it wrote and records why: the Trainer then
    validates on the images.
    """

    def __init__(self, directory: str, feature_dim: int, config: dict[str, Any],
                 limit_bytes: int = LIMIT_BYTES) -> None:
        tf.io.gfile.makedirs(directory)
        self.directory = directory
        self.feature_dim = feature_dim
        self.config = config
        self.limit_bytes = limit_bytes
        self._shards = bottleneck.ShardWriter(directory, (feature_dim + 1) * 4)
        self._keys: list[np.ndarray] = []
        self._dropped = ""

    def add(self, features: np.ndarray, labels: np.ndarray, keys: np.ndarray) -> None:
        """One batch: float32 features [N, D], labels [N], pixel digests [N]."""
        if self._dropped:
            return
        if (self._shards.records + len(features)) * (self.feature_dim + 1) * 4 > self.limit_bytes:
            self.drop(f"the eval split's features would take more than {self.limit_bytes} bytes")
            return
        column = np.asarray(labels, np.float32).reshape(-1, 1)
        self._shards.write(np.concatenate([np.asarray(features, np.float32), column], axis=1))
        self._keys.append(np.asarray(keys, np.uint64))

    def drop(self, reason: str) -> None:
        """Keeps nothing (removes what was written); `finish` records `reason`."""
        self._shards.close()
        for path in self._shards.shards:
            tf.io.gfile.remove(path)
        self._keys = []
        self._dropped = reason

    def finish(self) -> dict[str, Any]:
        """Closes the shards, writes the keys and the manifest; returns the manifest."""
        self._shards.close()
        manifest: dict[str, Any] = {"config": self.config, "written": not self._dropped,
                                    "reason": self._dropped}
        if not self._dropped:
            with tf.io.gfile.GFile(os.path.join(self.directory, KEYS_FILE), "wb") as f:
                f.write(np.concatenate(self._keys or [np.zeros(0, np.uint64)]).tobytes())
            manifest.update(
                feature_dim=self.feature_dim, records=self._shards.records,
                shards=[os.path.basename(p) for p in self._shards.shards],
                dtype="float32",
                layout="records of feature_dim features then the label")
        with tf.io.gfile.GFile(os.path.join(self.directory, bottleneck.MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
        return manifest


@dataclasses.dataclass(frozen=True)
class Stored:
    """Features a `Writer` wrote: the cache to read, its pixel digests, the config it had."""

    cache: bottleneck.CacheInfo
    keys: np.ndarray
    config: dict[str, Any]


def load(directory: str) -> tuple[Stored | None, str]:
    """What a `Writer` wrote in `directory`, or None and why not."""
    path = os.path.join(directory, bottleneck.MANIFEST)
    if not tf.io.gfile.exists(path):
        return None, f"no features in {directory}"
    with tf.io.gfile.GFile(path) as f:
        manifest = json.load(f)
    if not manifest.get("written"):
        return None, f"the data audit kept no features: {manifest.get('reason')}"
    with tf.io.gfile.GFile(os.path.join(directory, KEYS_FILE), "rb") as f:
        keys = np.frombuffer(f.read(), np.uint64)
    cache = bottleneck.CacheInfo(
        directory, int(manifest["feature_dim"]), int(manifest["records"]),
        tuple(os.path.join(directory, name) for name in manifest["shards"]), 0, 0.0)
    return Stored(cache, keys, manifest["config"]), ""


def _pairs(keys: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    return sorted(zip(keys.tolist(), labels.tolist(), strict=True))


def check(stored: Stored, hp: HParams, model: tf.keras.Model, eval_files: list[str] | str
          ) -> tuple[str, float | None]:
    """Why `stored` is not what `model` would compute on `eval_files` ('' when it is), and the
    largest relative difference of the features it compared.

    The same settings; the same images with the same labels (every eval record's pixel digest
    and label, one decoding pass); and the model's own features of the first CHECK_IMAGES
    images equal to the stored ones, within TOLERANCE of the largest.
    """
    if stored.config != features_config(hp):
        return f"they were made with other settings ({stored.config}, the Trainer's "\
               f"{features_config(hp)})", None
    keys, labels, first = [], [], None
    for images, batch_labels in data.make_dataset(eval_files, hp.image_size, CHECK_IMAGES,
                                                  shuffle=False):
        first = images.numpy() if first is None else first
        keys.append(pixel_keys(images.numpy()))
        labels.append(batch_labels.numpy())
    other = (f"they are of other images or labels ({stored.cache.records} records, the "
             f"Trainer's {sum(len(k) for k in keys)})")
    if first is None or len(stored.keys) != stored.cache.records:
        return other, None
    rows = {int(key): row for row, key in enumerate(stored.keys)}
    # A key not stored reads row 0 here, and fails the comparison of the pairs below.
    stored_labels, theirs = _read(stored.cache, [rows.get(int(key), 0) for key in keys[0]])
    if _pairs(stored.keys, stored_labels) != _pairs(np.concatenate(keys), np.concatenate(labels)):
        return other, None
    ours = bottleneck.feature_model(model)(first, training=False).numpy().astype(np.float32)
    scale = max(float(np.abs(ours).max()), 1e-12)
    difference = float(np.abs(ours - theirs).max()) / scale
    if difference > TOLERANCE:
        return f"they are not the Trainer's own (they differ by {difference:.2g} of the largest " \
               f"feature on {len(first)} eval images)", difference
    return "", difference


def _read(cache: bottleneck.CacheInfo, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the shards: every record's label, and the features of the records at
    `rows`."""
    rows = np.asarray(rows)
    labels = np.empty(cache.records, np.int64)
    out = np.empty((len(rows), cache.feature_dim), np.float32)
    start = 0
    for path in cache.shards:
        with tf.io.gfile.GFile(path, "rb") as f:
            shard = np.frombuffer(f.read(), np.float32).reshape(-1, cache.feature_dim + 1)
        labels[start:start + len(shard)] = shard[:, -1]
        inside = (rows >= start) & (rows < start + len(shard))
        out[inside] = shard[rows[inside] - start, :-1]
        start += len(shard)
    return labels, out


def use(directory: str | None, hp: HParams, model: tf.keras.Model,
        eval_files: list[str] | str, plan: devices.DevicePlan
        ) -> tuple[bottleneck.CacheInfo | None, dict[str, Any]]:
    """The eval features to validate the head on, if `directory` holds the model's own, and the
    record of the choice for `history.json`."""
    if not directory:
        return None, {"on": VALIDATED_ON_IMAGES, "reason": "no data audit before the Trainer",
                      "given": False}
    if plan.precision_policy != "float32":
        return None, {"on": VALIDATED_ON_IMAGES, "given": True,
                      "reason": f"the Trainer computes in {plan.precision_policy}, the data "
                                "audit's features are float32"}
    stored, reason = load(directory)
    difference = None
    if stored is not None:
        reason, difference = check(stored, hp, model, eval_files)
    if reason:
        log = logging.info if stored is None else logging.warning
        log("validating on the eval images, not the data audit's features: %s", reason)
        return None, {"on": VALIDATED_ON_IMAGES, "reason": reason, "given": True,
                      "largest_difference": difference}
    logging.info("validating the head on %s (%d records; largest difference %.2g)",
                 VALIDATED_ON_FEATURES, stored.cache.records, difference)
    return stored.cache, {"on": VALIDATED_ON_FEATURES, "given": True,
                          "records": stored.cache.records,
                          "largest_difference": difference}


class HeadValidation(tf.keras.callbacks.Callback):
    """Puts `val_loss` and `val_accuracy` of the head on stored eval features into each epoch's
    logs, as `fit(validation_data=...)` would on the images. Listed before the callbacks that
    read them (early stopping, TensorBoard, progress); `History` comes last in Keras."""

    def __init__(self, model: tf.keras.Model, hp: HParams, cache: bottleneck.CacheInfo,
                 compilation: devices.Compilation = devices.NO_XLA) -> None:
        super().__init__()
        self._head = bottleneck.head_model(model)  # shares the model's head layers
        model_lib.compile_model(self._head, hp.num_classes, hp.learning_rate, compilation)
        self._features = bottleneck.read_cache(cache, hp.batch_size, shuffle=False)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        results = self._head.evaluate(self._features, verbose=0, return_dict=True)
        logs.update({f"val_{name}": float(value) for name, value in results.items()})
