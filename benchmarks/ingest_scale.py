"""Ingestion at scale: the image ExampleGen on 1k, 10k and 100k tiny images; time and memory.

Issue 18, item 7: the file list is no longer in the Beam graph (only the split folders are, and
the files are listed inside Beam), so time should grow linearly with the number of files and
memory stay flat. Tiny images (8 px PNGs, a pool of 64 per class hard-linked into each folder)
make the per-file costs (listing, classifying, shuffling, reading, converting, writing) the
whole cost. Each (count, runner mode) runs in a fresh process: `Do` twice on 40 images (cold,
then warm), then one timed `Do` with the peak RSS of the process and all its descendants (Beam's
worker processes) sampled every 50 ms, and the size of the submitted pipeline proto
(`Pipeline.to_runner_api()`).

Usage: `.venv/bin/python -m benchmarks.ingest_scale --output benchmarks/results
[--images 1000,10000,100000] [--modes in_memory:1,multi_processing:2]`; results in
`ingest-scale.json` and `ingest-scale.md`.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.ingest import (
    CLASSES,
    PROJECT,
    WARMUP_IMAGES,
    TreeMemorySampler,
    cpu_seconds,
    fit_line,
    machine,
)

TINY_SIZE = 8
POOL_PER_CLASS = 64
LINEAR_MIN_R2 = 0.98  # time against image count
# Flat memory: the peak grows by less than this per 10,000 more files (a per-file list held in
# memory costs a few hundred bytes a file: ~3 MB per 10k, 30 MB at 100k).
FLAT_MAX_MB_PER_10K = 5.0


def tiny_dataset(cache_dir: Path, images: int) -> Path:
    """`images` 8 px PNGs in one folder per class, hard links into a small pool; cached."""
    import numpy as np
    from PIL import Image

    root = cache_dir / f"tiny-n{images}"
    data_root, manifest = root / "images", root / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("images") == images:
        return data_root
    shutil.rmtree(root, ignore_errors=True)
    pool = cache_dir / f"tiny-pool-{TINY_SIZE}px"
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (pool / name).mkdir(parents=True, exist_ok=True)
        (data_root / name).mkdir(parents=True)
        for i in range(POOL_PER_CLASS):
            path = pool / name / f"{i}.png"
            if not path.exists():
                buffer = io.BytesIO()
                pixels = rng.integers(0, 256, (TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(buffer, format="PNG")
                path.write_bytes(buffer.getvalue())
    for i in range(images):
        name = CLASSES[i % len(CLASSES)]
        os.link(pool / name / f"{i // len(CLASSES) % POOL_PER_CLASS}.png",
                data_root / name / f"{name}_{i:06d}.png")
    manifest.write_text(json.dumps({"images": images, "size": TINY_SIZE}))
    return data_root


def _run(data_root: Path, out: Path, beam_args: Sequence[str],
         sampler: TreeMemorySampler | None = None) -> dict[str, Any]:
    """One `Do` through the component's driver and executor; its time and pipeline size."""
    import apache_beam as beam
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    from components.image_example_gen import standalone
    from components.image_example_gen.executor import Executor

    sizes, measuring = [], []

    class Measured(beam.Pipeline):
        def run(self, test_runner_api="AUTO"):
            start, cpu = time.perf_counter(), time.process_time()
            sizes.append(self.to_runner_api().ByteSize())
            # Not counted in `Do`'s time: (wall, CPU) of the measurement itself.
            measuring.append((time.perf_counter() - start, time.process_time() - cpu))
            return super().run(test_runner_api)

    properties = standalone.exec_properties(str(data_root))
    examples = standalone.examples_artifact(str(out), properties)
    # The pipeline is made here (no `beam_pipeline_args` in the context), so TFX builds no
    # sdist of itself for workers: the DirectRunner's workers share this environment.
    executor = Executor(BaseBeamExecutor.Context(
        make_beam_pipeline_fn=lambda: Measured(argv=list(beam_args))))
    cpu_before, start = cpu_seconds(), time.perf_counter()
    if sampler:
        with sampler:
            executor.Do({}, {"examples": [examples]}, properties)
    else:
        executor.Do({}, {"examples": [examples]}, properties)
    seconds, cpu_after = time.perf_counter() - start - measuring[0][0], cpu_seconds()
    props = examples.mlmd_artifact.custom_properties
    return {"seconds": seconds,
            "cpu_seconds": sum(cpu_after) - sum(cpu_before) - measuring[0][1],
            "pipeline_proto_bytes": sizes[0], "ingested": props["ingested"].int_value}


def measure(images: int, mode: str, workers: int, cache_dir: Path) -> dict[str, Any]:
    """Warm-up (cold, warm) on 40 images, then one measured run on `images`."""
    beam_args = [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"]
    tiny, data_root = tiny_dataset(cache_dir, WARMUP_IMAGES), tiny_dataset(cache_dir, images)
    work = Path(tempfile.mkdtemp(prefix="ingest-scale-", dir=cache_dir))
    try:
        warm = [_run(tiny, work / f"warmup-{i}", beam_args) for i in range(2)]
        sampler = TreeMemorySampler()
        load_before = os.getloadavg()[0]
        run = _run(data_root, work / "examples", beam_args, sampler)
        return {"images": images, "mode": mode, "workers": workers, **run,
                "images_per_second": images / run["seconds"],
                "warm_tiny_run_seconds": warm[1]["seconds"],
                "tiny_run_pipeline_proto_bytes": warm[1]["pipeline_proto_bytes"],
                "peak_tree_rss_mb": sampler.peak_tree / 2**20,
                "max_processes": sampler.peak_processes,
                "load_average_1min_before": load_before,
                "load_average_1min_after": os.getloadavg()[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _in_subprocess(images: int, mode: str, workers: int, cache_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ingest-scale-result-") as tmp:
        result, log = Path(tmp) / "result.json", Path(tmp) / "log.txt"
        command = [sys.executable, "-m", "benchmarks.ingest_scale", "--run-one",
                   json.dumps([images, mode, workers]), "--cache-dir", str(cache_dir.resolve()),
                   "--result-file", str(result)]
        with log.open("w") as handle:
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=PROJECT,
                                  check=False)
        if done.returncode != 0 or not result.exists():
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
            raise RuntimeError(f"{images} images, {mode} x{workers} failed:\n{tail}")
        return json.loads(result.read_text())


def scaling(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode with 2+ counts: time fitted as fixed + per-image, peak RSS growth per 10k."""
    checks = []
    for mode, workers in sorted({(r["mode"], r["workers"]) for r in runs}):
        group = sorted((r for r in runs if (r["mode"], r["workers"]) == (mode, workers)),
                       key=lambda r: r["images"])
        if len(group) < 2:
            continue
        counts = [r["images"] for r in group]
        fixed, slope, r2 = fit_line(counts, [r["seconds"] for r in group])
        _, rss_slope, _ = fit_line(counts, [r["peak_tree_rss_mb"] for r in group])
        checks.append({"mode": mode, "workers": workers, "images": counts,
                       "fixed_seconds": fixed, "ms_per_image": slope * 1e3, "r2": r2,
                       "linear": len(group) < 3 or r2 >= LINEAR_MIN_R2,
                       "peak_rss_mb": [r["peak_tree_rss_mb"] for r in group],
                       "rss_mb_per_10k_images": rss_slope * 1e4,
                       "memory_flat": rss_slope * 1e4 < FLAT_MAX_MB_PER_10K,
                       "pipeline_proto_bytes": [r["pipeline_proto_bytes"] for r in group]})
    return checks


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    m = result["machine"]
    lines = [
        "# Ingestion at scale: the image ExampleGen on tiny images", "",
        f"Measured {result['date']} by `benchmarks/ingest_scale.py` on {m['cpu_model']}, "
        f"{m['cores']} cores ({m['cores_usable']} usable), {m['ram_gb']} GB RAM; {m['os']}, "
        f"Python {m['python']}, Beam {m['apache_beam']}. {m['note']}.", "",
        f"Input: {TINY_SIZE} px PNGs in {len(CLASSES)} class folders, default layout (one input "
        "split hash-split into train/eval). One timed `Do` per row after two warm-up runs on "
        f"{WARMUP_IMAGES} images; peak RSS summed over the process and its Beam workers.", "",
        "| images | runner | `Do` s | images/s | CPU s | peak RSS MB | processes "
        "| pipeline proto bytes | load avg before/after |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['images']:,} | {r['mode']} x{r['workers']} | {r['seconds']:.1f} | "
            f"{r['images_per_second']:.0f} | {r['cpu_seconds']:.1f} | "
            f"{r['peak_tree_rss_mb']:.0f} | {r['max_processes']} | "
            f"{r['pipeline_proto_bytes']:,} | {r['load_average_1min_before']:.1f} / "
            f"{r['load_average_1min_after']:.1f} |")
    lines += ["", "## Scaling", "",
              f"Time is linear when the fit fixed + per-image x images has R² >= {LINEAR_MIN_R2} "
              f"(3+ counts); memory is flat when the peak grows by less than "
              f"{FLAT_MAX_MB_PER_10K:g} MB per 10,000 images.", "",
              "| runner | images | fixed s | ms/image | R² | linear | peak RSS MB "
              "| MB per 10k images | flat |",
              "| --- | --- | ---: | ---: | ---: | --- | --- | ---: | --- |"]
    for c in result["scaling"]:
        lines.append(
            f"| {c['mode']} x{c['workers']} | {'/'.join(f'{n:,}' for n in c['images'])} | "
            f"{c['fixed_seconds']:.1f} | {c['ms_per_image']:.2f} | {c['r2']:.3f} | "
            f"{'pass' if c['linear'] else 'FAIL'} | "
            f"{' / '.join(f'{x:.0f}' for x in c['peak_rss_mb'])} | "
            f"{c['rss_mb_per_10k_images']:.1f} | {'pass' if c['memory_flat'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measures every (count, mode); writes ingest-scale.json and ingest-scale.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "results")
    parser.add_argument("--images", default="1000,10000,100000")
    parser.add_argument("--modes", default="in_memory:1,multi_processing:2",
                        help="DirectRunner modes and worker counts, mode:workers,...")
    parser.add_argument("--cache-dir", type=Path,
                        default=PROJECT / "build" / "bench-data" / "ingest")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.run_one:
        images, mode, workers = json.loads(args.run_one)
        args.result_file.write_text(json.dumps(measure(images, mode, workers, args.cache_dir)))
        return 0
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    runs = []
    for spec in args.modes.split(","):
        mode, workers = spec.split(":")
        for images in [int(n) for n in args.images.split(",")]:
            tiny_dataset(args.cache_dir, images)  # generation is not timed
            print(f"{images} images, {mode} x{workers} ...", flush=True)
            runs.append(_in_subprocess(images, mode, int(workers), args.cache_dir))
            print(f"  {runs[-1]['seconds']:.1f} s, peak RSS {runs[-1]['peak_tree_rss_mb']:.0f} "
                  f"MB, proto {runs[-1]['pipeline_proto_bytes']} bytes", flush=True)
            # Written after every run: a long run cut short keeps what was measured.
            result = {"date": date, "machine": machine(), "runs": runs,
                      "scaling": scaling(runs)}
            args.output.mkdir(parents=True, exist_ok=True)
            (args.output / "ingest-scale.json").write_text(json.dumps(result, indent=2) + "\n")
            (args.output / "ingest-scale.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
