"""Data and graphs the benchmarks share: generated images, Transform's graph, transformed examples.

Imported as `benchmarks.fixtures`; the package (`benchmarks/__init__.py`) has already set
TF_USE_LEGACY_KERAS by then.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from trainer.contract import IMAGE_BYTES, IMAGE_SIZE_KEY, LABEL, TRANSFORMED_IMAGE
from trainer.transform import preprocessing_fn

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def build_transform_graph(work: Path, image_size: int) -> Path:
    """Transform's graph of `preprocessing_fn` at `image_size`, as the Transform component writes
    it (with the raw schema `raw_feature_spec()` reads); returns the `transform_graph` folder."""
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform import TFTransformOutput
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    raw_spec = {IMAGE_BYTES: tf.io.FixedLenFeature([1], tf.string),
                LABEL: tf.io.FixedLenFeature([1], tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    fn = functools.partial(preprocessing_fn, custom_config={IMAGE_SIZE_KEY: image_size})
    graph = work / "transform_graph"
    with tft_beam.Context(temp_dir=str(work / "tmp"), force_tf_compat_v1=False):
        transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(graph))
    metadata_io.write_metadata(metadata, str(graph / TFTransformOutput.RAW_METADATA_DIR))
    return graph


def write_images(root: Path, class_names: Sequence[str], per_class: int, size: int,
                 seed: int) -> Path:
    """`imgpipe sample-data`'s images under `root/<class>/` (kept when already complete)."""
    from pipeline.local.sample_data import write_sample_data

    done = root / ".complete"
    if not done.exists():
        write_sample_data(root, tuple(class_names), per_class, size, seed)
        done.write_text(f"{per_class} per class, {size} px, seed {seed}\n")
    return root


def image_files(root: Path, class_names: Sequence[str]) -> tuple[list[str], list[int]]:
    """The image paths under `root/<class>/` and their labels (index into `class_names`)."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(path))
                labels.append(label)
    return paths, labels


def write_transformed_examples(paths: Sequence[str], labels: Sequence[int], output: Path,
                               image_size: int, batch: int = 64) -> Path:
    """What ExampleGen then Transform write for these images: gzipped TFRecords of tf.Examples
    with `preprocessing_fn`'s outputs (resized PNG bytes, label), made by calling that same
    function on the raw bytes (it has no analyzers, so no Beam pass is needed)."""
    if output.exists():
        return output
    partial = output.with_suffix(".partial")
    config = {IMAGE_SIZE_KEY: image_size}
    with tf.io.TFRecordWriter(str(partial), options="GZIP") as writer:
        for start in range(0, len(paths), batch):
            raw = [Path(p).read_bytes() for p in paths[start:start + batch]]
            label = np.asarray(labels[start:start + batch], np.int64)
            out = preprocessing_fn({IMAGE_BYTES: tf.constant(raw)[:, None],
                                    LABEL: tf.constant(label)[:, None]}, config)
            for png, y in zip(out[TRANSFORMED_IMAGE].numpy(), out[LABEL].numpy(),
                              strict=True):
                example = tf.train.Example(features=tf.train.Features(feature={
                    TRANSFORMED_IMAGE: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[png])),
                    LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y)]))}))
                writer.write(example.SerializeToString())
    os.replace(partial, output)
    return output
