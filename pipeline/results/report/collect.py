"""What the run report shows, read from ML Metadata, the run's artifacts and its model.

Everything lands in one plain `ReportData`; a section that cannot be filled (the run stopped
before training, a model exported without its hyperparameters, ...) gets a one-line reason in
`ReportData.missing` instead, so the page renders whatever the run got to.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import posixpath
from pathlib import Path
from typing import Any

import numpy as np

from components.image_example_gen import properties as examples_props
from pipeline.local.layout import OutputLayout
from pipeline.results.metadata import read_latest_run
from pipeline.results.summary import RunSummary, read_run_summary
from trainer import contract
from trainer.contract import HISTORY_FILE, SERVING_SIGNATURE, SERVING_SUBDIR

DATA = "Data"
AUDIT = "Data audit"
AUGMENTATION = "Augmentation preview"
CURVES = "Training curves"
EVALUATION = "Evaluation"
CONFUSION = "Confusion matrix and per-class accuracy"
MISCLASSIFIED = "Misclassified eval images"
GRADCAM = "Grad-CAM on the cut layer"
PUSH = "Push decision"
SECTION_TITLES = (DATA, AUDIT, AUGMENTATION, CURVES, EVALUATION, CONFUSION, MISCLASSIFIED,
                  GRADCAM, PUSH)

MAX_QUARANTINE_ROWS = 200
PREDICT_BATCH = 16
MAX_GRADCAM_IMAGES = 24  # Grad-CAM costs a forward and a backward pass through the base each
DISPLAY_SIZE = 128  # eval images' size in the report when the model's own is not known


@dataclasses.dataclass(frozen=True)
class Tile:
    """An image (uint8 [H, W, 3]) with its caption."""

    image: np.ndarray
    caption: str


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The served model's answers on the first eval images."""

    class_names: tuple[str, ...]
    labels: np.ndarray  # int [N], the true class index
    predicted: np.ndarray  # int [N]
    confidence: np.ndarray  # float [N], the probability of the predicted class
    filenames: tuple[str, ...]
    images: np.ndarray  # uint8 [N, S, S, 3], as the model's input
    eval_split_size: int | None  # examples in the whole eval split, when known

    @property
    def confusion(self) -> np.ndarray:
        """[C, C] counts, rows the true class, columns the predicted one."""
        size = len(self.class_names)
        matrix = np.zeros((size, size), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predicted), 1)
        return matrix

    @property
    def per_class_accuracy(self) -> dict[str, float | None]:
        """Accuracy on each true class among these images (None: no image of the class)."""
        result: dict[str, float | None] = {}
        for index, name in enumerate(self.class_names):
            mask = self.labels == index
            result[name] = float(np.mean(self.predicted[mask] == index)) if mask.any() else None
        return result


@dataclasses.dataclass
class ReportData:
    """Everything the report shows; sections without data have a reason in `missing`."""

    pipeline_name: str
    run_id: str
    created: str
    components: dict[str, str]
    summary: RunSummary | None = None
    class_names: tuple[str, ...] = ()
    quarantined: list[dict[str, str]] = dataclasses.field(default_factory=list)
    quarantine_report: str = ""
    history: dict[str, list[float]] | None = None
    augmentation: list[list[Tile]] | None = None  # rows: the image, then augmented copies
    predictions: Predictions | None = None
    gradcam: list[Tile] | None = None  # pairs: the eval image, its overlay
    audit: Any = None  # report.audit.AuditGallery, when the data audit ran
    missing: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Example:
    """One example of the image ExampleGen's output."""

    image_bytes: bytes
    label: int
    label_name: str
    filename: str


def read_examples(split_dir: str, limit: int, num_classes: int = 0,
                  scan_limit: int = 5000) -> list[Example]:
    """Up to `limit` examples of one split's gzipped TFRecords, files in name order.

    With `num_classes`, at most `limit // num_classes` (at least one) of each label are kept,
    reading at most `scan_limit` records, so a split stored class by class still shows each class.
    """
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(posixpath.join(split_dir, "*.gz")))
    if not files or limit <= 0:
        return []
    quota = max(1, limit // num_classes) if num_classes else limit
    kept: dict[int, int] = {}
    result = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(scan_limit):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        label = int(feature[contract.LABEL].int64_list.value[0])
        if kept.get(label, 0) >= quota:
            continue
        kept[label] = kept.get(label, 0) + 1
        result.append(Example(
            image_bytes=feature[contract.IMAGE_BYTES].bytes_list.value[0],
            label=label,
            label_name=feature[contract.LABEL_NAME].bytes_list.value[0].decode("utf-8"),
            filename=feature[contract.FILENAME].bytes_list.value[0].decode("utf-8")))
        if len(result) >= limit or (num_classes and len(kept) == num_classes
                                    and all(n >= quota for n in kept.values())):
            break
    return sorted(result, key=lambda e: e.label)


def run_artifacts(metadata_path: Path, pipeline_name: str) -> dict[str, dict[str, list]]:
    """The latest run's output artifacts, by component and output key (as the summary reads)."""
    return read_latest_run(metadata_path, pipeline_name).outputs


def _read_quarantine(path: str) -> list[dict[str, str]]:
    import tensorflow as tf

    if not path or not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _not_trained(components: dict[str, str]) -> str:
    state = components.get("Trainer")
    if state is None:
        return "the run did not get as far as the Trainer"
    return f"the Trainer's execution is {state} and left no model"


def _decode(image_bytes: list[bytes], size: int) -> np.ndarray:
    """Encoded images -> uint8 [N, size, size, 3], decoded and resized as Transform does."""
    import tensorflow as tf

    from trainer.transform import decode_and_resize

    return np.stack([decode_and_resize(tf.constant(b), size).numpy() for b in image_bytes])


def _load_keras_model(saved_model_dir: str, saved: Any) -> tuple[Any, Any]:
    """(HParams, the Keras model with the SavedModel's variables); ValueError when impossible."""
    from trainer.tools.inspect import build_for_inspection, read_exported_hparams

    hp = read_exported_hparams(saved_model_dir)
    model = build_for_inspection(hp)
    values = list(getattr(saved, "model_variables", []))
    if len(values) != len(model.variables) or any(
            v.shape != w.shape for v, w in zip(values, model.variables, strict=False)):
        raise ValueError(f"the variables in {saved_model_dir} do not match its hyperparameters")
    for target, value in zip(model.variables, values, strict=True):
        target.assign(value)
    return hp, model


def _predict(saved: Any, examples: list[Example], class_names: tuple[str, ...], size: int,
             eval_split_size: int | None) -> Predictions:
    import tensorflow as tf

    serve = saved.signatures[SERVING_SIGNATURE]
    probabilities = []
    for start in range(0, len(examples), PREDICT_BATCH):
        batch = [e.image_bytes for e in examples[start:start + PREDICT_BATCH]]
        probabilities.append(serve(image_bytes=tf.constant(batch))["probabilities"].numpy())
    probs = np.concatenate(probabilities)
    predicted = probs.argmax(axis=1)
    return Predictions(
        class_names=class_names,
        labels=np.array([e.label for e in examples], dtype=np.int64),
        predicted=predicted.astype(np.int64),
        confidence=probs[np.arange(len(probs)), predicted].astype(np.float32),
        filenames=tuple(e.filename for e in examples),
        images=_decode([e.image_bytes for e in examples], size),
        eval_split_size=eval_split_size)


def _augmentation_rows(model: Any, hp: Any, examples: list[Example],
                       variants: int) -> list[list[Tile]]:
    """Each training image, then `variants` passes through the model's augmentation layers."""
    images = _decode([e.image_bytes for e in examples], hp.image_size)
    rescale = model.get_layer("base_preprocess")
    augmentation = model.get_layer("augmentation")
    scaled = rescale(images)
    copies = []
    for _ in range(variants):
        augmented = augmentation(scaled, training=True).numpy()
        # Back to pixels, to show what the base received in training.
        pixels = rescale.invert(augmented)
        copies.append(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return [[Tile(images[i], e.label_name)]
            + [Tile(copy[i], f"augmented {k + 1}") for k, copy in enumerate(copies)]
            for i, e in enumerate(examples)]


def _gradcam_tiles(model: Any, predictions: Predictions, per_class: int) -> list[Tile]:
    from trainer.tools.gradcam import gradcam, overlay

    chosen: list[int] = []
    for index in range(len(predictions.class_names)):
        chosen.extend(np.flatnonzero(predictions.labels == index)[:per_class].tolist())
    chosen = chosen[:MAX_GRADCAM_IMAGES]
    if not chosen:
        return []
    images = predictions.images[chosen]
    heatmaps = gradcam(model, images)
    tiles = []
    for i, heatmap in zip(chosen, heatmaps, strict=True):
        true = predictions.class_names[predictions.labels[i]]
        guess = predictions.class_names[predictions.predicted[i]]
        tiles.append(Tile(predictions.images[i], f"{true}: {predictions.filenames[i]}"))
        tiles.append(Tile(overlay(predictions.images[i], heatmap),
                          f"for {guess} ({predictions.confidence[i]:.2f})"))
    return tiles


def _model_sections(data: ReportData, outputs: dict[str, dict[str, list]], eval_dir: str | None,
                    train_dir: str | None, limits: dict[str, int]) -> None:
    """Fills predictions, the augmentation preview and Grad-CAM from the Trainer's model."""
    import tensorflow as tf

    model_sections = (AUGMENTATION, CONFUSION, MISCLASSIFIED, GRADCAM)
    models = outputs.get("Trainer", {}).get("model", [])
    if not models:
        data.missing.update(dict.fromkeys(model_sections, _not_trained(data.components)))
        return
    serving_dir = os.path.join(models[0].uri, SERVING_SUBDIR)
    try:
        saved = tf.saved_model.load(serving_dir)
    except (OSError, ValueError, tf.errors.OpError) as error:
        reason = f"the model in {serving_dir} does not load ({str(error).splitlines()[0]})"
        data.missing.update(dict.fromkeys(model_sections, reason))
        return
    try:
        hp, model = _load_keras_model(serving_dir, saved)
    except ValueError as error:
        hp, model = None, None
        reason = f"the Keras model cannot be rebuilt: {str(error).split(';')[0]}"
        data.missing.update({AUGMENTATION: reason, GRADCAM: reason})
    size = hp.image_size if hp else DISPLAY_SIZE
    classes = len(data.class_names)
    examples = read_examples(eval_dir, limits["eval"], classes) if eval_dir else []
    if not examples:
        data.missing.update(dict.fromkeys((CONFUSION, MISCLASSIFIED, GRADCAM),
                                          "the run's examples have no eval images"))
    else:
        split_size = data.summary.examples_per_split.get("eval") if data.summary else None
        data.predictions = _predict(saved, examples, data.class_names, size, split_size)
        if model is not None:
            data.gradcam = _gradcam_tiles(model, data.predictions, limits["gradcam_per_class"])
    if model is None:
        return
    train = read_examples(train_dir, limits["augment"], classes) if train_dir else []
    if not hp.augment.enabled:
        data.notes[AUGMENTATION] = ("augmentation is off for this model (--no-augment): "
                                    "the model sees the training images as they are")
        data.augmentation = [[Tile(image, e.label_name)] for image, e in
                             zip(_decode([e.image_bytes for e in train], size), train,
                                 strict=True)] if train else None
    elif train:
        data.augmentation = _augmentation_rows(model, hp, train, limits["variants"])
    if not train:
        data.missing[AUGMENTATION] = "the run's examples have no training images"


def _audit_section(data: ReportData, split_dirs: list[str]) -> None:
    """The data audit's gallery, or why there is none."""
    # Imported here: report.audit builds on this module's Tile.
    from pipeline.results.report.audit import read_gallery

    audit = data.summary.audit if data.summary else {}
    if not audit:
        state = data.components.get("DataAudit")
        data.missing[AUDIT] = (f"the DataAudit's execution is {state} and left no findings"
                               if state else "the data audit did not run (--no-audit)")
    elif not os.path.isfile(audit["findings"]):
        data.missing[AUDIT] = f"no findings at {audit['findings']}"
    else:
        data.audit = read_gallery(audit["findings"], split_dirs)


def collect(output_dir: Path, pipeline_name: str, summary: RunSummary | None = None,
            accuracy_threshold: float = 0.8, max_eval_images: int = 64, augment_images: int = 6,
            augment_variants: int = 3, gradcam_per_class: int = 3) -> ReportData:
    """Reads the latest run of `pipeline_name` in `output_dir` (an `imgpipe run --output`).

    Raises:
        LookupError: when ML Metadata records no run of the pipeline.
    """
    metadata_path = OutputLayout(output_dir).metadata_path
    if summary is None:
        summary = read_run_summary(metadata_path, pipeline_name, accuracy_threshold)
    outputs = run_artifacts(metadata_path, pipeline_name)
    data = ReportData(pipeline_name=pipeline_name, run_id=summary.run_id,
                      created=datetime.datetime.now().isoformat(timespec="seconds"),
                      components=dict(summary.components), summary=summary)
    examples = outputs.get("ImageExampleGen", {}).get("examples", [])
    eval_dir = train_dir = None
    if examples:
        artifact = examples[0]
        splits = json.loads(artifact.properties["split_names"].string_value)
        eval_dir = os.path.join(artifact.uri, "Split-eval") if "eval" in splits else None
        train_dir = os.path.join(artifact.uri, "Split-train") if "train" in splits else None
        props = artifact.custom_properties
        if examples_props.CLASS_NAMES in props:
            data.class_names = tuple(json.loads(props[examples_props.CLASS_NAMES].string_value))
        if examples_props.QUARANTINE_REPORT in props:
            data.quarantine_report = props[examples_props.QUARANTINE_REPORT].string_value
            data.quarantined = _read_quarantine(data.quarantine_report)
    else:
        state = data.components.get("ImageExampleGen", "not run")
        data.missing[DATA] = f"the ImageExampleGen ({state}) recorded no examples"
    _audit_section(data, [d for d in (train_dir, eval_dir) if d])
    if not data.class_names and summary.per_class_accuracy:
        data.class_names = tuple(sorted(summary.per_class_accuracy))
    runs = outputs.get("Trainer", {}).get("model_run", [])
    history_path = os.path.join(runs[0].uri, HISTORY_FILE) if runs else ""
    if history_path and os.path.isfile(history_path):
        with open(history_path, encoding="utf-8") as handle:
            data.history = json.load(handle).get("history")
    if not data.history:
        data.missing[CURVES] = (f"no {HISTORY_FILE} in the Trainer's output ("
                                f"{_not_trained(data.components)})" if not runs else
                                f"the Trainer recorded no history in {history_path}")
    if summary.eval_accuracy is None:
        state = data.components.get("Evaluator")
        data.missing[EVALUATION] = (f"the Evaluator's execution is {state} and left no result"
                                    if state else "the run did not get as far as the Evaluator")
    if "Pusher" not in data.components:
        data.missing[PUSH] = "the run did not get as far as the Pusher"
    _model_sections(data, outputs, eval_dir, train_dir, {
        "eval": max_eval_images, "augment": augment_images, "variants": augment_variants,
        "gradcam_per_class": gradcam_per_class})
    return data
