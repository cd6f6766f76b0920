"""Training benchmark: the Trainer against the classic Keras recipe, and where its time goes.

Mixed precision, the bottleneck cache, a roofline, and how cost grows with the data.

All on the same generated images (`imgpipe sample-data` circles and crosses, 150 px), batch size
and machine, in one process and one run:

- recipe: the classic Keras transfer-learning script. InceptionV3 (`include_top=False`, the base
  weights below, every layer frozen) cut at `mixed7`, Flatten, Dense(1024, relu), Dropout(0.2),
  Dense(1, sigmoid), RMSprop(1e-4), fed by `ImageDataGenerator(rotation_range=40,
  width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
  horizontal_flip=True).flow_from_directory`. Its `rescale=1./255` is replaced by the base's own
  scaling (`x / 127.5 - 1`, a `preprocessing_function`, the same cost): the base was trained on
  that.
- ours: the Trainer's path, `trainer.data.make_dataset` on gzipped TFRecords of Transform's output
  (`preprocessing_fn` run on the same files: resized PNG bytes and labels) and
  `trainer.model.build_model` with the same augmentation in the graph, float32.
- ours_noaug: the same without augmentation (the uncached baseline of the cache).
- mixed: ours under mixed precision (`mixed_bfloat16` on a CPU, `mixed_float16` on a GPU).
- cache: `trainer.bottleneck`: the base's features written to disk once, then head epochs read
  from there; the assembled model is evaluated on the held-out images.

images/s is the median over the epochs after the first (the first traces the graph). Accuracy is
the full model's on a held-out set of images generated with another seed. The roofline divides
training FLOP/s (images/s x FLOPs per image, counted from the layers, see `training_flops`) by the
GFLOP/s of a 4096x4096 matrix product in the same precision. Scaling runs each size in its own
process and reports the fit's wall time and the process's peak RSS.

Usage: `.venv/bin/python -m benchmarks.train --output benchmarks/results [--epochs 4]
[--train-images 600] [--scaling 1000,2000,4000] [--end-to-end]`. `--end-to-end` also times
`imgpipe run` (with and without the cache) against the recipe as a script on 2,000 images for
10 epochs (tens of minutes). Data is cached under `build/bench-data/train/`.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet C++ logs

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import recipe  # noqa: E402
from benchmarks.fixtures import (  # noqa: E402
    image_files,
    write_images,
    write_transformed_examples,
)
from benchmarks.machine import describe, write_results  # noqa: E402
from benchmarks.roofline import matmul_gflops, training_flops  # noqa: E402
from benchmarks.train_report import BATCH, TARGETS, markdown  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
SIZE = 150
CLASSES = ("circle", "cross")
SOURCE_SHAPES = "square,triangle,ring,stripes,star,diamond"  # as `make demo` pretrains
DEFAULT_WEIGHTS = PROJECT / "build" / "demo" / "base_weights.h5"
DATA = PROJECT / "build" / "bench-data" / "train"
IMGPIPE = str(Path(sys.executable).parent / "imgpipe")


def cache_configs(mixed: str) -> dict[str, tuple[int, str, str]]:
    """The cache's configurations: name -> (head batch, 0 for BATCH; precision; the uncached
    configuration in that precision, its baseline)."""
    return {"cache": (0, "float32", "ours_noaug"), "cache_b256": (256, "float32", "ours_noaug"),
            "cache_mixed_b256": (256, mixed, "mixed_noaug")}


CACHE_BASELINES = {name: baseline for name, (_, _, baseline) in cache_configs("").items()}


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


class EpochTimer(tf.keras.callbacks.Callback):
    """Wall seconds of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def steady_rate(images: int, seconds: list[float]) -> float:
    """Images per second over the epochs after the first (median), or the only epoch's."""
    steady = seconds[1:] or seconds
    return images / statistics.median(steady)


# The data.

def prepare_data(train_images: int, eval_images: int) -> dict[str, Any]:
    """Train and held-out images (two seeds), and their transformed TFRecords."""
    train_root = write_images(DATA / f"train-{train_images}", CLASSES, train_images // 2, SIZE, 0)
    eval_root = write_images(DATA / f"eval-{eval_images}", CLASSES, eval_images // 2, SIZE, 1)
    files = {}
    for name, root in (("train", train_root), ("eval", eval_root)):
        paths, labels = image_files(root, CLASSES)
        files[name] = str(write_transformed_examples(paths, labels, root / "examples.tfrecord.gz",
                                                     SIZE))
    return {"train_root": train_root, "eval_root": eval_root, **files,
            "train_images": train_images, "eval_images": eval_images}


def ensure_weights(path: Path) -> Path:
    """The base weights; pretrained as `make demo` does when the file is missing."""
    if path.exists():
        return path
    source = DATA / "source"
    subprocess.run([IMGPIPE, "sample-data", str(source), "--shapes", SOURCE_SHAPES,
                    "--per-class", "150", "--size", str(SIZE), "--seed", "1"], check=True)
    subprocess.run([IMGPIPE, "pretrain-base", "--data", str(source), "--output", str(path),
                    "--image-size", str(SIZE)], check=True)
    return path


# The configurations.

def recipe_generator(root: Path, augment: bool, shuffle: bool):
    """The classic recipe's generator on `root/<class>/`, fed as the base was trained."""
    return recipe.recipe_generator(root, CLASSES, SIZE, BATCH, recipe.INCEPTION, augment,
                                   shuffle)


def recipe_model(weights: Path) -> tf.keras.Model:
    """The classic recipe's model, as its script builds it."""
    return recipe.recipe_model(weights, SIZE)


def run_recipe(data: dict[str, Any], weights: Path, epochs: int) -> dict[str, Any]:
    """Trains the recipe; images/s and held-out accuracy."""
    timer = EpochTimer()
    run = recipe.train_and_evaluate(data["train_root"], data["eval_root"], CLASSES, weights,
                                    SIZE, BATCH, epochs, recipe.INCEPTION, augment=True,
                                    callbacks=[timer])
    return {**run, "seconds": timer.seconds}


def our_hparams(weights: Path, epochs: int, augment: bool, precision: str,
                cache_batch_size: int | None = None, images_in_memory_mb: int = 0):
    """The Trainer's hyperparameters for these runs (the classic recipe's model and augmentation);
    `cache_batch_size` turns the bottleneck cache on with that head batch (0: BATCH)."""
    from trainer.augment import AugmentConfig
    from trainer.devices import DeviceConfig
    from trainer.hparams import HParams

    return HParams(class_names=CLASSES, image_size=SIZE, weights=str(weights), epochs=epochs,
                   batch_size=BATCH, early_stopping_patience=0, seed=0,
                   augment=AugmentConfig() if augment else AugmentConfig.off(),
                   devices=DeviceConfig(precision=precision),
                   bottleneck_cache=cache_batch_size is not None,
                   cache_batch_size=cache_batch_size or 0,
                   images_in_memory_mb=images_in_memory_mb)


def run_ours(data: dict[str, Any], hp) -> dict[str, Any]:
    """Trains through the Trainer's modules (as `run_fn` wires them); images/s and accuracy."""
    from trainer import bottleneck, devices
    from trainer import data as data_lib
    from trainer import model as model_lib

    plan = devices.plan_devices(hp.devices, devices.visible_gpus(),
                                xla_compatible=not hp.augment.geometric)
    eval_data = data_lib.make_dataset(data["eval"], SIZE, BATCH, shuffle=False)
    result: dict[str, Any] = {"plan": plan.describe()}
    tf.keras.utils.set_random_seed(hp.seed)
    with devices.devices_applied(plan) as strategy:
        with strategy.scope():
            model = model_lib.build_model(hp, compilation=plan.compilation)
        timer = EpochTimer()
        if hp.bottleneck_cache:
            with strategy.scope():
                head = bottleneck.head_model(model)
                model_lib.compile_model(head, hp.num_classes, hp.learning_rate,
                                        plan.compilation)
            with tempfile.TemporaryDirectory(prefix="bottleneck-bench-") as work:
                images = data_lib.make_dataset(data["train"], SIZE, BATCH, True, hp.seed)
                info = bottleneck.write_cache(bottleneck.feature_model(model), images,
                                              os.path.join(work, "train"))
                head.fit(bottleneck.read_cache(info, hp.head_batch_size, True, hp.seed),
                         epochs=hp.epochs,
                         callbacks=[timer], verbose=0)
            result.update(cache_seconds=info.seconds, cache_bytes=info.bytes,
                          cache_in_memory=info.describe()["in_memory"],
                          head_flops=training_flops(head))
        else:
            train_data = data_lib.make_dataset(data["train"], SIZE, BATCH, True, hp.seed,
                                               memory_bytes=hp.images_in_memory_bytes)
            model.fit(train_data, epochs=hp.epochs, callbacks=[timer], verbose=0)
        _, accuracy = model.evaluate(eval_data, verbose=0)
    result.update(model=model, seconds=timer.seconds, accuracy=float(accuracy))
    return result


def summarise(name: str, description: str, run: dict[str, Any], images: int, peak: float,
              before: list[float]) -> dict[str, Any]:
    """One configuration's figures; the model goes, the numbers stay."""
    model = run.pop("model")
    flops = run.pop("head_flops", None) or training_flops(model)
    rate = steady_rate(images, run["seconds"])
    achieved = rate * flops["total"] / 1e9
    result = {"name": name, "description": description, "images_per_s": round(rate, 2),
              "epoch_seconds": [round(s, 2) for s in run.pop("seconds")],
              "accuracy": round(run.pop("accuracy"), 4), "flops_per_image": flops,
              "achieved_gflops": round(achieved, 2), "matmul_gflops": round(peak, 1),
              "roofline_fraction": round(achieved / peak, 3), "load_before": before,
              "load_after": load(), **run}
    del model
    tf.keras.backend.clear_session()
    gc.collect()
    return result


def measure(args: argparse.Namespace, weights: Path) -> dict[str, Any]:
    """Every throughput and accuracy configuration, one after the other in this process."""
    from trainer import devices

    gpus = devices.visible_gpus()
    mixed = "mixed_float16" if gpus else "mixed_bfloat16"
    peaks = {"float32": matmul_gflops(tf.float32),
             mixed: matmul_gflops(tf.float16 if gpus else tf.bfloat16)}
    data = prepare_data(args.train_images, args.eval_images)
    images = data["train_images"]
    plan = {
        "recipe": ("the classic Keras recipe (ImageDataGenerator.flow_from_directory), float32",
                   lambda: run_recipe(data, weights, args.epochs), "float32"),
        "ours": ("Trainer input path and model, augmentation on, float32",
                 lambda: run_ours(data, our_hparams(weights, args.epochs, True, "float32")),
                 "float32"),
        "ours_held": ("the same, the decoded images held in memory (`--images-in-memory-mb "
                      "1024`)",
                      lambda: run_ours(data, our_hparams(weights, args.epochs, True, "float32",
                                                         images_in_memory_mb=1024)), "float32"),
        "ours_noaug": ("Trainer, no augmentation, float32 (the cache's uncached baseline)",
                       lambda: run_ours(data, our_hparams(weights, args.epochs, False,
                                                          "float32")), "float32"),
        "mixed": (f"Trainer, augmentation on, {mixed}",
                  lambda: run_ours(data, our_hparams(weights, args.epochs, True, mixed)), mixed),
        "mixed_noaug": (f"Trainer, no augmentation, {mixed} (the {mixed} cache's uncached "
                        "baseline)",
                        lambda: run_ours(data, our_hparams(weights, args.epochs, False, mixed)),
                        mixed),
    }
    for name, (head_batch, precision, _) in cache_configs(mixed).items():
        plan[name] = (
            f"Trainer with the bottleneck cache (no augmentation), {precision}: head epochs at "
            f"batch {head_batch or BATCH}" + (f" (`--cache-batch-size {head_batch}`)"
                                              if head_batch else ""),
            lambda b=head_batch, p=precision: run_ours(
                data, our_hparams(weights, args.head_epochs, False, p, cache_batch_size=b)),
            precision)
    results = {}
    for name in args.configs.split(","):
        description, run, precision = plan[name]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {description}", flush=True)
        before = load()
        results[name] = {**summarise(name, description, run(), images, peaks[precision],
                                     before), "precision": precision}
        print(json.dumps({k: v for k, v in results[name].items()
                          if k in ("images_per_s", "accuracy", "epoch_seconds")}), flush=True)
    end = {"float32": matmul_gflops(tf.float32),
           mixed: matmul_gflops(tf.float16 if gpus else tf.bfloat16)}
    return {"configs": results, "matmul_gflops": {k: round(v, 1) for k, v in peaks.items()},
            "matmul_gflops_end": {k: round(v, 1) for k, v in end.items()},
            "train_images": images, "eval_images": data["eval_images"], "epochs": args.epochs,
            "head_epochs": args.head_epochs, "gpus": len(gpus)}


def config_precision(config: dict[str, Any], start: dict[str, float],
                     end: dict[str, float]) -> str:
    """The precision a configuration ran in. Results written before configurations recorded it
    are matched by their peak, which is the start rate or, once re-scored, the higher of the
    start and end rates (matching only the start sent a re-scored bfloat16 run to float32)."""
    if "precision" in config:
        return config["precision"]
    for precision, rate in start.items():
        if config["matmul_gflops"] in (rate, max(rate, end.get(precision, 0.0))):
            return precision
    return "float32"


def rescore_roofline(measured: dict[str, Any]) -> None:
    """Roofline fractions against the higher of the start and end matrix-product rates: on a
    shared machine the lower one is another job's load, not the hardware's limit."""
    start, end = measured["matmul_gflops"], measured.get("matmul_gflops_end", {})
    for config in measured["configs"].values():
        precision = config_precision(config, start, end)
        peak = max(start[precision], end.get(precision, 0.0))
        config["matmul_gflops"] = peak
        config["roofline_fraction"] = round(config["achieved_gflops"] / peak, 3)


def report_only(output: Path) -> None:
    """Re-scores and re-renders an existing train.json (after a change to the report)."""
    result = json.loads((output / "train.json").read_text())
    if "configs" in result:
        rescore_roofline(result)
        result["ratios"] = ratios(result["configs"])
    if len(result.get("scaling", [])) > 1:
        result["scaling_fit"] = fit_line(result["scaling"])
    write_results(output, "train", result, markdown(result))


def ratios(configs: dict[str, Any]) -> dict[str, Any]:
    """The issue's comparisons, from whichever configurations ran."""
    out: dict[str, Any] = {}

    def rate(name: str) -> float | None:
        return configs[name]["images_per_s"] if name in configs else None

    def accuracy_gap(a: str, b: str) -> float | None:
        if a in configs and b in configs:
            return round(100 * abs(configs[a]["accuracy"] - configs[b]["accuracy"]), 2)
        return None

    if rate("recipe") and rate("ours"):
        out["ours_vs_recipe"] = round(rate("ours") / rate("recipe"), 3)
    if rate("recipe") and rate("mixed"):
        out["mixed_vs_recipe"] = round(rate("mixed") / rate("recipe"), 3)
        out["mixed_vs_ours"] = round(rate("mixed") / rate("ours"), 3) if rate("ours") else None
        out["mixed_accuracy_gap_points"] = accuracy_gap("mixed", "ours")
    cached = [name for name in configs if name in CACHE_BASELINES]
    for cache in cached:
        # Against the uncached path in the same precision, and against float32 (the CPU default).
        for baseline in dict.fromkeys((CACHE_BASELINES[cache], "ours_noaug")):
            if rate(cache) and rate(baseline):
                out[f"{cache}/{baseline}"] = {
                    "speedup": round(rate(cache) / rate(baseline), 2),
                    "accuracy_gap_points": accuracy_gap(cache, baseline)}
    if cached and "ours_noaug" in configs:
        # The most the cache can save at equal efficiency: the full pass's FLOPs over the head's
        # (the base's forward pass is what the cache removes); the same for every head batch.
        out["cache_flop_bound"] = round(configs["ours_noaug"]["flops_per_image"]["total"]
                                        / configs[cached[0]]["flops_per_image"]["total"], 1)
    out["roofline"] = {name: c["roofline_fraction"] for name, c in configs.items()}
    return out


# How cost grows: one process per size.

def scaling(sizes: list[int], weights: Path, epochs: int) -> list[dict[str, Any]]:
    """Fit time and peak RSS at each size, each in a fresh process."""
    pool = write_images(DATA / f"pool-{max(sizes)}", CLASSES, max(sizes) // 2, SIZE, 2)
    paths, labels = image_files(pool, CLASSES)
    rows = []
    for size in sizes:
        seen = dict.fromkeys(range(len(CLASSES)), 0)
        keep = []
        for i, label in enumerate(labels):  # the first size/2 images of each class
            if seen[label] < size // 2:
                keep.append(i)
                seen[label] += 1
        examples = write_transformed_examples([paths[i] for i in keep], [labels[i] for i in keep],
                                              pool / f"examples-{size}.tfrecord.gz", SIZE)
        print(f"[{time.strftime('%H:%M:%S')}] scaling: {size} images", flush=True)
        before = load()
        out = subprocess.run([sys.executable, "-m", "benchmarks.train", "--child-scaling",
                              str(examples), "--weights", str(weights), "--epochs", str(epochs)],
                             capture_output=True, text=True, check=True, cwd=PROJECT)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"images": size, **row, "example_kb": round(examples.stat().st_size / size
                                                               / 1024, 1),
                     "load_before": before, "load_after": load()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def child_scaling(examples: str, weights: Path, epochs: int) -> None:
    """In a fresh process: the Trainer's path on `examples`; prints one JSON line."""
    from trainer import data as data_lib
    from trainer import model as model_lib

    hp = our_hparams(weights, epochs, True, "float32")
    model = model_lib.build_model(hp)
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count = sum(1 for _ in tf.data.TFRecordDataset(examples, compression_type="GZIP"))
    process = psutil.Process()
    rss_start = process.memory_info().rss / 2**20
    samples = [rss_start]
    stop = threading.Event()

    def sample() -> None:  # the resident set during fit, every 50 ms
        while not stop.wait(0.05):
            samples.append(process.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = EpochTimer()
    start = time.perf_counter()
    model.fit(data_lib.make_dataset(examples, SIZE, BATCH, True, 0), epochs=epochs,
              callbacks=[timer], verbose=0)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    print(json.dumps({"records": count, "fit_seconds": round(seconds, 2),
                      "epoch_seconds": [round(x, 2) for x in timer.seconds],
                      "images_per_s": round(count * epochs / sum(timer.seconds), 2),
                      "max_rss_before_fit_mb": round(rss_built, 1),
                      "rss_at_fit_start_mb": round(rss_start, 1),
                      "peak_rss_mb": round(max(samples), 1)}))


def fit_line(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares of training time (the epochs' seconds) and peak RSS against images: slope,
    intercept, R² of time. Not `fit`'s wall time, which also holds the iterators' teardown, a
    cost that does not grow with the data (see benchmarks/README.md)."""
    x = np.array([r["images"] for r in rows], float)
    t = np.array([sum(r["epoch_seconds"]) for r in rows], float)
    rss = np.array([r["peak_rss_mb"] for r in rows], float)
    slope, intercept = np.polyfit(x, t, 1)
    r2 = 1 - np.sum((t - (slope * x + intercept)) ** 2) / max(np.sum((t - t.mean()) ** 2), 1e-12)
    return {"seconds_per_1000_images": round(1000 * slope, 2), "intercept_s": round(intercept, 2),
            "time_r2": round(float(r2), 4),
            "rss_growth_mb_per_1000_images": round(1000 * np.polyfit(x, rss, 1)[0], 1)}


# End to end: `imgpipe run` against the recipe as a script.

def child_recipe(data_root: Path, weights: Path, epochs: int) -> None:
    """The classic Keras script: train on DATA/train, validate on DATA/eval each epoch."""
    model = recipe_model(weights)
    history = model.fit(recipe_generator(data_root / "train", True, True), epochs=epochs,
                        validation_data=recipe_generator(data_root / "eval", False, False),
                        verbose=2)
    print(json.dumps({"val_accuracy": float(history.history["val_accuracy"][-1])}))


def end_to_end(images: int, epochs: int, weights: Path) -> dict[str, Any]:
    """Wall time of the recipe script and of `imgpipe run` (cache off and on), same images."""
    root = DATA / f"e2e-{images}"
    write_images(root / "train", CLASSES, int(images * 0.8) // 2, SIZE, 3)
    write_images(root / "eval", CLASSES, int(images * 0.2) // 2, SIZE, 4)
    for marker in root.glob("*/.complete"):  # imgpipe lists stray files; move them aside
        marker.rename(root / f".{marker.parent.name}-complete")
    runs = {"recipe_script": [sys.executable, "-m", "benchmarks.train", "--child-recipe",
                              str(root), "--weights", str(weights), "--epochs", str(epochs)]}
    common = ["--data", str(root), "--weights", str(weights), "--epochs", str(epochs),
              "--early-stopping-patience", "0", "--image-size", str(SIZE),
              "--batch-size", str(BATCH), "--no-warm-start"]
    results: dict[str, Any] = {"images": images, "epochs": epochs}
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as work:
        runs["imgpipe_run"] = [IMGPIPE, "run", "--output", f"{work}/plain", *common]
        runs["imgpipe_run_cache"] = [IMGPIPE, "run", "--output", f"{work}/cache", *common,
                                     "--bottleneck-cache", "on", "--no-augment"]
        for name, command in runs.items():
            print(f"[{time.strftime('%H:%M:%S')}] end to end: {name}", flush=True)
            before = load()
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
            results[name] = {"seconds": round(time.perf_counter() - start, 1),
                             "exit_code": done.returncode, "load_before": before,
                             "load_after": load(), "tail": done.stdout.strip()[-600:]}
    recipe = results["recipe_script"]["seconds"]
    results["run_vs_script"] = round(results["imgpipe_run"]["seconds"] / recipe, 3)
    results["run_cache_vs_script"] = round(results["imgpipe_run_cache"]["seconds"] / recipe, 3)
    return results


def main() -> None:
    """Measures what the flags ask for; writes train.json and train.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="folder for the results")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="no-top base weights (.h5); pretrained as `make demo` does if absent")
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--head-epochs", type=int, default=None, help="default: --epochs")
    parser.add_argument("--configs", default="recipe,ours,ours_held,ours_noaug,mixed,"
                        "mixed_noaug,cache,cache_b256,cache_mixed_b256")
    parser.add_argument("--scaling", default="1000,2000,4000", help="sizes; empty to skip")
    parser.add_argument("--scaling-epochs", type=int, default=1)
    parser.add_argument("--end-to-end", action="store_true",
                        help="also time imgpipe run against the recipe script (long)")
    parser.add_argument("--e2e-images", type=int, default=2000)
    parser.add_argument("--e2e-epochs", type=int, default=10)
    parser.add_argument("--report-only", action="store_true",
                        help="re-render OUTPUT/train.json into train.md, measuring nothing")
    parser.add_argument("--child-scaling", help=argparse.SUPPRESS)
    parser.add_argument("--child-recipe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_scaling:
        child_scaling(args.child_scaling, args.weights, args.epochs)
        return
    if args.child_recipe:
        child_recipe(args.child_recipe, args.weights, args.epochs)
        return
    if args.output is None:
        parser.error("--output is required")
    if args.report_only:
        report_only(args.output)
        return
    args.head_epochs = args.head_epochs or args.epochs
    from trainer.devices import cpu_supports_bfloat16
    started = datetime.datetime.now(datetime.timezone.utc)
    result: dict[str, Any] = {"date": started.isoformat(timespec="seconds"),
                              "load_average_start": load(),
                              "command": "python -m benchmarks.train " + " ".join(sys.argv[1:])}
    weights = ensure_weights(args.weights.resolve())  # children run from PROJECT
    result["weights"] = str(weights.relative_to(PROJECT) if weights.is_relative_to(PROJECT)
                            else weights)
    if args.configs:
        measured = measure(args, weights)
        rescore_roofline(measured)
        result.update(measured, ratios=ratios(measured["configs"]))
    sizes = [int(s) for s in args.scaling.split(",") if s]
    if sizes:
        result["scaling"] = scaling(sizes, weights, args.scaling_epochs)
        result["scaling_fit"] = fit_line(result["scaling"]) if len(sizes) > 1 else {}
    if args.end_to_end:
        result["end_to_end"] = end_to_end(args.e2e_images, args.e2e_epochs, weights)
    result.update(load_average_end=load(), targets=TARGETS,
                  machine={**describe(tensorflow=tf.__version__),
                           "cpu_bf16": cpu_supports_bfloat16()})
    write_results(args.output, "train", result, markdown(result))
    os._exit(0)  # skip TensorFlow's noisy interpreter teardown; everything is written


if __name__ == "__main__":
    main()
