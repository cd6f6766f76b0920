"""Ingestion benchmark: the image ExampleGen's throughput, output size and memory.

Runs the image ExampleGen's executor (`components/image_example_gen/executor.py`) the way the
component tests do (`components/image_example_gen/standalone.py`: properties resolved by the
component's own driver, then `Executor(context).Do`) on folders of
generated 150 px JPEGs, with Beam's DirectRunner in each configuration asked for, and measures:

- images/s: images ingested / wall time of `Do`. Every configuration runs in a fresh Python
  process that first runs `Do` twice on a tiny folder (cold, then warm), so imports and the
  runner's first start-up are not counted; the per-run cost the DirectRunner pays on every
  `Do` (multi-processing mode starts its worker processes per pipeline run) *is* counted, and
  is reported apart as the warm tiny run's time.
- bytes ratio: bytes written (gzipped TFRecords under `Split-*/` plus the quarantine report) /
  bytes read (the image files).
- peak RSS: the largest sum of the resident set sizes of the process and all its descendants
  (the Beam workers), sampled every 50 ms with psutil during `Do`, and getrusage's maxima.

Usage: `.venv/bin/python -m benchmarks.ingest --output benchmarks/results [--images 5000]`.
Generated images are cached under `build/bench-data/ingest/` (`--cache-dir`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.machine import describe

PROJECT = Path(__file__).resolve().parent.parent

SIZE = 150
SEED = 0
JPEG_QUALITY = 90  # as `pipeline.local.sample_data.write_sample_data` writes its JPEGs
CLASSES = ("circle", "square", "triangle", "star")
WARMUP_IMAGES = 40
SAMPLE_SECONDS = 0.05

TARGET_IMAGES_PER_SECOND = 300.0
TARGET_BYTES_RATIO = 1.1
LINEAR_MIN_R2 = 0.98  # time against image count, 1k/2k/4k
# Memory is flat when peak RSS grows by less than the input's own size per image: a run that
# holds (a copy of) every image in memory at once is not flat, however large its fixed base.
FLAT_MEMORY_MAX_COPIES = 1.0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One measured configuration: how many images, and how Beam's DirectRunner runs."""

    images: int
    mode: str  # DirectRunner's direct_running_mode: in_memory, multi_threading, multi_processing
    workers: int

    @property
    def name(self) -> str:
        """A short label, e.g. `5000 images, multi_processing x2`."""
        return f"{self.images} images, {self.mode} x{self.workers}"

    def beam_args(self) -> list[str]:
        """The DirectRunner's pipeline arguments."""
        return [f"--direct_running_mode={self.mode}", f"--direct_num_workers={self.workers}"]


# ----------------------------------------------------------------------------- data


def _render_jpeg(shape: str, index: int) -> bytes:
    """Image `index` of class `shape`: the sample-data drawing, JPEG-encoded."""
    import numpy as np

    from pipeline.local.sample_data import SHAPES, render_image

    rng = np.random.default_rng([SEED, SHAPES.index(shape), index])
    buffer = io.BytesIO()
    render_image(shape, SIZE, rng).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _per_class(images: int) -> dict[str, int]:
    """How many images each class gets: as even as possible, the first classes one more."""
    base, extra = divmod(images, len(CLASSES))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(CLASSES)}


def dataset(cache_dir: Path, images: int) -> Path:
    """A data root of `images` JPEGs in one folder per class, generated once and cached.

    Images come from a shared pool (`pool/`, generated on demand) and are hard-linked into
    `n<images>/images/`, so the folders for several counts cost one generation.
    """
    root = cache_dir / f"n{images}"
    data_root = root / "images"
    manifest = root / "manifest.json"  # beside the data root: every file in it is ingested
    wanted = _per_class(images)
    if manifest.exists() and json.loads(manifest.read_text()).get("per_class") == wanted:
        return data_root
    shutil.rmtree(root, ignore_errors=True)
    pool = cache_dir / f"pool-{SIZE}px-q{JPEG_QUALITY}-seed{SEED}"
    for shape, count in wanted.items():
        (pool / shape).mkdir(parents=True, exist_ok=True)
        (data_root / shape).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = f"{shape}_{index:05d}.jpg"
            source = pool / shape / name
            if not source.exists():
                partial = source.with_suffix(".partial")
                partial.write_bytes(_render_jpeg(shape, index))
                partial.replace(source)
            try:
                os.link(source, data_root / shape / name)
            except OSError:
                shutil.copyfile(source, data_root / shape / name)
    manifest.write_text(json.dumps({"per_class": wanted, "size": SIZE, "quality": JPEG_QUALITY,
                                    "seed": SEED}))
    return data_root


def bytes_under(data_root: Path) -> int:
    """The total size of the files under `data_root`."""
    return sum(p.stat().st_size for p in data_root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- one run


class TreeMemorySampler:
    """Samples the summed RSS of this process and all its descendants in a background thread."""

    def __init__(self, interval: float = SAMPLE_SECONDS):
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_tree = 0
        self.peak_processes = 0

    def _sample(self) -> None:
        import psutil

        total, count = 0, 0
        for process in [self._process, *self._process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
                count += 1
            except psutil.Error:  # a worker that just ended
                continue
        self.peak_tree = max(self.peak_tree, total)
        self.peak_processes = max(self.peak_processes, count)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@dataclasses.dataclass(frozen=True)
class ExecutorRun:
    """One executor run: its output artifact and where the time went."""

    examples: Any  # the Examples artifact
    construct_seconds: float  # `Executor(context)`: TFX builds its sdist for Beam here
    do_seconds: float  # `Executor.Do`
    do_cpu_self: float  # CPU seconds of `Do` in this process
    do_cpu_children: float  # ... and in its child processes (Beam's workers)


def run_executor(data_root: Path, out: Path, beam_args: Sequence[str],
                 around_do: contextlib.AbstractContextManager[Any] | None = None) -> ExecutorRun:
    """Runs the ExampleGen's driver resolution and executor on `data_root` into `out`.

    The properties are resolved by the component's own driver (`standalone.exec_properties`,
    shared with the component tests). The executor is constructed as TFX's launcher does, with
    the Beam arguments in its context; TFX then builds an ephemeral sdist of itself for Beam
    workers (`make_beam_dependency_flags`), which is timed apart from `Do`. `around_do` (a
    memory sampler) is entered around `Do` only.
    """
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    from components.image_example_gen import standalone
    from components.image_example_gen.executor import Executor

    exec_properties = standalone.exec_properties(str(data_root))
    examples = standalone.examples_artifact(str(out), exec_properties)
    start = time.perf_counter()
    executor = Executor(BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args)))
    with around_do or contextlib.nullcontext():
        constructed = time.perf_counter()
        cpu_before = cpu_seconds()
        executor.Do({}, {"examples": [examples]}, exec_properties)
        done = time.perf_counter()
        cpu_after = cpu_seconds()
    return ExecutorRun(examples, constructed - start, done - constructed,
                       cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])


def _written_bytes(out: Path) -> tuple[int, int, int]:
    """(TFRecord bytes under Split-*/, quarantine report bytes, records written)."""
    import tensorflow as tf

    from components.image_example_gen.report import REPORT_FILE

    shards = sorted(p for p in out.glob("Split-*/*") if p.is_file())
    records = sum(1 for _ in tf.data.TFRecordDataset([str(p) for p in shards],
                                                     compression_type="GZIP"))
    report = out / REPORT_FILE
    return (sum(p.stat().st_size for p in shards), report.stat().st_size if report.exists()
            else 0, records)


def cpu_seconds() -> tuple[float, float]:
    """(user+system CPU seconds of this process, of its waited-for children)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _parallelism(config: RunConfig) -> int:
    """How many cores a configuration's CPU work can use at once.

    Worker processes each use one; the in-process runners hold the GIL for most of the work
    (PIL and TensorFlow decoding and zlib release it, so multi-threading gets somewhat more).
    """
    if config.mode != "multi_processing":
        return 1
    return min(config.workers, os.cpu_count() or 1)


def measure(config: RunConfig, cache_dir: Path, repeats: int) -> dict[str, Any]:
    """Warm-up runs on a tiny folder, then `repeats` timed runs of `config`; the measurements.

    Wall and CPU figures are those of the fastest run (the least disturbed by other load on
    the machine); peak RSS is the largest over all runs.
    """
    tiny = dataset(cache_dir, WARMUP_IMAGES)
    data_root = dataset(cache_dir, config.images)
    work = Path(tempfile.mkdtemp(prefix="ingest-run-", dir=cache_dir))
    try:
        # Cold (imports, first runner start), then warm: the fixed cost of every run.
        warmup = [run_executor(tiny, work / f"warmup-{attempt}", config.beam_args())
                  for attempt in range(2)]
        runs, samplers, loads = [], [], []
        for attempt in range(repeats):
            out = work / f"examples-{attempt}"
            load_before = os.getloadavg()[0]
            samplers.append(TreeMemorySampler())
            runs.append(run_executor(data_root, out, config.beam_args(), around_do=samplers[-1]))
            loads.append((load_before, os.getloadavg()[0]))
            if attempt == 0:
                tfrecords, report, records = _written_bytes(out)
                props = runs[0].examples.mlmd_artifact.custom_properties
            shutil.rmtree(out, ignore_errors=True)
        best = min(range(repeats), key=lambda i: runs[i].do_seconds)
        run = runs[best]
        read = bytes_under(data_root)
        written = tfrecords + report
        return {
            "config": dataclasses.asdict(config),
            "name": config.name,
            "repeats": repeats,
            "seconds": run.do_seconds,
            "seconds_all": [r.do_seconds for r in runs],
            "seconds_median": statistics.median(r.do_seconds for r in runs),
            "images_per_second": config.images / run.do_seconds,
            "construct_seconds": run.construct_seconds,
            "cold_tiny_run_seconds": warmup[0].do_seconds,
            "warm_tiny_run_seconds": warmup[1].do_seconds,
            "warm_tiny_run_cpu_seconds": warmup[1].do_cpu_self + warmup[1].do_cpu_children,
            "tiny_run_images": WARMUP_IMAGES,
            "cpu_seconds_self": run.do_cpu_self,
            "cpu_seconds_children": run.do_cpu_children,
            "cpu_seconds_all": [r.do_cpu_self + r.do_cpu_children for r in runs],
            "parallelism": _parallelism(config),
            # The rate this run's CPU time allows on an idle machine, its cores busy all along.
            "cpu_bound_images_per_second": config.images * _parallelism(config)
            / (run.do_cpu_self + run.do_cpu_children),
            "ingested": props["ingested"].int_value,
            "quarantined": props["quarantined"].int_value,
            "records_written": records,
            "bytes_read": read,
            "bytes_written": written,
            "bytes_written_tfrecords": tfrecords,
            "bytes_written_report": report,
            "bytes_ratio": written / read,
            "peak_tree_rss_mb": max(s.peak_tree for s in samplers) / 2**20,
            "max_processes": max(s.peak_processes for s in samplers),
            "maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # The largest waited-for child's peak; a forked child (TFX's sdist build) counts
            # the parent's pages it inherited, so this over-states the Beam workers.
            "maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "load_average_1min_before": loads[best][0],
            "load_average_1min_after": loads[best][1],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_in_subprocess(config: RunConfig, cache_dir: Path, repeats: int) -> dict[str, Any]:
    """`measure` in a fresh interpreter, so memory and CPU figures are this run's alone."""
    with tempfile.TemporaryDirectory(prefix="ingest-result-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "benchmarks.ingest", "--run-one",
                   json.dumps(dataclasses.asdict(config)), "--cache-dir", str(cache_dir.resolve()),
                   "--repeats", str(repeats), "--result-file", str(result_file)]
        log = Path(tmp) / "log.txt"
        with log.open("w") as handle:  # from the project's root, so `benchmarks` imports
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False,
                                  cwd=PROJECT)
        if done.returncode != 0 or not result_file.exists():
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
            raise RuntimeError(f"{config.name} failed (exit {done.returncode}):\n{tail}")
        return json.loads(result_file.read_text())


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """The machine, and the library versions that matter here."""
    import apache_beam
    import PIL

    return describe(apache_beam=apache_beam.__version__, pillow=PIL.__version__,
                    note="2 cores shared with other processes: wall times carry their load "
                         "(see load averages); CPU seconds are less sensitive to it")


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares (intercept, slope, R²) of ys against xs."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return intercept, slope, (1.0 - residual / total) if total else 1.0


def _cpu_least(run: dict[str, Any]) -> float:
    """The least CPU time (main process + workers) of a configuration's repeats."""
    return min(run["cpu_seconds_all"])


def scaling_checks(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, workers) with 3+ image counts: is time linear in images, is memory flat?

    Both the wall time and the CPU time are fitted as fixed + per-image x images; the CPU fit
    (least CPU of the repeats) is the one other load on the machine disturbs least, so
    linearity is judged on it. Peak RSS is fitted the same way, for its growth per image.
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["config"]["mode"], run["config"]["workers"]), []).append(run)
    checks = []
    for (mode, workers), group in groups.items():
        group = sorted(group, key=lambda r: r["config"]["images"])
        if len({r["config"]["images"] for r in group}) < 3:
            continue
        counts = [r["config"]["images"] for r in group]
        wall_fixed, wall_slope, wall_r2 = fit_line(counts, [r["seconds"] for r in group])
        cpu_fixed, cpu_slope, cpu_r2 = fit_line(counts, [_cpu_least(r) for r in group])
        peaks = [r["peak_tree_rss_mb"] for r in group]
        _, rss_slope, _ = fit_line(counts, peaks)
        growth = peaks[-1] / peaks[0]
        input_mb_per_image = statistics.mean(r["bytes_read"] / r["config"]["images"]
                                             for r in group) / 2**20
        copies = rss_slope / input_mb_per_image
        checks.append({
            "mode": mode, "workers": workers, "images": counts,
            "wall_fixed_seconds": wall_fixed, "wall_ms_per_image": wall_slope * 1e3,
            "wall_r2": wall_r2,
            "cpu_fixed_seconds": cpu_fixed, "cpu_ms_per_image": cpu_slope * 1e3,
            "cpu_r2": cpu_r2,
            "marginal_images_per_second_wall": 1.0 / wall_slope if wall_slope > 0 else math.inf,
            "linear": cpu_r2 >= LINEAR_MIN_R2,
            "peak_rss_mb": peaks,
            "peak_rss_mb_per_1000_images": rss_slope * 1000,
            "peak_rss_growth": growth,
            "rss_growth_in_input_copies": copies,
            "memory_flat": copies < FLAT_MEMORY_MAX_COPIES,
        })
    return checks


def verdicts(run: dict[str, Any]) -> dict[str, bool]:
    """Pass/fail of one run against the issue's targets."""
    return {"images_per_second": run["images_per_second"] >= TARGET_IMAGES_PER_SECOND,
            "bytes_ratio": run["bytes_ratio"] <= TARGET_BYTES_RATIO}


def _mark(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    m = result["machine"]
    lines = [
        "# Ingestion benchmark: the image ExampleGen",
        "",
        f"Measured {result['date']} by `benchmarks/ingest.py` on {m['cpu_model']}, "
        f"{m['cores']} cores ({m['cores_usable']} usable), {m['ram_gb']} GB RAM; {m['os']}, "
        f"Python {m['python']}, Beam {m['apache_beam']}, Pillow {m['pillow']}. {m['note']}.",
        "",
        f"Input: generated {SIZE} px JPEGs (quality {JPEG_QUALITY}, {len(CLASSES)} classes, the "
        "sample-data drawings), default layout (one input split, hash-split into train/eval), "
        "gzipped TFRecord output. Each configuration runs in a fresh process: two runs "
        f"on {WARMUP_IMAGES} images (cold, then warm), so imports are not timed, then "
        f"{result['runs'][0]['repeats']} timed runs of `Do`, of which the fastest is reported "
        "(other processes on a shared machine slow some runs down). The per-run start-up of the "
        "DirectRunner (multi-processing mode starts its workers, which import Beam and "
        "TensorFlow, on every run) is timed, and shown apart as "
        "*warm 40-image `Do`* (wall, and CPU of the main process and workers). Peak RSS is the "
        "largest sum over the process and its Beam workers during `Do` (psutil, every 50 ms).",
        "",
        f"Targets: at least {TARGET_IMAGES_PER_SECOND:.0f} images/s and at most "
        f"{TARGET_BYTES_RATIO}x the input bytes.",
        "",
        "| configuration | `Do` s best (median) | images/s | target | CPU s (main + workers) "
        "| CPU-bound images/s | warm 40-image `Do` s (CPU s) | `Executor()` s "
        "| load avg before/after |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in result["runs"]:
        ok = verdicts(run)
        lines.append(
            f"| {run['name']} | {run['seconds']:.1f} ({run['seconds_median']:.1f}) | "
            f"{run['images_per_second']:.0f} | "
            f"{_mark(ok['images_per_second'])} | {run['cpu_seconds_self']:.1f} + "
            f"{run['cpu_seconds_children']:.1f} | {run['cpu_bound_images_per_second']:.0f} | "
            f"{run['warm_tiny_run_seconds']:.1f} ({run['warm_tiny_run_cpu_seconds']:.1f}) | "
            f"{run['construct_seconds']:.1f} | "
            f"{run['load_average_1min_before']:.1f} / {run['load_average_1min_after']:.1f} |")
    lines += [
        "",
        "*images/s* is from the fastest `Do`. *CPU-bound images/s*: images / (CPU seconds of "
        "that run / cores it can use: its worker processes, or 1 for the in-process runners, "
        "which hold the GIL for most of the work), what an otherwise idle machine would reach "
        "with those cores busy all along. *Executor()* is the executor's construction, not in "
        "`Do`: with Beam arguments, TFX builds an sdist of itself for the workers there "
        "(`make_beam_dependency_flags`).",
        "",
        "| configuration | bytes read | bytes written | ratio | target | records | quarantined "
        "| peak RSS MB | processes | maxrss main MB |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in result["runs"]:
        ok = verdicts(run)
        lines.append(
            f"| {run['name']} | {run['bytes_read']:,} | {run['bytes_written']:,} | "
            f"{run['bytes_ratio']:.3f} | {_mark(ok['bytes_ratio'])} | {run['records_written']} | "
            f"{run['quarantined']} | {run['peak_tree_rss_mb']:.0f} | {run['max_processes']} | "
            f"{run['maxrss_self_mb']:.0f} |")
    if result["scaling"]:
        lines += [
            "",
            "## Scaling",
            "",
            "Wall (fastest of the repeats) and CPU seconds (least of the repeats, main process "
            "+ workers) fitted as fixed + per-image x images. Time is linear when the CPU fit's "
            f"R² >= {LINEAR_MIN_R2} (the wall fit carries the load of other processes on a "
            "shared machine). Peak RSS is fitted the same way: memory is flat when it grows by "
            "less than "
            f"{FLAT_MEMORY_MAX_COPIES:g}x the input's bytes per image (*copies*: RSS slope / "
            "input bytes per image), i.e. the run does not hold the images in memory.",
            "",
            "| mode | images | wall: fixed s, ms/image, R² | CPU: fixed s, ms/image, R² | "
            "linear | peak RSS MB | MB per 1000 images | copies | flat |",
            "| --- | --- | --- | --- | --- | --- | ---: | ---: | --- |",
        ]
        for c in result["scaling"]:
            lines.append(
                f"| {c['mode']} x{c['workers']} | {'/'.join(map(str, c['images']))} | "
                f"{c['wall_fixed_seconds']:.1f}, {c['wall_ms_per_image']:.2f}, "
                f"{c['wall_r2']:.3f} | {c['cpu_fixed_seconds']:.1f}, "
                f"{c['cpu_ms_per_image']:.2f}, {c['cpu_r2']:.3f} | {_mark(c['linear'])} | "
                f"{' / '.join(f'{m:.0f}' for m in c['peak_rss_mb'])} | "
                f"{c['peak_rss_mb_per_1000_images']:.0f} | "
                f"{c['rss_growth_in_input_copies']:.1f} | "
                f"{_mark(c['memory_flat'])} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def _configs(images: int, scaling: Sequence[int]) -> list[RunConfig]:
    configs = [RunConfig(images, "multi_processing", 2), RunConfig(images, "in_memory", 1),
               RunConfig(images, "multi_threading", 2)]
    for workers in (1, 2):
        configs += [RunConfig(n, "multi_processing", workers) for n in scaling]
    configs += [RunConfig(n, "in_memory", 1) for n in scaling]
    return configs


def summarize(runs: list[dict[str, Any]], scaling: Sequence[int], date: str,
              machine_info: dict[str, Any]) -> dict[str, Any]:
    """The results file's content: the runs, the verdict on the first (main) run, scaling."""
    main_run = runs[0]
    return {
        "date": date,
        "machine": machine_info,
        "targets": {"images_per_second": TARGET_IMAGES_PER_SECOND,
                    "bytes_ratio": TARGET_BYTES_RATIO,
                    "configuration": main_run["name"]},
        "verdict": verdicts(main_run),
        "runs": runs,
        "scaling_images": list(scaling),
        "scaling": scaling_checks([r for r in runs[1:] if r["config"]["images"] in scaling]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Runs every configuration, writes `ingest.json` and `ingest.md` into `--output`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "results")
    parser.add_argument("--images", type=int, default=5000, help="images in the main run")
    parser.add_argument("--scaling", default="1000,2000,4000",
                        help="image counts of the scaling runs (comma-separated; '' for none)")
    parser.add_argument("--cache-dir", type=Path,
                        default=PROJECT / "build" / "bench-data" / "ingest")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per configuration; the fastest is reported")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: rebuild the summary and ingest.md from the runs "
                             "in --output's ingest.json")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)  # internal: one config, as JSON
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.report_only:
        saved = json.loads((args.output / "ingest.json").read_text())
        main_images = saved["runs"][0]["config"]["images"]
        scaling = saved.get("scaling_images") or sorted(
            {r["config"]["images"] for r in saved["runs"]} - {main_images})
        result = summarize(saved["runs"], scaling, saved["date"], saved["machine"])
    else:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        if args.run_one:
            result = measure(RunConfig(**json.loads(args.run_one)), args.cache_dir, args.repeats)
            args.result_file.write_text(json.dumps(result))
            return 0
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        scaling = [int(n) for n in args.scaling.split(",") if n.strip()]
        runs = []
        for config in _configs(args.images, scaling):
            print(f"{config.name} ...", flush=True)
            dataset(args.cache_dir, config.images)  # generation is not timed
            run = measure_in_subprocess(config, args.cache_dir, args.repeats)
            print(f"  {run['seconds']:.1f} s, {run['images_per_second']:.0f} images/s, ratio "
                  f"{run['bytes_ratio']:.3f}, peak RSS {run['peak_tree_rss_mb']:.0f} MB",
                  flush=True)
            runs.append(run)
        result = summarize(runs, scaling, date, machine())
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output / "ingest.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
