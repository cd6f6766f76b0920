"""The serving Pusher's executor: artifact bookkeeping around `publish` and `warmup`."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.util import model_utils
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import executor as executor_base
from components.data_validation import properties as verdict_properties
from components.exec_properties import int_property
from components.executor import Artifacts
from components.serving_pusher import properties, publish, warmup
from components.tflite_export import convert as tflite_convert
from components.tflite_export import properties as tflite_properties

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
EXAMPLES_KEY = "examples"
INFRA_BLESSING_KEY = "infra_blessing"
DATA_VERDICT_KEY = "data_verdict"
TFLITE_MODELS_KEY = "tflite_models"
PUSHED_MODEL_KEY = "pushed_model"
SERVING_MODEL_DIR_KEY = "serving_model_dir"
MODEL_NAME_KEY = "model_name"
KEEP_VERSIONS_KEY = "keep_versions"
WARMUP_REQUESTS_KEY = "warmup_requests"
DEFAULT_KEEP_VERSIONS = 5
DEFAULT_WARMUP_REQUESTS = 8
WARMUP_SPLIT = "eval"  # images the model was not trained on, as real traffic is


_LOG = logging.getLogger(__name__)


def _refusal(blessing: types.Artifact, infra_blessings: list[types.Artifact] | None,
             data_verdicts: list[types.Artifact] | None = None) -> str:
    """Why the model must not be pushed ('' if it may): a blessing or verdict that says no."""
    if data_verdicts:
        verdict = artifact_utils.get_single_instance(data_verdicts)
        if not verdict.get_int_custom_property(verdict_properties.PASSED):
            problems = json.loads(
                verdict.get_string_custom_property(verdict_properties.PROBLEMS) or "[]")
            return (f"the data has {len(problems)} problem(s): " + "; ".join(problems)
                    if problems else f"data verdict {verdict.uri} did not pass")
    if not model_utils.is_model_blessed(blessing):
        return f"model blessing {blessing.uri} is not blessed"
    if infra_blessings:
        infra_blessing = artifact_utils.get_single_instance(infra_blessings)
        if not model_utils.is_infra_validated(infra_blessing):
            reason = infra_blessing.get_string_custom_property("reason")
            return f"infra blessing {infra_blessing.uri} is not blessed ({reason or 'no reason'})"
    return ""


def copy_tflite(tflite_models: list[types.Artifact] | None, model_copy: str) -> dict[str, str]:
    """Copies the accepted TFLite models (and their JSON, labels) into the model's copy;
    {format: path inside the version}."""
    if not tflite_models:
        return {}
    artifact = artifact_utils.get_single_instance(tflite_models)
    accepted = json.loads(artifact.get_string_custom_property(tflite_properties.ACCEPTED) or "[]")
    names = [name for fmt in accepted for name in (tflite_convert.model_file(fmt),
                                                   tflite_convert.metadata_file(fmt))]
    for name in [*names, tflite_convert.LABELS_FILE] if accepted else []:
        target = os.path.join(model_copy, tflite_convert.PUSH_SUBDIR, name)
        tf.io.gfile.makedirs(os.path.dirname(target))
        publish.copy_file(os.path.join(artifact.uri, name), target)
    return {fmt: f"{tflite_convert.PUSH_SUBDIR}/{tflite_convert.model_file(fmt)}"
            for fmt in accepted}


class Executor(executor_base.Executor):
    """Pushes a blessed model as the next version of a TF Serving base path, with warmup."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Publishes the model if blessed (and infra-blessed, when given) as TFX's Pusher does."""
        pushed_model = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[MODEL_BLESSING_KEY])
        refusal = _refusal(blessing, input_dict.get(INFRA_BLESSING_KEY),
                           input_dict.get(DATA_VERDICT_KEY))
        if refusal:
            _LOG.info("%s: nothing pushed", refusal)
            # What TFX's Pusher records for an unblessed model ('pushed' 0), and why.
            pushed_model.set_int_custom_property(properties.PUSHED, 0)
            pushed_model.set_string_custom_property(properties.NOT_PUSHED_BECAUSE, refusal)
            return

        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        model_dir = path_utils.serving_model_path(
            model.uri, path_utils.is_old_model_artifact(model))
        base_dir = exec_properties[SERVING_MODEL_DIR_KEY]
        model_name = exec_properties[MODEL_NAME_KEY]
        keep_versions = int_property(exec_properties, KEEP_VERSIONS_KEY, DEFAULT_KEEP_VERSIONS)
        warmup_requests = int_property(
            exec_properties, WARMUP_REQUESTS_KEY, DEFAULT_WARMUP_REQUESTS)
        warmup.check_count(warmup_requests)

        # Read before touching the serving directory, so a bad input changes nothing there.
        images: list[bytes] = []
        if warmup_requests:
            if not input_dict.get(EXAMPLES_KEY):
                raise ValueError(f"warmup_requests={warmup_requests} needs the examples input")
            split_dir = artifact_utils.get_split_uri(input_dict[EXAMPLES_KEY], WARMUP_SPLIT)
            images = warmup.read_images(split_dir, warmup_requests)
            if not images:
                _LOG.warning("no examples in %s: the version has no warmup requests", split_dir)

        # The artifact's copy (TFX's Pusher keeps one too, and it outlives retention) is written
        # first and publication is the last step: a push that fails publishes nothing, and a
        # published version always belongs to a successful execution.
        publish.copy_tree(model_dir, pushed_model.uri)
        warmup.write_warmup_file(pushed_model.uri, images, model_name)
        tflite = copy_tflite(input_dict.get(TFLITE_MODELS_KEY), pushed_model.uri)
        published = publish.publish_version(
            base_dir, lambda staging: publish.copy_tree(pushed_model.uri, staging), keep_versions)
        _LOG.info("pushed %s as version %d (%d warmup requests); removed leftovers %s, "
                  "retired versions %s", model_dir, published.version, len(images),
                  list(published.removed_leftovers), list(published.retired_versions))
        pushed_model.set_int_custom_property(properties.PUSHED, 1)
        pushed_model.set_string_custom_property(properties.PUSHED_DESTINATION, published.path)
        pushed_model.set_string_custom_property(properties.PUSHED_VERSION, str(published.version))
        if tflite:
            pushed_model.set_string_custom_property(properties.PUSHED_TFLITE, json.dumps(tflite))
