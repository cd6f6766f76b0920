"""Serving benchmark: TF Serving's gRPC API through `imgpipe serve`, against the model in process.

Measures, on the same encoded images (150 px JPEGs of the sample-data shapes):

- single-image latency, p50 and p99: one client, one image per call. In process, that is the
  SavedModel's `serving_default` called directly (`tf.saved_model.load`) with its outputs read
  back as numpy; through gRPC, a `serving.client.grpc_client.ServingClient` Predict call to
  `imgpipe serve` running in its own process (started from the console script, as a user
  would), answer decoded. The two are measured in alternating rounds, so background load
  shifts both alike.
- throughput with 8 concurrent clients: 8 threads calling for a fixed time, one image per call,
  each thread with its own gRPC channel; in process, 8 threads calling the same function.

Target: gRPC p50 at most 1.3 times the in-process p50.

Without `--model-base-path`, the model is built the way tests/serving/conftest.py builds it: a
Transform graph of `trainer.transform.preprocessing_fn` at 75 px, InceptionV3 with a random
frozen base and a 16-unit head, saved through `trainer.export.build_serving_module`.

Usage: `.venv/bin/python -m benchmarks.serving --output benchmarks/results
[--model-base-path DIR --model-name NAME]`; writes serving.json and serving.md.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet C++ logs

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import describe, write_results  # noqa: E402

SIZE = 75
IMAGE_PIXELS = 150
CLASSES = ("circle", "cross", "star")
CLIENTS = 8
TARGET_RATIO = 1.3
IMGPIPE = str(Path(sys.executable).parent / "imgpipe")


def build_model(base_path: Path) -> None:
    """Writes BASE/1 as the serving tests build their model (see the module docstring)."""
    from tensorflow_transform import TFTransformOutput

    from benchmarks.fixtures import build_transform_graph
    from trainer import export
    from trainer import model as model_lib
    from trainer.augment import AugmentConfig
    from trainer.hparams import HParams

    graph = build_transform_graph(base_path.parent / "transform", SIZE)
    hp = HParams(class_names=CLASSES, image_size=SIZE, weights="none", dense_units=(16,),
                 augment=AugmentConfig.off())
    tf.keras.utils.set_random_seed(0)
    model = model_lib.build_model(hp)
    module, signatures = export.build_serving_module(
        model, TFTransformOutput(str(graph)), CLASSES, SIZE)
    tf.saved_model.save(module, str(base_path / "1"), signatures=signatures)


def make_images(count: int = 16) -> list[bytes]:
    """Encoded 150 px JPEGs of the sample-data shapes, as `imgpipe sample-data` draws them."""
    from pipeline.local.sample_data import render_image

    images = []
    for i in range(count):
        buffer = io.BytesIO()
        render_image(CLASSES[i % len(CLASSES)], IMAGE_PIXELS, np.random.default_rng(i)).save(
            buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def start_server(base_path: Path, model_name: str) -> tuple[subprocess.Popen, int]:
    """`imgpipe serve` on a free port; returns the process and its gRPC port."""
    process = subprocess.Popen(
        [IMGPIPE, "serve", "--model-base-path", str(base_path), "--model-name", model_name,
         "--port", "0", "--no-rest"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=300)
        except queue.Empty:
            process.kill()
            raise RuntimeError("imgpipe serve did not start within 300 s") from None
        match = re.search(r":(\d+) \(gRPC\)", line)
        if match:
            return process, int(match.group(1))


def latencies(call: Callable[[bytes], Any], images: list[bytes], count: int) -> list[float]:
    """Seconds per call, one image per call, cycling through `images`."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        call(images[i % len(images)])
        times.append(time.perf_counter() - start)
    return times


def throughput(make_call: Callable[[], Callable[[bytes], Any]], images: list[bytes],
               seconds: float, clients: int = CLIENTS) -> float:
    """Calls per second with `clients` threads calling for `seconds` (after one call each)."""
    counts = [0] * clients
    ready = threading.Barrier(clients + 1)
    stop = threading.Event()

    def run(index: int) -> None:
        call = make_call()
        call(images[index % len(images)])  # the thread's first call (channel set-up) not counted
        ready.wait()
        i = index
        while not stop.is_set():
            call(images[i % len(images)])
            counts[index] += 1
            i += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def summary(times: list[float]) -> dict[str, float]:
    """p50, p99 and mean of a list of seconds, in milliseconds."""
    ms = np.array(times) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2), "calls": len(times)}


def machine() -> dict[str, Any]:
    """The machine, and the library versions that matter here."""
    import grpc

    return describe(tensorflow=tf.__version__, grpcio=grpc.__version__,
                    note="cores shared with other processes: see the load averages")


def run(base_path: Path, model_name: str, rounds: int, per_round: int,
        seconds: float) -> dict[str, Any]:
    """Both measurements on the newest version under `base_path`."""
    from serving.client.grpc_client import ServingClient
    from serving.client.results import ModelTarget
    from serving.layout import version_dirs

    versions = version_dirs(str(base_path))
    if not versions:
        raise SystemExit(f"no version under {base_path}")
    version = max(versions)
    images = make_images()
    serve = tf.saved_model.load(versions[version]).signatures["serving_default"]

    def in_process(image: bytes) -> Any:
        out = serve(image_bytes=tf.constant([image]))
        return out["probabilities"].numpy(), out["classes"].numpy()

    process, port = start_server(base_path, model_name)
    target = ModelTarget(model_name)
    try:
        client = ServingClient(f"127.0.0.1:{port}")

        def through_grpc(image: bytes) -> Any:
            return client.predict([image], target)

        for call in (in_process, through_grpc):  # first calls: graph optimisation, channel
            latencies(call, images, 10)
        local_times: list[float] = []
        grpc_times: list[float] = []
        for _ in range(rounds):  # alternating, so background load shifts both alike
            local_times += latencies(in_process, images, per_round)
            grpc_times += latencies(through_grpc, images, per_round)
        local_rate = throughput(lambda: in_process, images, seconds)

        def grpc_client() -> Callable[[bytes], Any]:
            own = ServingClient(f"127.0.0.1:{port}")  # one channel per client thread
            return lambda image: own.predict([image], target)

        grpc_rate = throughput(grpc_client, images, seconds)
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    local, remote = summary(local_times), summary(grpc_times)
    ratio = remote["p50_ms"] / local["p50_ms"]
    return {
        "model": {"base_path": str(base_path), "name": model_name, "version": version},
        "images": f"{len(images)} JPEGs, {IMAGE_PIXELS} px, one per call",
        "in_process": {"latency": local, "throughput_per_s": round(local_rate, 1)},
        "grpc": {"latency": remote, "throughput_per_s": round(grpc_rate, 1)},
        "p50_ratio": round(ratio, 3), "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO, "clients": CLIENTS,
        "throughput_seconds": seconds,
    }


def markdown(result: dict[str, Any]) -> str:
    """serving.md: the figures, the machine and how they were measured."""
    local, remote = result["in_process"], result["grpc"]
    m = result["machine"]
    verdict = "met" if result["target_met"] else "NOT met"
    return "\n".join([
        "# Serving benchmark",
        "",
        f"Measured {result['date']} on {m['cpu_model']}, {m['cores_usable']} usable cores "
        f"({m['os']}; Python {m['python']}, TensorFlow {m['tensorflow']}, grpcio "
        f"{m['grpcio']}); load average {result['load_average_start']} at the start, "
        f"{result['load_average_end']} at the end ({m['note']}).",
        "",
        f"Model: version {result['model']['version']} of `{result['model']['name']}` "
        f"({result['model_description']}); images: {result['images']}.",
        "",
        "| | p50 latency | p99 latency | mean | throughput, "
        f"{result['clients']} clients |",
        "| --- | --- | --- | --- | --- |",
        f"| in process (`serving_default` called directly) | {local['latency']['p50_ms']} ms | "
        f"{local['latency']['p99_ms']} ms | {local['latency']['mean_ms']} ms | "
        f"{local['throughput_per_s']} images/s |",
        f"| gRPC Predict to `imgpipe serve` | {remote['latency']['p50_ms']} ms | "
        f"{remote['latency']['p99_ms']} ms | {remote['latency']['mean_ms']} ms | "
        f"{remote['throughput_per_s']} images/s |",
        "",
        f"p50 through gRPC / in process: **{result['p50_ratio']}** (target at most "
        f"{result['target_ratio']}: {verdict}).",
        "",
        "Throughput through gRPC can match or pass the in-process figure: the server is another "
        "process, so the Python work of a call (client and server) is spread over two "
        "interpreters instead of contending for one.",
        "",
        f"Latency: {local['latency']['calls']} single-image calls each, in alternating rounds. "
        f"Throughput: {result['clients']} threads calling for {result['throughput_seconds']} s "
        "each (one gRPC channel per thread). Reproduce: `.venv/bin/python -m benchmarks.serving "
        "--output benchmarks/results`.",
        "",
    ])


def main() -> None:
    """Builds (or takes) a model, measures, writes serving.json and serving.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="folder for the results")
    parser.add_argument("--model-base-path", type=Path, default=None,
                        help="a folder of numbered versions (default: build a test model)")
    parser.add_argument("--model-name", default="bench")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    args = parser.parse_args()
    load_start = [round(x, 2) for x in os.getloadavg()]
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as work:
        if args.model_base_path is None:
            base_path = Path(work) / args.model_name
            print(f"building the test model in {base_path}", flush=True)
            build_model(base_path)
            description = (f"InceptionV3 at {SIZE} px, random frozen base, 16-unit head, "
                           f"{len(CLASSES)} classes, built as the serving tests build it")
        else:
            base_path = args.model_base_path.resolve()
            description = f"from {base_path}"
        print("measuring", flush=True)
        result = run(base_path, args.model_name, args.rounds, args.per_round, args.seconds)
        if args.model_base_path is None:
            result["model"]["base_path"] = "a temporary folder, removed after the run"
    result.update({"date": started.isoformat(timespec="seconds"), "machine": machine(),
                   "model_description": description, "load_average_start": load_start,
                   "load_average_end": [round(x, 2) for x in os.getloadavg()]})
    write_results(args.output, "serving", result, markdown(result))
    os._exit(0)  # skip TensorFlow's noisy interpreter teardown; everything is written


if __name__ == "__main__":
    main()
