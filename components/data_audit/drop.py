"""The eval split without the images the audit found copied from train.

An eval image with a copy in train is answered from memory, so it overstates accuracy; with
`--drop-leaked-eval` the Evaluator reads this copy of the eval split instead of the
ExampleGen's, and the gate judges the model on images it never saw.
"""

from __future__ import annotations

import posixpath

import tensorflow as tf

from trainer.contract import FILENAME

OUTPUT_FILE = "data_tfrecord-00000-of-00001.gz"  # gzipped, as the ExampleGen writes


def keep_unleaked(split_dir: str, output_dir: str, leaked: set[str]) -> tuple[int, int]:
    """Copies the split's records whose filename is not in `leaked`; (kept, dropped)."""
    files = sorted(tf.io.gfile.glob(posixpath.join(split_dir, "*.gz")))
    tf.io.gfile.makedirs(output_dir)
    kept = dropped = 0
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(posixpath.join(output_dir, OUTPUT_FILE), options) as writer:
        for record in (tf.data.TFRecordDataset(files, compression_type="GZIP") if files else []):
            serialized = record.numpy()
            name = tf.train.Example.FromString(serialized).features.feature[
                FILENAME].bytes_list.value[0].decode("utf-8")
            if name in leaked:
                dropped += 1
            else:
                writer.write(serialized)
                kept += 1
    return kept, dropped
