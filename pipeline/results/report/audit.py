"""The report's data audit section: each leaked eval image beside its train copy, duplicate
groups side by side, and the top suspected mislabels with their given and suggested class.

The thumbnails are read back from the ExampleGen's examples by file name, in one pass over its
splits, only for the findings shown.
"""

from __future__ import annotations

import dataclasses
import io
import json
import posixpath
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from pipeline.results.report.collect import Tile
from trainer import contract

MAX_PAIRS = 12  # leaks and duplicate groups shown
MAX_SUSPECTS = 24  # suspected mislabels shown
THUMBNAIL = 96


@dataclasses.dataclass(frozen=True)
class AuditGallery:
    """What the section shows: the findings, and thumbnails of those shown."""

    findings: dict[str, Any]  # audit.json
    path: str  # where audit.json is
    leaks: list[Tile]  # pairs: the eval image, its train copy
    duplicates: list[Tile]  # pairs: two files of each group
    mislabels: list[Tile]


def _thumbnail(image_bytes: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            rgb = image.convert("RGB")
            rgb.thumbnail((THUMBNAIL, THUMBNAIL))
            return np.asarray(rgb)
    except OSError:  # the ExampleGen lets through what TensorFlow decodes; shown blank if not
        return np.zeros((THUMBNAIL, THUMBNAIL, 3), np.uint8)


def read_thumbnails(split_dirs: Sequence[str], filenames: set[str]) -> dict[str, np.ndarray]:
    """Thumbnails of the examples named `filenames`, found in the splits' gzipped TFRecords."""
    import tensorflow as tf

    found: dict[str, np.ndarray] = {}
    files = sorted(f for d in split_dirs for f in tf.io.gfile.glob(posixpath.join(d, "*.gz")))
    if not files or not filenames:
        return found
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        name = feature[contract.FILENAME].bytes_list.value[0].decode("utf-8")
        if name in filenames:
            found[name] = _thumbnail(feature[contract.IMAGE_BYTES].bytes_list.value[0])
            if len(found) == len(filenames):
                break
    return found


def read_gallery(findings_path: str, split_dirs: Sequence[str]) -> AuditGallery:
    """`audit.json` at `findings_path` and thumbnails of the findings shown."""
    with open(findings_path, encoding="utf-8") as handle:
        findings = json.load(handle)
    leaks = findings["leaks"][:MAX_PAIRS]
    groups = findings["duplicates"][:MAX_PAIRS]
    suspects = findings["suspected_mislabels"][:MAX_SUSPECTS]
    wanted = ({leak["eval_file"] for leak in leaks} | {leak["train_file"] for leak in leaks}
              | {f for group in groups for f in group["files"][:2]}
              | {s["file"] for s in suspects})
    images = read_thumbnails(split_dirs, wanted)
    blank = np.zeros((THUMBNAIL, THUMBNAIL, 3), np.uint8)

    def tile(name: str, caption: str) -> Tile:
        return Tile(images.get(name, blank), caption)

    return AuditGallery(
        findings=findings, path=findings_path,
        leaks=[t for leak in leaks for t in (
            tile(leak["eval_file"], f"eval: {leak['eval_file']}"),
            tile(leak["train_file"], f"train: {leak['train_file']} ({leak['similarity']:.2f})"))],
        duplicates=[t for group in groups for t in (
            tile(group["files"][0], f"{group['kind']}: {group['files'][0]}"),
            tile(group["files"][1], f"{group['files'][1]} ({group['similarity']:.2f}"
                 + (f", +{len(group['files']) - 2} more)" if len(group["files"]) > 2 else ")")))],
        mislabels=[tile(s["file"], f"{s['file']}\n{s['given']} -> {s['suggested']} "
                                   f"({s['score']:.2f})") for s in suspects])


def describe(gallery: AuditGallery) -> list[str]:
    """The section's sentences, before its pictures."""
    findings = gallery.findings
    counts = findings["images"]
    out = [f"Audited {counts['train']} train and {counts['eval']} eval images "
           f"(all findings: {gallery.path})."]
    if not (findings["duplicates"] or findings["leaks"] or findings["suspected_mislabels"]):
        out.append("No duplicates, no eval image with a copy in train, no suspected mislabel.")
    check = findings.get("mislabel_check", {})
    if check and not check.get("judged"):
        out.append(f"Labels not judged: {check.get('why', '')}"
                   + (f" (out-of-fold accuracy {check['out_of_fold_accuracy']:.2f}, always the "
                      f"largest class {check['chance_accuracy']:.2f})"
                      if "out_of_fold_accuracy" in check else "") + ".")
    return out
