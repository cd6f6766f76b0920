"""Issue 19's accuracy comparison: a base pretrained in [0, 1], fed by `imgpipe run` with no
--input-scaling, against the seeds' recipe fed in [0, 1] (same images, epochs and weights).

The base: InceptionV3 pretrained by `trainer.tools.pretrain` (what `imgpipe pretrain-base
--input-scaling unit` runs) on six source shapes of `imgpipe sample-data` at 75 px, its
file then stripped of the recorded convention, so `auto` must detect `unit` from the BatchNorm
statistics. The target: two shapes the base never saw, in `DATA/train/` + `DATA/eval/` folders
that the recipe and the pipeline both read. Both train without augmentation (the two
implementations draw different transforms; without them both see the same pixels). The wrong
feed is the pipeline told `--input-scaling inception`.

Usage: `.venv/bin/python -m benchmarks.transfer --output benchmarks/results`; writes
transfer.json and transfer.md. `tests/e2e/transfer_test.py` (opt-in) asserts the same runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import tensorflow as tf

from benchmarks import recipe
from benchmarks.machine import describe, write_results
from pipeline.local.sample_data import write_sample_data
from trainer import scaling
from trainer.tools.pretrain import pretrain_base

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
SOURCE_SHAPES = ("square", "triangle", "ring", "stripes", "star", "diamond")
TARGET_SHAPES = ("circle", "cross")


@dataclasses.dataclass(frozen=True)
class Setup:
    """The comparison's sizes: the cheapest pretraining measured to transfer (README)."""

    size: int = 75
    source_per_class: int = 100
    pretrain_epochs: int = 10
    train_per_class: int = 32
    eval_per_class: int = 32
    epochs: int = 3
    batch_size: int = 8


def silent_unit_base(work: Path, setup: Setup) -> dict[str, Any]:
    """Pretrains a base fed in [0, 1] and removes the file's record of it; the path, the source
    task's validation accuracy and the seconds it took."""
    start = time.perf_counter()
    write_sample_data(work / "source", SOURCE_SHAPES, setup.source_per_class, setup.size, seed=1)
    result = pretrain_base(work / "source", work / "unit_base.h5", image_size=setup.size,
                           epochs=setup.pretrain_epochs, input_scaling=scaling.UNIT)
    with h5py.File(result.weights_path, "a") as f:
        del f.attrs[scaling.H5_ATTRIBUTE]
    return {"weights": result.weights_path, "source_accuracy": result.val_accuracy,
            "seconds": time.perf_counter() - start}


def target_data(work: Path, setup: Setup) -> Path:
    """Two unseen shapes under DATA/train/ and DATA/eval/ (other seeds than the source)."""
    data = work / "target"
    write_sample_data(data / "train", TARGET_SHAPES, setup.train_per_class, setup.size, seed=5)
    write_sample_data(data / "eval", TARGET_SHAPES, setup.eval_per_class, setup.size, seed=6)
    return data


def run_recipe(data: Path, weights: Path, setup: Setup) -> dict[str, Any]:
    """The seeds' recipe fed x / 255: eval accuracy and seconds."""
    start = time.perf_counter()
    run = recipe.train_and_evaluate(data / "train", data / "eval", TARGET_SHAPES, weights,
                                    setup.size, setup.batch_size, setup.epochs, recipe.UNIT,
                                    augment=False)
    del run["model"]
    tf.keras.backend.clear_session()
    return {"accuracy": run["accuracy"], "seconds": time.perf_counter() - start}


def run_pipeline(data: Path, output: Path, weights: Path, setup: Setup,
                 input_scaling: str | None = None) -> dict[str, Any]:
    """`imgpipe run` (with --input-scaling only when given): eval accuracy, the summary's
    input-scaling line, seconds, and the output for a failed run's diagnosis."""
    command = [IMGPIPE, "run", "--data", str(data), "--output", str(output),
               "--weights", str(weights), "--image-size", str(setup.size),
               "--epochs", str(setup.epochs), "--batch-size", str(setup.batch_size),
               "--early-stopping-patience", "0", "--no-augment", "--accuracy-threshold", "0",
               "--no-report", "--model-name", "shapes"]
    if input_scaling:
        command += ["--input-scaling", input_scaling]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    result: dict[str, Any] = {"exit_code": done.returncode,
                              "seconds": time.perf_counter() - start,
                              "stdout": done.stdout, "stderr": done.stderr[-3000:]}
    if done.returncode == 0:
        summary = json.loads((output / "summary.json").read_text())
        result.update(accuracy=summary["eval_metrics"]["accuracy"],
                      eval_images=summary["eval_example_count"],
                      input_scaling=summary["input_scaling"])
    return result


def compare(work: Path, setup: Setup, wrong_feed: bool = True) -> dict[str, Any]:
    """The base, the recipe, the pipeline with no flag and (optionally) with the wrong one."""
    base = silent_unit_base(work, setup)
    data = target_data(work, setup)
    out: dict[str, Any] = {"setup": dataclasses.asdict(setup), "base": base,
                           "recipe": run_recipe(data, base["weights"], setup),
                           "pipeline": run_pipeline(data, work / "auto", base["weights"], setup)}
    if wrong_feed:
        out["wrong_feed"] = run_pipeline(data, work / "inception", base["weights"], setup,
                                         scaling.INCEPTION)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The figures as a short Markdown table."""
    rows = [("pretraining (source accuracy)", result["base"]["source_accuracy"],
             result["base"]["seconds"]),
            ("seeds' recipe, x / 255", result["recipe"]["accuracy"], result["recipe"]["seconds"])]
    for key, name in (("pipeline", "imgpipe run, no flag"),
                      ("wrong_feed", "imgpipe run --input-scaling inception")):
        if key in result:
            rows.append((name, result[key].get("accuracy", float("nan")),
                         result[key]["seconds"]))
    lines = [f"# Issue 19's transfer comparison ({result['date']})", "",
             f"Setup: {result['setup']}.", "",
             f"Machine: {result['machine']['cpu_model']}, {result['machine']['cores']} cores; "
             f"load average {result['load_average_start']} to {result['load_average_end']}.", "",
             "| run | accuracy | seconds |", "| --- | --- | --- |"]
    lines += [f"| {name} | {accuracy:.3f} | {seconds:.1f} |" for name, accuracy, seconds in rows]
    if "pipeline" in result:
        lines += ["", f"base input scaling: {result['pipeline'].get('input_scaling')}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Runs the comparison once; writes transfer.json and transfer.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for the results")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as work:
        result = compare(Path(work), Setup())
    result["base"]["weights"] = result["base"]["weights"].name
    for key in ("pipeline", "wrong_feed"):
        result[key].pop("stdout", None)
        result[key].pop("stderr", None)
    result.update(date=started, load_average_start=load_before,
                  load_average_end=[round(x, 2) for x in os.getloadavg()],
                  machine=describe(tensorflow=tf.__version__))
    write_results(args.output, "transfer", result, markdown(result))


if __name__ == "__main__":
    main()
