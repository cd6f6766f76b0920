"""The load check's executor: artifact bookkeeping around `probe`."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from tfx import types
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components import executor as executor_base
from components import stop
from components.exec_properties import int_property
from components.executor import Artifacts
from components.load_check import probe, properties

MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
BLESSING_KEY = "blessing"
NUM_IMAGES_KEY = "num_images"
TIMEOUT_SECONDS_KEY = "timeout_seconds"
DEFAULT_NUM_IMAGES = 8
DEFAULT_TIMEOUT_SECONDS = probe.DEFAULT_TIMEOUT_SECONDS
IMAGES_SPLIT = "eval"  # images the model was not trained on, as real traffic is

# What TFX's InfraValidator writes, so TFX's Pusher and model_utils.is_infra_validated agree.
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
# The probe's output.
LOG_FILE = "probe_log.txt"

_LOG = logging.getLogger(__name__)


def check_parameters(num_images: int, timeout_seconds: int) -> None:
    """Raises ValueError unless num_images >= 1 and timeout_seconds >= 1."""
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if timeout_seconds < 1:
        raise ValueError(f"timeout_seconds must be >= 1, got {timeout_seconds}")


def mark(blessing: types.Artifact, reason: str) -> None:
    """Records the verdict as InfraValidator does (file and 'blessed'), and our 'reason'."""
    blessed = not reason
    io_utils.write_string_file(
        os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
    blessing.set_int_custom_property(properties.BLESSED, int(blessed))
    blessing.set_string_custom_property(properties.REASON, reason)


class Executor(executor_base.Executor):
    """Blesses a model that loads and serves real eval images in a fresh Python process."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Runs the probe on the model and records an InfraBlessing with the verdict."""
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        model_dir = path_utils.serving_model_path(
            model.uri, path_utils.is_old_model_artifact(model))
        num_images = int_property(exec_properties, NUM_IMAGES_KEY, DEFAULT_NUM_IMAGES)
        timeout_seconds = int_property(
            exec_properties, TIMEOUT_SECONDS_KEY, DEFAULT_TIMEOUT_SECONDS)
        check_parameters(num_images, timeout_seconds)
        split_dir = artifact_utils.get_split_uri(input_dict[EXAMPLES_KEY], IMAGES_SPLIT)
        images = probe.read_images(split_dir, num_images)
        if not images:
            reason = f"no images in {split_dir} to call the model with"
            io_utils.write_string_file(os.path.join(blessing.uri, LOG_FILE), reason + "\n")
        else:
            with tempfile.TemporaryDirectory(prefix="load-check-") as tmp:
                images_path = os.path.join(tmp, "images.tfrecord")
                probe.write_images(images_path, images)
                result = probe.run_probe(model_dir, images_path, timeout_seconds)
            stop.raise_if_requested()  # the probe ran to its end, but the run was stopped
            io_utils.write_string_file(os.path.join(blessing.uri, LOG_FILE), result.log)
            reason = result.reason
        mark(blessing, reason)
        if reason:
            _LOG.warning("model %s failed the load check: %s (log: %s)", model_dir, reason,
                         os.path.join(blessing.uri, LOG_FILE))
        else:
            _LOG.info("model %s loaded and served %d images in a fresh process", model_dir,
                      len(images))
