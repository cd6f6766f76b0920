"""`imgpipe predict --tflite FILE`: classify image files with a TFLite model `imgpipe run` pushed.

The image is decoded and resized exactly as Transform's graph does for the SavedModel
(`trainer.transform.decode_and_resize`); the model does the rest. The class names come from the
JSON beside the model (`model_<format>.json`), or `labels.txt` in its folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.errors import UserError

LABELS_FILE = "labels.txt"  # components.tflite_export.convert.LABELS_FILE, without TensorFlow


def class_names(model_file: Path) -> tuple[str, ...]:
    """The classes in output order, from the model's JSON or its folder's labels.txt."""
    metadata = model_file.with_suffix(".json")
    labels = model_file.parent / LABELS_FILE
    try:
        if metadata.is_file():
            return tuple(json.loads(metadata.read_text(encoding="utf-8"))["class_names"])
        if labels.is_file():
            return tuple(line.strip() for line in labels.read_text(encoding="utf-8").splitlines()
                         if line.strip())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"cannot read the class names beside {model_file}: {error}") from None
    raise UserError(f"no class names beside {model_file}: expected {metadata.name} or "
                    f"{LABELS_FILE} in {model_file.parent} (imgpipe run pushes both)")


def predict_files(model_file: Path, files: list[Path]) -> list[tuple[str, float]]:
    """(class name, probability) of each image file, classified one by one."""
    import numpy as np
    import tensorflow as tf

    from components.tflite_export.evaluate import TFLiteClassifier
    from trainer.transform import decode_and_resize

    if not model_file.is_file():
        raise UserError(f"--tflite {model_file} is not a file; pass a .tflite model "
                        "(OUTPUT/serving/<model>/<version>/assets.extra/tflite/)")
    names = class_names(model_file)
    try:
        classifier = TFLiteClassifier(model_path=str(model_file))
    except (ValueError, RuntimeError) as error:
        raise UserError(f"--tflite {model_file} is not a TFLite classifier imgpipe made: "
                        f"{_first_line(str(error))}") from None
    images = []  # every file decoded before any is classified: a bad one fails the command
    for path in files:
        try:
            images.append(decode_and_resize(tf.constant(path.read_bytes()),
                                            classifier.image_size).numpy())
        except tf.errors.InvalidArgumentError as error:
            raise UserError(f"{path}: not an image the model can read: "
                            f"{_first_line(error.message)}") from None
        except OSError as error:
            raise UserError(f"{path}: cannot be read: {error.strerror or error}") from None
    answers = []
    for image in images:
        probabilities = classifier.probabilities(image[np.newaxis])[0]
        if len(probabilities) != len(names):
            raise UserError(f"--tflite {model_file} answers {len(probabilities)} classes but "
                            f"its class names list {len(names)}; keep the files pushed together")
        best = int(np.argmax(probabilities))
        answers.append((names[best], float(probabilities[best])))
    return answers


def _first_line(message: str) -> str:
    """The reason in an error message: a failed graph assertion's own text, or its first line."""
    found = re.search(r"Summarized data: b['\"](.*?)['\"]", message)
    if found:
        return found.group(1)
    lines = message.strip().splitlines()
    return lines[0] if lines else "no detail"
