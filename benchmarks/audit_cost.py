"""What the data audit adds to a default `imgpipe run`: the same run with and without it.

Issue 21's target: the audit adds at most 10% to a default run on 2,000 images. Two runs of
`imgpipe run` on the same 2,000 sample images (150 px, 2 classes), defaults but the base's
weights from a file (a random InceptionV3 saved once: the same compute as ImageNet weights, which
this machine cannot download, and, as with them, the same base in the audit and the Trainer, so
the Trainer validates on the audit's eval features), `--input-scaling inception` (ImageNet's
InceptionV3 convention; a random base cannot be detected) and `--no-report`, each into a fresh
output folder, one with `--no-audit`: their wall and CPU seconds (the run's and its workers', from
`getrusage`; less sensitive to other load than wall time), each step's time as the run prints it
("X: done in N s") and what the Trainer validated on. Ratios are of runs made one after the other
on one machine.

Usage: `.venv/bin/python -m benchmarks.audit_cost --output benchmarks/results [--pairs 1]`;
results in `audit-cost.json` and `audit-cost.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe, write_results

IMAGES_PER_CLASS = 1000
SIZE = 150
STEP_DONE = re.compile(r"^(\w+): done in ([0-9.]+) s", re.MULTILINE)
TARGET = 0.10


def random_base(path: Path) -> Path:
    """A random InceptionV3 without its top at SIZE px, its weights saved as an `.h5` file."""
    import tensorflow as tf

    from trainer.bases import build_application, get_base_spec

    tf.keras.utils.set_random_seed(0)
    build_application(get_base_spec("inception_v3"), SIZE, "none").save_weights(
        str(path), save_format="h5")
    return path


def one_run(imgpipe: str, data: Path, output: Path, weights: Path, audit: bool
            ) -> dict[str, Any]:
    """One `imgpipe run`: wall and CPU seconds, each step's seconds, what the Trainer validated
    on."""
    command = [imgpipe, "run", "--data", str(data), "--output", str(output), "--weights",
               str(weights), "--input-scaling", "inception", "--no-report",
               *([] if audit else ["--no-audit"])]
    load_before, start = os.getloadavg()[0], time.perf_counter()
    before = _children_cpu()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    wall, cpu = time.perf_counter() - start, _children_cpu() - before
    log = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"imgpipe run failed ({done.returncode}):\n{log[-3000:]}")
    history = next((output / "pipeline" / "Trainer" / "model_run").glob("*/history.json"))
    return {"audit": audit, "wall_seconds": wall, "cpu_seconds": cpu,
            "steps": {name: float(seconds) for name, seconds in STEP_DONE.findall(log)},
            "validated_on": json.loads(history.read_text())["validation"]["on"],
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}


def _children_cpu() -> float:
    """User and system seconds of the children waited for so far (the run and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(pairs: int) -> dict[str, Any]:
    """`pairs` pairs of runs, without then with the audit, on one set of images."""
    from pipeline.local.sample_data import write_sample_data

    imgpipe = str(Path(sys.executable).parent / "imgpipe")
    work = Path(tempfile.mkdtemp(prefix="audit-cost-"))
    try:
        data = work / "data"
        write_sample_data(data, ("circle", "cross"), IMAGES_PER_CLASS, SIZE, 0)
        weights = random_base(work / "base.h5")
        runs = []
        for pair in range(pairs):
            for audit in (False, True):
                runs.append(one_run(imgpipe, data, work / f"out-{pair}-{int(audit)}", weights,
                                    audit))
        return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "machine": describe(), "images": 2 * IMAGES_PER_CLASS, "size": SIZE,
                "runs": runs, **_ratios(runs)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    without = [r for r in runs if not r["audit"]]
    with_audit = [r for r in runs if r["audit"]]
    wall = sum(r["wall_seconds"] for r in with_audit) / sum(r["wall_seconds"] for r in without)
    audit_step = sum(r["steps"].get("DataAudit", 0.0) for r in with_audit) / len(with_audit)
    base = sum(r["wall_seconds"] for r in without) / len(without)
    cpu = (sum(r["cpu_seconds"] for r in with_audit) / sum(r["cpu_seconds"] for r in without))
    return {"wall_ratio": wall, "audit_step_seconds": audit_step,
            "audit_step_share_of_run_without": audit_step / base,
            "cpu_ratio": cpu, "met": cpu - 1 <= TARGET}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# What the data audit adds to a default `imgpipe run`", "",
             f"Measured {result['date']} by `benchmarks/audit_cost.py` on {m['cpu_model']}, "
             f"{m['cores']} cores, {m['ram_gb']} GB RAM; {result['images']:,} sample images at "
             f"{result['size']} px, defaults but the weights of a random InceptionV3 from a "
             "file, `--input-scaling inception` and `--no-report`.", "",
             "| audit | wall s | CPU s | DataAudit s | Trainer s | Transform s | Evaluator s "
             "| load before/after | Trainer validated on |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in result["runs"]:
        s = r["steps"]
        lines.append(f"| {'on' if r['audit'] else 'off'} | {r['wall_seconds']:.1f} | "
                     f"{r['cpu_seconds']:.1f} | {s.get('DataAudit', 0):.1f} | "
                     f"{s.get('Trainer', 0):.1f} | {s.get('Transform', 0):.1f} | "
                     f"{s.get('Evaluator', 0):.1f} | {r['load_average_before']:.1f} / "
                     f"{r['load_average_after']:.1f} | {r['validated_on']} |")
    lines += ["", f"The audit adds {result['cpu_ratio'] - 1:.1%} to the run's CPU seconds (target "
              f"≤ {TARGET:.0%}: {'met' if result['met'] else 'not met'}); wall "
              f"{result['wall_ratio'] - 1:+.1%}, and its step's wall time is "
              f"{result['audit_step_share_of_run_without']:.1%} of the run without it. CPU "
              "seconds decide: wall times carry whatever else the machine ran meanwhile."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--pairs", type=int, default=1)
    args = parser.parse_args()
    result = measure(args.pairs)
    write_results(args.output, "audit-cost", result, markdown(result))


if __name__ == "__main__":
    main()
