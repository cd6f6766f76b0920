"""A real Transform graph for tests of the export, built with tf.Transform's Beam API."""

import functools

import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform import TFTransformOutput
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from trainer.transform import LABEL_KEY, RAW_IMAGE_KEY, preprocessing_fn

IMAGE_SIZE = 75


@pytest.fixture(scope="session")
def transform_output(tmp_path_factory) -> TFTransformOutput:
    """Transform's output for `preprocessing_fn` at 75 px, as the Transform component writes it."""
    out = tmp_path_factory.mktemp("transform")
    raw_spec = {
        RAW_IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
        LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    fn = functools.partial(preprocessing_fn, custom_config={"image_size": IMAGE_SIZE})
    with tft_beam.Context(temp_dir=str(out / "tmp"), force_tf_compat_v1=False):
        transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(out / "transform_graph"))
    # The Transform component also records the raw schema; `raw_feature_spec()` reads it.
    metadata_io.write_metadata(
        metadata, str(out / "transform_graph" / TFTransformOutput.RAW_METADATA_DIR)
    )
    return TFTransformOutput(str(out / "transform_graph"))
