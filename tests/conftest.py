"""Shared test set-up: Keras 2 is chosen before any test imports TensorFlow.

`transform_output` is a real Transform graph (tf.Transform's Beam API) for tests that export or
serve a model without running the pipeline.
"""

import functools
import os

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from tensorflow_transform import TFTransformOutput  # noqa: E402
from tensorflow_transform.tf_metadata import (  # noqa: E402
    dataset_metadata,
    metadata_io,
    schema_utils,
)

from trainer.transform import LABEL_KEY, RAW_IMAGE_KEY, preprocessing_fn  # noqa: E402

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
