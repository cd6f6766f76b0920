"""The data audit's core at 1k, 10k and 100k images, features given: time and peak memory.

Issue 21: the audit must stay fast at 100k images. Features are synthetic (768 values per image,
InceptionV3's `mixed7` averaged: ten class centres plus noise), with 2% of the eval images
planted as noisy copies of train images and 2% of the train labels flipped, so the run also
reports what it found. Embedding is not measured here (it is one forward pass of the base per
image, as the Trainer's bottleneck cache does: see its benchmark). Each size runs in a fresh
process, so `ru_maxrss` is that size's own peak; the features' own size is reported beside it.

Usage: `.venv/bin/python -m benchmarks.audit --output benchmarks/results
[--images 1000,10000,100000]`; results in `audit.json` and `audit.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe, write_results

DIM = 768
CLASSES = 10
EVAL_SHARE = 0.2
PLANTED_SHARE = 0.02


def synthetic(images: int, seed: int = 0):
    """`AuditImages` with planted leaks and flips, and the sets planted."""
    import numpy as np

    from components.data_audit.audit import AuditImages

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, DIM)).astype(np.float32)
    labels = rng.integers(0, CLASSES, images)
    features = centres[labels] + rng.normal(scale=1.5, size=(images, DIM)).astype(np.float32)
    train_count = int(images * (1 - EVAL_SHARE))
    splits = ["train"] * train_count + ["eval"] * (images - train_count)
    files = [f"c{label}/{i:06d}.jpg" for i, label in enumerate(labels)]
    planted = int(PLANTED_SHARE * (images - train_count))
    sources = rng.choice(train_count, planted, replace=False)
    copies = train_count + np.arange(planted)
    features[copies] = features[sources] + rng.normal(scale=0.2, size=(planted, DIM))
    labels[copies] = labels[sources]
    flipped = rng.choice(np.setdiff1d(np.arange(train_count), sources),
                         int(PLANTED_SHARE * train_count), replace=False)
    given = labels.copy()
    given[flipped] = (labels[flipped] + rng.integers(1, CLASSES, len(flipped))) % CLASSES
    hashes = rng.integers(0, 256, (images, 8), dtype=np.uint8)
    hashes[copies] = hashes[sources]
    leaks = {(files[c], files[s]) for c, s in zip(copies, sources, strict=True)}
    return (AuditImages(files, splits, given, [f"d{i}" for i in range(images)], features, hashes),
            leaks, {files[i] for i in flipped})


def _peak_mb() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(images: int) -> dict[str, Any]:
    """One audit of `images` synthetic images, timed phase by phase."""
    import numpy as np

    from components.data_audit import audit

    data, leaks, flipped = synthetic(images)
    rss_before = _peak_mb()
    settings = audit.AuditSettings()
    names = [f"c{i}" for i in range(CLASSES)]
    times = {}
    start = time.perf_counter()
    features = np.asarray(data.features, np.float32)
    unit = audit.neighbours.normalized(features - features.mean(axis=0))
    space = audit.neighbours.search_space(unit, settings.seed)
    pairs = audit.near_pairs(data, unit, settings, space)
    groups = audit.duplicate_groups(data, pairs)
    times["duplicates_seconds"] = time.perf_counter() - start
    times["peak_rss_after_duplicates_mb"] = _peak_mb()
    mark = time.perf_counter()
    found_leaks = audit.find_leaks(data, unit, settings, space)
    times["leaks_seconds"] = time.perf_counter() - mark
    times["peak_rss_after_leaks_mb"] = _peak_mb()
    mark = time.perf_counter()
    suspects, _ = audit.find_mislabels(data, unit, names, settings)
    times["mislabels_seconds"] = time.perf_counter() - mark
    times["total_seconds"] = time.perf_counter() - start
    found = {(leak["eval_file"], leak["train_file"]) for leak in found_leaks}
    top = {s["file"] for s in suspects[:2 * len(flipped)]}
    return {"images": images, "dim": DIM, **times,
            "features_mb": features.nbytes / 2**20,
            "peak_rss_mb": _peak_mb(),
            "rss_before_audit_mb": rss_before,
            "duplicate_groups": len(groups), "planted_leaks": len(leaks),
            "leaks_found": len(found & leaks), "false_leaks": len(found - leaks),
            "flipped": len(flipped), "flipped_in_top_2x": len(top & flipped),
            "suspected": len(suspects), "load_average_1min": os.getloadavg()[0]}


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    m = result["machine"]
    lines = [f"# Data audit at scale ({result['date']})", "",
             f"{m['cpu_model']}, {m['cores_usable']} usable cores, {m['ram_gb']} GB; faiss "
             f"{m['faiss']}, cleanlab {m['cleanlab']}, scikit-learn {m['sklearn']}. Features "
             f"given ({DIM} values), {PLANTED_SHARE:.0%} of eval planted as copies, "
             f"{PLANTED_SHARE:.0%} of train labels flipped.", "",
             "| images | duplicates s | leaks s | mislabels s | total s | RSS before MB | "
             "peak RSS MB | features MB | leaks found | flips in top 2x | suspected | load |",
             "|" + " ---: |" * 12]
    for r in result["runs"]:
        lines.append(
            f"| {r['images']:,} | {r['duplicates_seconds']:.2f} | {r['leaks_seconds']:.2f} | "
            f"{r['mislabels_seconds']:.2f} | {r['total_seconds']:.2f} | "
            f"{r['rss_before_audit_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r['features_mb']:.0f} | {r['leaks_found']}/{r['planted_leaks']} "
            f"(+{r['false_leaks']}) | {r['flipped_in_top_2x']}/{r['flipped']} | "
            f"{r['suspected']} | {r['load_average_1min']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--images", default="1000,10000,100000")
    parser.add_argument("--run-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(measure(args.run_one)))
        return
    import cleanlab
    import faiss
    import sklearn

    runs = []
    for images in (int(n) for n in args.images.split(",")):
        done = subprocess.run([sys.executable, "-m", "benchmarks.audit", "--run-one",
                               str(images)], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(runs[-1], file=sys.stderr)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": describe(faiss=faiss.__version__, cleanlab=cleanlab.__version__,
                                  sklearn=sklearn.__version__),
              "runs": runs}
    write_results(args.output, "audit", result, markdown(result))


if __name__ == "__main__":
    main()
