"""The ExampleGen's examples read once, in batches, into the audit's arrays.

Each batch is hashed and embedded and then dropped, so only one batch of encoded images is in
memory at a time; what stays is a digest, a 64-bit hash and a feature vector per image.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from components.data_audit import hashing
from components.data_audit.audit import EVAL, AuditImages
from trainer.contract import FILENAME, IMAGE_BYTES, LABEL

BATCH = 256

Embed = Callable[..., np.ndarray]  # (encoded images[, their labels]) -> features [N, D]


def _feature(example: tf.train.Example, key: str) -> list:
    feature = example.features.feature[key]
    return list(feature.bytes_list.value or feature.int64_list.value)


def _fingerprints(image_bytes: bytes) -> tuple[np.ndarray, np.ndarray, bool]:
    """The perceptual hash and colour signature, or (when Pillow cannot read the image) 8 bytes
    of the SHA-256 and black, which in practice match nothing: such an image is found as an
    exact copy only."""
    try:
        return (*hashing.fingerprints(image_bytes), True)
    except ValueError:
        return (np.frombuffer(hashlib.sha256(image_bytes).digest()[:8], np.uint8),
                np.zeros(hashing.COLOUR_VALUES, np.uint8), False)


def read_split(split_dir: str, split: str, embed: Embed) -> tuple[AuditImages, int]:
    """One split's images (gzipped TFRecords in name order) and how many went unhashed."""
    files = sorted(tf.io.gfile.glob(posixpath.join(split_dir, "*.gz")))
    names, labels, digests, hashes, colours, features = [], [], [], [], [], []
    unhashed = 0
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(BATCH) if files \
        else []
    for batch in records:
        examples = [tf.train.Example.FromString(r) for r in batch.numpy()]
        images = []
        for example in examples:
            image, = _feature(example, IMAGE_BYTES)
            images.append(image)
            names.append(_feature(example, FILENAME)[0].decode("utf-8"))
            labels.append(int(_feature(example, LABEL)[0]))
            digests.append(hashing.byte_digest(image))
            value, colour, hashed = _fingerprints(image)
            hashes.append(value)
            colours.append(colour)
            unhashed += not hashed
        # The eval split's labels go with its images: the embedder keeps what the head reads.
        features.append(embed(images, labels[-len(images):]) if split == EVAL else embed(images))
    dim = features[0].shape[1] if features else 0
    return AuditImages(
        names, [split] * len(names), np.asarray(labels, np.int64), digests,
        np.concatenate(features) if features else np.zeros((0, dim), np.float32),
        np.stack(hashes) if hashes else np.zeros((0, hashing.HASH_BITS // 8), np.uint8),
        np.stack(colours) if colours else np.zeros((0, hashing.COLOUR_VALUES), np.uint8),
    ), unhashed


def concatenate(parts: Sequence[AuditImages]) -> AuditImages:
    """The splits' records as one set, in the order given."""
    parts = [p for p in parts if len(p.files)]
    if not parts:
        return AuditImages([], [], np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32),
                           np.zeros((0, hashing.HASH_BITS // 8), np.uint8),
                           np.zeros((0, hashing.COLOUR_VALUES), np.uint8))
    return AuditImages(
        [f for p in parts for f in p.files], [s for p in parts for s in p.splits],
        np.concatenate([p.labels for p in parts]), [d for p in parts for d in p.digests],
        np.concatenate([p.features for p in parts]), np.concatenate([p.hashes for p in parts]),
        np.concatenate([p.colours for p in parts]))
