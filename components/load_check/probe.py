"""Loads a SavedModel in a fresh Python process and calls `serving_default` on real images.

This is the check TFX's InfraValidator makes with a model server, made without Docker: a model
that the training process could use may still fail to load or to serve on its own (a missing
asset, an op only registered in the trainer, a signature that breaks on real bytes).

The parent side (`run_probe`) writes the images to a TFRecord file and starts
`python -m components.load_check.probe --model DIR --images FILE`; the child (`main`) loads the
model, calls the signature once on all the images, checks the outputs (`validate_outputs`) and
prints one JSON line of findings. The model passes only if the child exits 0 within the timeout
and reports no problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from components.image_example_gen import reader
from trainer.contract import CLASSES, IMAGE_BYTES, PROBABILITIES, SERVING_SIGNATURE

SUM_TOLERANCE = 1e-3
DEFAULT_TIMEOUT_SECONDS = 300
MODULE = "components.load_check.probe"
# Keras 2 for any Keras object in the SavedModel, and no TensorFlow C++ log noise in the report.
CHILD_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
_MAX_REASON = 400
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """The verdict on one model: `reason` is '' when it passed, else one line saying why not."""

    passed: bool
    reason: str
    findings: dict[str, Any]  # the child's JSON report ({} if it printed none)
    returncode: int | None  # None when it was killed at the timeout
    log: str  # the child's stdout and stderr, for diagnosis


# --- outputs ----------------------------------------------------------------------------------


def _shape(array: np.ndarray) -> list[int]:
    return [int(d) for d in array.shape]


def validate_outputs(outputs: Mapping[str, Any], num_images: int) -> str:
    """'' if `outputs` are well-formed for `num_images` images, else the first problem found.

    Well-formed: `probabilities` float32 of shape [N, C] with C >= 2, finite, in [0, 1], each
    row summing to 1 within SUM_TOLERANCE; `classes` strings of shape [N].
    """
    for key in (PROBABILITIES, CLASSES):
        if key not in outputs:
            return f"{SERVING_SIGNATURE} has no {key!r} output (outputs: {sorted(outputs)})"
    probabilities = np.asarray(outputs[PROBABILITIES])
    classes = np.asarray(outputs[CLASSES])
    if probabilities.dtype != np.float32:
        return f"probabilities are {probabilities.dtype}, expected float32"
    if probabilities.ndim != 2 or probabilities.shape[0] != num_images:
        return (f"probabilities have shape {_shape(probabilities)}, expected "
                f"[{num_images}, C] for {num_images} images")
    if probabilities.shape[1] < 2:
        return f"probabilities have {probabilities.shape[1]} classes, expected at least 2"
    if not np.all(np.isfinite(probabilities)):
        return "probabilities are not finite (NaN or Inf)"
    if probabilities.min() < 0.0 or probabilities.max() > 1.0:
        return (f"probabilities are outside [0, 1] (min {probabilities.min():.6g}, "
                f"max {probabilities.max():.6g})")
    deviation = float(np.max(np.abs(probabilities.astype(np.float64).sum(axis=1) - 1.0)))
    if deviation > SUM_TOLERANCE:
        return f"probabilities rows do not sum to 1 (largest deviation {deviation:.6g})"
    if classes.dtype.kind not in ("O", "S", "U"):
        return f"classes are {classes.dtype}, expected strings"
    if classes.ndim != 1 or classes.shape[0] != num_images:
        return f"classes have shape {_shape(classes)}, expected [{num_images}]"
    return ""


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """`text` on one line, whitespace collapsed, cut to `limit` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe_error(error: BaseException) -> str:
    """`Type: message`, one line, without the Python traceback TensorFlow puts in op errors."""
    message = error.message if isinstance(error, tf.errors.OpError) else str(error)
    lines = message.splitlines()
    # "Graph execution error: Detected at node X defined at (most recent call last): File ..."
    # is followed by the error itself after the last traceback line.
    traceback_ends = [i for i, line in enumerate(lines) if line.startswith("  File ")
                      or line.startswith("    ") or line.startswith("Detected at node")
                      or line.startswith("Graph execution error")]
    if traceback_ends:
        lines = lines[traceback_ends[-1] + 1:] or lines
    lines = [line for line in lines if line.strip() != "<stack traces unavailable>"]
    return one_line(f"{type(error).__name__}: {' '.join(lines)}")


# --- image files --------------------------------------------------------------------------------


def read_images(split_dir: str, limit: int, feature: str = IMAGE_BYTES) -> list[bytes]:
    """The first `limit` (>= 1) encoded images of a split, for the probe."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return reader.read_split_images(split_dir, limit, feature)


def write_images(path: str, images: Sequence[bytes]) -> None:
    """One uncompressed TFRecord per encoded image: the probe's `--images` file."""
    with tf.io.TFRecordWriter(path) as writer:
        for image in images:
            writer.write(image)


def load_images(path: str) -> list[bytes]:
    """The images of a `write_images` file, or of every file in a directory of such files."""
    files = (sorted(os.path.join(path, name) for name in tf.io.gfile.listdir(path))
             if tf.io.gfile.isdir(path) else [path])
    return [record.numpy() for record in tf.data.TFRecordDataset(files)]


# --- the child --------------------------------------------------------------------------------


def _progress(message: str) -> None:
    """A line on stderr, so a log of a probe killed at the timeout shows how far it got."""
    print(f"load_check: {message}", file=sys.stderr, flush=True)


def check_model(model_dir: str, images: Sequence[bytes]) -> dict[str, Any]:
    """Loads the model, calls its serving signature on `images`; findings with a 'reason'."""
    findings: dict[str, Any] = {"pid": os.getpid(), "num_images": len(images)}
    if not images:
        findings["reason"] = "no images to call the model with"
        return findings
    start = time.monotonic()
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as error:  # any failure to load is the finding
        findings["reason"] = f"loading the SavedModel failed: {describe_error(error)}"
        return findings
    findings["load_seconds"] = round(time.monotonic() - start, 3)
    _progress(f"loaded {model_dir} in {findings['load_seconds']} s")
    signatures = sorted(loaded.signatures.keys())
    if SERVING_SIGNATURE not in signatures:
        findings["reason"] = (f"the SavedModel has no {SERVING_SIGNATURE!r} signature "
                              f"(has {signatures})")
        return findings
    function = loaded.signatures[SERVING_SIGNATURE]
    inputs = sorted(function.structured_input_signature[1])
    if inputs != [IMAGE_BYTES]:
        findings["reason"] = (f"{SERVING_SIGNATURE} takes inputs {inputs}, expected "
                              f"[{IMAGE_BYTES!r}]")
        return findings
    _progress(f"calling {SERVING_SIGNATURE} on {len(images)} images")
    start = time.monotonic()
    try:
        outputs = function(**{IMAGE_BYTES: tf.constant(list(images), dtype=tf.string)})
        arrays = {key: value.numpy() for key, value in outputs.items()}
    except Exception as error:  # any failure to serve is the finding
        findings["reason"] = f"{SERVING_SIGNATURE} failed: {describe_error(error)}"
        return findings
    findings["call_seconds"] = round(time.monotonic() - start, 3)
    findings["outputs"] = {key: {"dtype": str(value.dtype), "shape": _shape(value)}
                           for key, value in arrays.items()}
    findings["reason"] = validate_outputs(arrays, len(images))
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    """The child's entry point: prints one JSON line; exit status 0 only if the model passed."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the SavedModel directory")
    parser.add_argument("--images", required=True,
                        help="a TFRecord file of encoded images, or a directory of such files")
    args = parser.parse_args(argv)
    try:
        findings = check_model(args.model, load_images(args.images))
    except Exception as error:  # reading the images; still report one JSON line
        findings = {"pid": os.getpid(), "reason": f"reading the images failed: "
                                                  f"{describe_error(error)}"}
    print(json.dumps(findings), flush=True)
    return 0 if not findings["reason"] else 1


# --- the parent -------------------------------------------------------------------------------


def parse_report(stdout: str) -> dict[str, Any]:
    """The child's JSON line (the last stdout line that is a JSON object with a 'reason'), or {}."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict) and isinstance(report.get("reason"), str):
            return report
    return {}


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""


def _log(command: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> str:
    return (f"$ {' '.join(command)}\nexit status: {returncode}\n"
            f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n")


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else "no output"


def child_environment() -> dict[str, str]:
    """This process's environment with CHILD_ENV, and this project importable first."""
    env = dict(os.environ, **CHILD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(
        [_PROJECT_ROOT, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


def run_probe(model_dir: str, images_path: str,
              timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> ProbeResult:
    """Runs the probe on `model_dir` in a fresh Python process and judges its report."""
    if not timeout_seconds > 0:
        raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
    command = [sys.executable, "-m", MODULE, "--model", model_dir, "--images", images_path]
    try:
        done = subprocess.run(command, env=child_environment(), capture_output=True,
                              timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired as expired:  # run() has killed the child
        stdout, stderr = _text(expired.stdout), _text(expired.stderr)
        return ProbeResult(False, f"timed out after {timeout_seconds:g} s", parse_report(stdout),
                           None, _log(command, None, stdout, stderr))
    stdout, stderr = _text(done.stdout), _text(done.stderr)
    log = _log(command, done.returncode, stdout, stderr)
    report = parse_report(stdout)
    if not report:
        return ProbeResult(False, f"the probe exited with status {done.returncode} without a "
                                  f"report: {_last_line(stderr)}", report, done.returncode, log)
    if report["reason"]:
        return ProbeResult(False, one_line(report["reason"]), report, done.returncode, log)
    if done.returncode != 0:
        return ProbeResult(False, f"the probe exited with status {done.returncode}: "
                                  f"{_last_line(stderr)}", report, done.returncode, log)
    return ProbeResult(True, "", report, done.returncode, log)


if __name__ == "__main__":
    sys.exit(main())
