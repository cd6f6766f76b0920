"""What `--tune 20` costs against one default training of the same data (issue 23).

Issue 23's target: 20 trials of the head on the bottleneck cache cost less than one uncached
training. Two runs of `imgpipe run` on the same 2,000 sample images (150 px, circle vs cross),
defaults but `--weights none` (the same compute as ImageNet weights, which this machine cannot
download), `--no-audit` and `--no-report`, each into a fresh output folder: one as is, then one
with `--tune 20` per search algorithm (random, Hyperband) over the default space. Compared:
the Tuner step's wall time (the features cached once, then 20 trials) against the Trainer step's
of the default run; each step's time as the run prints it ("X: done in N s"), the search's own
split from the Tuner's trials file.

Usage: `.venv/bin/python -m benchmarks.tune --output benchmarks/results [--trials 20]
[--algorithms random,hyperband]`; results in
`tune.json` and `tune.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
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


def one_run(imgpipe: str, data: Path, output: Path, trials: int, algorithm: str = "random"
            ) -> dict[str, Any]:
    """One `imgpipe run`, with `--tune trials` when trials > 0: wall time, steps, summary."""
    tune = ["--tune", str(trials), "--tune-algorithm", algorithm] if trials else []
    command = [imgpipe, "run", "--data", str(data), "--output", str(output), "--weights", "none",
               "--no-audit", "--no-report", *tune]
    load_before, start = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"imgpipe run failed ({done.returncode}):\n{done.stdout[-3000:]}")
    summary = json.loads((output / "summary.json").read_text())
    return {"trials": trials, "algorithm": algorithm if trials else "", "wall_seconds": wall,
            "steps": {name: float(seconds) for name, seconds in STEP_DONE.findall(done.stdout)},
            "eval_accuracy": summary["eval_accuracy"], "tuning": summary.get("tuning", {}),
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}


def measure(trials: int, algorithms: list[str]) -> dict[str, Any]:
    """The default run, then the same with `--tune trials` of each algorithm, on one set of
    images."""
    from pipeline.local.sample_data import write_sample_data

    imgpipe = str(Path(sys.executable).parent / "imgpipe")
    work = Path(tempfile.mkdtemp(prefix="tune-cost-"))
    try:
        data = work / "data"
        write_sample_data(data, ("circle", "cross"), IMAGES_PER_CLASS, SIZE, 0)
        default = one_run(imgpipe, data, work / "out-default", 0)
        tuned = [one_run(imgpipe, data, work / f"out-{algorithm}", trials, algorithm)
                 for algorithm in algorithms]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    trainer = default["steps"]["Trainer"]
    for run in tuned:
        run["tuner_over_trainer"] = run["steps"]["Tuner"] / trainer
        run["met"] = run["steps"]["Tuner"] < trainer
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": describe(), "images": 2 * IMAGES_PER_CLASS, "size": SIZE,
            "default": default, "tuned": tuned}


def _search(run: dict[str, Any]) -> str:
    """One paragraph: the search's split between the cache and the trials, and its best."""
    tuning = run["tuning"]
    trials = tuning["trials"]
    seconds = [t["seconds"] for t in trials if t.get("seconds")]
    by_pooling: dict[str, list[float]] = {}
    for t in trials:
        if t.get("seconds"):
            by_pooling.setdefault(t["values"]["pooling"], []).append(t["seconds"])
    epochs = sum(t.get("epochs") or 0 for t in trials)
    best = next(t for t in trials if t["trial_id"] == tuning["best_trial_id"])
    cache = tuning["cache"]
    return (f"`--tune {run['trials']} --tune-algorithm {run['algorithm']}`: the search took "
            f"{tuning['seconds']:.1f} s, of which the features of {cache['train']['records']} "
            f"training and {cache['eval']['records']} eval images cached once in "
            f"{cache['seconds']:.1f} s and {len(seconds)} trials {sum(seconds):.1f} s "
            f"({epochs:.0f} head epochs in all; median trial "
            f"{sorted(seconds)[len(seconds) // 2]:.1f} s; by pooling: " + ", ".join(
                f"{p} {len(v)} trials, mean {sum(v) / len(v):.1f} s"
                for p, v in by_pooling.items())
            + f"). Best trial {best['trial_id']}: eval accuracy {best['score']:.3f} with "
            + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in best["values"].items())
            + f". Tuner step / default Trainer step: {run['tuner_over_trainer']:.2f} (target "
            f"< 1: {'met' if run['met'] else 'not met'}).")


def markdown(result: dict[str, Any]) -> str:
    m, default = result["machine"], result["default"]
    lines = [
        "# `--tune 20` against one default training", "",
        f"Measured {result['date']} by `benchmarks/tune.py` on {m['cpu_model']}, {m['cores']} "
        f"cores, {m['ram_gb']} GB RAM (shared with other jobs: read the load beside each run); "
        f"{result['images']:,} sample images (circle, cross) at {result['size']} px, defaults "
        "but `--weights none`, `--no-audit`, `--no-report`.", "",
        "| run | wall s | Tuner s | Trainer s | Transform s | Evaluator s | eval accuracy "
        "| load before/after |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    runs = [("default", default)] + [
        (f"--tune {r['trials']} {r['algorithm']}", r) for r in result["tuned"]]
    for name, r in runs:
        s = r["steps"]
        lines.append(f"| {name} | {r['wall_seconds']:.1f} | {s.get('Tuner', 0):.1f} | "
                     f"{s.get('Trainer', 0):.1f} | {s.get('Transform', 0):.1f} | "
                     f"{s.get('Evaluator', 0):.1f} | {r['eval_accuracy']:.3f} | "
                     f"{r['load_average_before']:.1f} / {r['load_average_after']:.1f} |")
    for run in result["tuned"]:
        lines += ["", _search(run)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--algorithms", default="random,hyperband",
                        help="comma-separated: one tuned run per algorithm")
    args = parser.parse_args()
    result = measure(args.trials, args.algorithms.split(","))
    write_results(args.output, "tune", result, markdown(result))


if __name__ == "__main__":
    main()
