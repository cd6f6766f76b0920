"""TFLite export: conversion time, file size and per-image latency against the SavedModel.

For each base at the default 150 px (the default head: one Dense layer of 1024 units), the model
is exported as the Trainer exports it (`trainer.export`, with a real Transform graph), then
converted by TFLiteExport's code (`components.tflite_export`) to float16 and int8 (calibrated
on 100 images), and each model classifies 50 sample-data images one per call, as the pipeline
measures them. The weights are random (`none`): sizes and times are those of the real
architecture, while accuracy is meaningless and not reported; the largest probability gap and
the agreement with the SavedModel are.

Usage: `.venv/bin/python -m benchmarks.tflite --output benchmarks/results [--bases
inception_v3,mobilenet_v2] [--image-size 150]`; results in `tflite.json` and `tflite.md`.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe, write_results

EVAL_IMAGES = 50
REPRESENTATIVE_IMAGES = 100


def _transform_graph(root: Path, image_size: int) -> Any:
    """Transform's output for `preprocessing_fn`, as the Transform component writes it."""
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform import TFTransformOutput
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from trainer.contract import IMAGE_BYTES, LABEL
    from trainer.transform import preprocessing_fn

    raw_spec = {IMAGE_BYTES: tf.io.FixedLenFeature([1], tf.string),
                LABEL: tf.io.FixedLenFeature([1], tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    fn = functools.partial(preprocessing_fn, custom_config={"image_size": image_size})
    with tft_beam.Context(temp_dir=str(root / "tmp"), force_tf_compat_v1=False):
        transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform_graph"))
    metadata_io.write_metadata(
        metadata, str(root / "transform_graph" / TFTransformOutput.RAW_METADATA_DIR))
    return TFTransformOutput(str(root / "transform_graph"))


def _images(root: Path, image_size: int) -> Any:
    """Sample-data images, decoded and resized as Transform does: uint8 [N, S, S, 3]."""
    import numpy as np
    import tensorflow as tf

    from pipeline.local.sample_data import write_sample_data
    from trainer.transform import decode_and_resize

    write_sample_data(root / "data", ("circle", "square", "triangle"),
                      (EVAL_IMAGES + REPRESENTATIVE_IMAGES) // 3 + 1, 200, seed=1)
    files = sorted(p for p in (root / "data").rglob("*") if p.is_file())
    return np.stack([decode_and_resize(tf.constant(p.read_bytes()), image_size).numpy()
                     for p in files])


def measure_base(base: str, image_size: int) -> dict[str, Any]:
    """One base: the SavedModel and each TFLite format's size, conversion time, latency."""
    import numpy as np

    from components.tflite_export import convert, evaluate
    from components.tflite_export.executor import tree_size
    from trainer import export
    from trainer import model as model_lib
    from trainer.augment import AugmentConfig
    from trainer.hparams import HParams

    with tempfile.TemporaryDirectory(prefix="bench-tflite-") as tmp:
        root = Path(tmp)
        hp = HParams(class_names=("circle", "square", "triangle"), image_size=image_size,
                     base=base, weights="none", augment=AugmentConfig.off())
        start = time.monotonic()
        export.export(model_lib.build_model(hp), _transform_graph(root, image_size),
                      hp.class_names, image_size, str(root / "model"), hparams=hp)
        export_seconds = time.monotonic() - start
        images = _images(root, image_size)
        eval_images, train_images = images[:EVAL_IMAGES], images[EVAL_IMAGES:]
        labels = np.zeros(len(eval_images), np.int64)  # accuracy is not reported
        classifier = convert.Classifier(str(root / "model"))
        reference = evaluate.measure(classifier.probabilities,
                                     zip(eval_images, labels, strict=True))
        result: dict[str, Any] = {
            "export_seconds": round(export_seconds, 1),
            "saved_model": {"size_bytes": tree_size(str(root / "model" / "variables"))
                            + os.path.getsize(root / "model" / "saved_model.pb"),
                            "latency_ms": round(reference.latency_ms, 2)}}
        for fmt in convert.FORMATS:
            start = time.monotonic()
            content = classifier.convert(fmt, train_images[:REPRESENTATIVE_IMAGES])
            seconds = time.monotonic() - start
            measured = evaluate.measure(
                evaluate.TFLiteClassifier(model_content=content).probabilities,
                zip(eval_images, labels, strict=True))
            result[fmt] = {"size_bytes": len(content), "conversion_seconds": round(seconds, 1),
                           "latency_ms": round(measured.latency_ms, 2),
                           "max_probability_gap": round(
                               evaluate.prediction_gap(measured, reference), 5),
                           "agreement": round(evaluate.agreement(measured, reference), 3)}
        return result


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table per base."""
    lines = [f"# TFLite export ({result['date']})", "",
             f"Machine: {result['machine']['cpu_model']}, {result['machine']['cores_usable']} "
             f"usable cores, load average {result['load_average']}; {result['image_size']} px, "
             f"{EVAL_IMAGES} images one per call, int8 calibrated on {REPRESENTATIVE_IMAGES}.",
             ""]
    for base, figures in result["bases"].items():
        lines += [f"## {base} (export {figures['export_seconds']} s)", "",
                  "| model | size (MB) | conversion (s) | median latency (ms) | largest "
                  "probability gap | agreement |", "| --- | --- | --- | --- | --- | --- |",
                  f"| SavedModel | {figures['saved_model']['size_bytes'] / 1e6:.1f} | - | "
                  f"{figures['saved_model']['latency_ms']} | - | - |"]
        for fmt in ("float16", "int8"):
            f = figures[fmt]
            lines.append(f"| TFLite {fmt} | {f['size_bytes'] / 1e6:.1f} | "
                         f"{f['conversion_seconds']} | {f['latency_ms']} | "
                         f"{f['max_probability_gap']} | {f['agreement']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--bases", default="inception_v3,mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=150)
    args = parser.parse_args()
    import tensorflow as tf

    result = {"date": datetime.date.today().isoformat(),
              "machine": describe(tensorflow=tf.__version__),
              "load_average": round(os.getloadavg()[0], 2), "image_size": args.image_size,
              "bases": {base: measure_base(base, args.image_size)
                        for base in args.bases.split(",")}}
    write_results(args.output, "tflite", result, markdown(result))


if __name__ == "__main__":
    main()
