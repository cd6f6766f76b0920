"""DataAudit's executor: artifact bookkeeping around `records` and `audit`."""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from typing import Any

from tfx import types
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import executor as executor_base
from components.data_audit import drop, properties, records
from components.data_audit.audit import EVAL, TRAIN, run_audit
from components.exec_properties import int_property
from components.executor import Artifacts
from trainer.contract import DEFAULT_MAX_PIXELS, EMBED_FN

EXAMPLES_KEY = "examples"
FINDINGS_KEY = "findings"
EVAL_FEATURES_KEY = "eval_features"  # the head's features of the eval split, for the Trainer
BASE_KEY = "base"  # JSON: the hyperparameters that decide the features (`base_config`)
EMBED_FN_KEY = "embed_fn"
MAX_PIXELS_KEY = "max_pixels"
AUDIT_FILE = "audit.json"
EVAL_EXAMPLES_KEY = "eval_examples"  # DropLeakedEval's output: the eval split, leaks dropped
EVAL_SPLIT = "eval"
# What TFX records about an Examples artifact's files, copied to the filtered one.
EXAMPLES_FORMAT_PROPERTIES = ("payload_format", "file_format")
# The hyperparameters that decide the features: a change of epochs or learning rate keeps the
# audit cached, a change of base, weights, cut layer, image size or convention re-runs it.
BASE_FIELDS = ("class_names", "image_size", "base", "weights", "weights_sha256", "cut_layer",
               "pooling", "input_scaling", "input_scaling_source")

_LOG = logging.getLogger(__name__)


def base_config(hparams_config: dict[str, Any]) -> dict[str, Any]:
    """The part of `HParams.to_config()` the audit's features depend on."""
    return {key: hparams_config[key] for key in BASE_FIELDS if key in hparams_config}


def load_function(name: str) -> Any:
    """`package.module.function` imported by name, as TFX imports a module file's `run_fn`."""
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def record(findings: types.Artifact, report: dict[str, Any], unhashed: int) -> None:
    """`audit.json` in the artifact's folder, and its counts as custom properties."""
    io_utils.write_string_file(os.path.join(findings.uri, AUDIT_FILE),
                               json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    counts = {
        properties.DUPLICATE_GROUPS: len(report["duplicates"]),
        properties.LEAKED_EVAL_IMAGES: len(report["leaks"]),
        properties.EVAL_IMAGES: report["images"][EVAL],
        properties.TRAIN_IMAGES: report["images"][TRAIN],
        properties.SUSPECTED_MISLABELS: len(report["suspected_mislabels"]),
        properties.UNHASHED_IMAGES: unhashed,
    }
    for key, value in counts.items():
        findings.set_int_custom_property(key, value)


class Executor(executor_base.Executor):
    """Embeds every image once with the frozen base, audits them, records the findings; keeps
    the eval split's features for the Trainer's validation (`trainer.eval_features`)."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Reads the train and eval splits, writes `audit.json` and the counts."""
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        findings = artifact_utils.get_single_instance(output_dict[FINDINGS_KEY])
        features = output_dict.get(EVAL_FEATURES_KEY)
        config = json.loads(exec_properties[BASE_KEY])
        embed = load_function(exec_properties.get(EMBED_FN_KEY) or EMBED_FN)(
            config, int_property(exec_properties, MAX_PIXELS_KEY, DEFAULT_MAX_PIXELS),
            artifact_utils.get_single_uri(features) if features else None)
        start = time.perf_counter()
        parts, unhashed = [], 0
        for split in artifact_utils.decode_split_names(examples.split_names):
            if split not in (TRAIN, EVAL):
                continue
            part, missed = records.read_split(
                artifact_utils.get_split_uri([examples], split), split, embed)
            parts.append(part)
            unhashed += missed
        images = records.concatenate(parts)
        kept = embed.finish()
        if kept and not kept["written"]:
            _LOG.info("data audit: no eval features for the Trainer (%s)", kept["reason"])
        embedded = time.perf_counter() - start
        report = run_audit(images, config["class_names"])
        record(findings, report, unhashed)
        _LOG.info("data audit of %d images (embedded in %.1f s, audited in %.1f s): %d duplicate "
                  "group(s), %d leaked eval image(s), %d suspected mislabel(s)",
                  len(images.files), embedded, time.perf_counter() - start - embedded,
                  len(report["duplicates"]), len(report["leaks"]),
                  len(report["suspected_mislabels"]))
        if unhashed:
            _LOG.warning("data audit: %d image(s) Pillow cannot read can only be found as "
                         "exact copies", unhashed)


class DropLeakedEvalExecutor(executor_base.Executor):
    """Writes the eval split without the eval images DataAudit found copied from train."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Reads audit.json's leaks; the output holds the eval split only."""
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        findings = artifact_utils.get_single_instance(input_dict[FINDINGS_KEY])
        output = artifact_utils.get_single_instance(output_dict[EVAL_EXAMPLES_KEY])
        report = json.loads(io_utils.read_string_file(os.path.join(findings.uri, AUDIT_FILE)))
        leaked = {leak["eval_file"] for leak in report["leaks"]}
        kept, dropped = drop.keep_unleaked(
            artifact_utils.get_split_uri([examples], EVAL_SPLIT),
            os.path.join(output.uri, f"Split-{EVAL_SPLIT}"), leaked)
        output.split_names = artifact_utils.encode_split_names([EVAL_SPLIT])
        for key in EXAMPLES_FORMAT_PROPERTIES:
            if examples.has_custom_property(key):
                output.set_string_custom_property(key, examples.get_string_custom_property(key))
        output.set_int_custom_property(properties.DROPPED_EVAL_IMAGES, dropped)
        _LOG.info("evaluation on %d eval images; %d with a copy in train dropped", kept, dropped)
