"""Beam steps on workers that are not this process (issue 18, item 6).

ImageExampleGen, StatisticsGen and Transform of the real pipeline run on LocalDagRunner with
Beam's PortableRunner, against a local job service and an external worker pool, each a process
of its own started with neither the repository on PYTHONPATH nor in its working folder. The
pool starts each SDK worker through `beam_boot.py`, which does what the SDK container's boot
does (it retrieves the staged artifacts from the job's artifact endpoint and installs them into
a fresh venv), so our code reaches the workers only as the wheel given by `--extra_package`, as
it would reach Flink, Spark or Dataflow workers. The ExampleGen's DoFn logs its process and
file at set-up; the workers' logs reach the job service through the Fn API's logging service.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from pipeline.cli.options import Destination, build_pipeline_config, pipeline_options
from pipeline.local.sample_data import write_sample_data
from trainer.hparams import HParams

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "components", "trainer", "serving")
COMPONENTS = ("ImageExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "Transform")
SET_UP = re.compile(r"imgpipe ToExample set up in process ([0-9]+) from (\S+?\.py)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _wheel(tmp: Path) -> Path:
    """Our wheel, built from a copy of the package sources (nothing written in the repo)."""
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(source)],
                   check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("imgpipe-*.whl")
    return wheel


def _wait_for(port: int, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def beam_services(tmp_path):
    """(job endpoint, worker pool endpoint, job service log, boot folder, service pids)."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "services"  # the services' working folder: not the repository
    boot_dir = tmp_path / "workers"
    outside.mkdir()
    boot = outside / "beam_boot.py"
    shutil.copy(Path(__file__).with_name("beam_boot.py"), boot)
    executable = outside / "boot"
    executable.write_text(f"#!/bin/sh\nexec {sys.executable} {boot} \"$@\"\n")
    executable.chmod(0o755)
    job_port, pool_port = _free_port(), _free_port()
    logs = {name: outside / f"{name}.log" for name in ("job_service", "worker_pool")}
    commands = {
        "job_service": [sys.executable, "-m",
                        "apache_beam.runners.portability.local_job_service_main",
                        f"--port={job_port}", f"--staging_dir={tmp_path / 'staging'}"],
        "worker_pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                        f"--service_port={pool_port}", f"--container_executable={executable}"],
    }
    processes = {}
    try:
        for name, command in commands.items():
            with logs[name].open("w") as handle:
                processes[name] = subprocess.Popen(
                    command, cwd=outside, stdout=handle, stderr=subprocess.STDOUT,
                    env={**clean, "BEAM_BOOT_DIR": str(boot_dir)}, start_new_session=True)
        _wait_for(job_port, processes["job_service"], logs["job_service"])
        _wait_for(pool_port, processes["worker_pool"], logs["worker_pool"])
        yield (f"localhost:{job_port}", f"localhost:{pool_port}", logs["job_service"], boot_dir,
               {p.pid for p in processes.values()})
    finally:
        for process in processes.values():
            os.killpg(process.pid, 15)  # the pool's session holds its workers too
            process.wait(timeout=60)


@pytest.mark.slow
def test_beam_steps_run_on_external_workers_that_get_our_code_as_a_package(
        tmp_path, beam_services):
    from tfx import v1 as tfx

    from pipeline.pipeline import data_components
    from pipeline.results.metadata import read_latest_run

    job_endpoint, pool_endpoint, job_log, boot_dir, service_pids = beam_services
    wheel = _wheel(tmp_path)
    data = tmp_path / "data"
    write_sample_data(data, ("circle", "square"), per_class=6, size=32, seed=0)
    flags = click.command()(pipeline_options(lambda **_: None))
    options = {p.name: p.get_default(click.Context(flags)) for p in flags.params}
    config = build_pipeline_config(
        Destination("workers", str(tmp_path / "root"), str(data), str(tmp_path / "serving")),
        HParams(class_names=("circle", "square"), weights="none", image_size=75), options,
        spans=False, given_splits=False,
        beam_pipeline_args=("--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
                            "--environment_type=EXTERNAL", f"--environment_config={pool_endpoint}",
                            f"--extra_package={wheel}",
                            # Beam's default (60 s) bounds the job's state stream: a longer
                            # job fails with DEADLINE_EXCEEDED although it succeeded.
                            "--job_server_timeout=900"))
    metadata = tmp_path / "metadata.sqlite"
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=list(data_components(config)),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(metadata)),
        beam_pipeline_args=list(config.beam_pipeline_args)))

    run = read_latest_run(metadata, "workers")
    assert {name for name, state in run.states.items() if state == "complete"} == set(COMPONENTS)
    (examples,) = run.artifacts("ImageExampleGen", "examples")
    assert examples.custom_properties["ingested"].int_value == 12
    log = job_log.read_text(errors="replace")
    # Each Beam component's jobs ran on the job service (TFX's Transform runs two).
    assert log.count("Completed job in") >= 3, log[-3000:]
    # The ExampleGen's DoFn ran in worker processes, imported from the installed wheel.
    set_ups = SET_UP.findall(log)
    assert set_ups, log[-3000:]
    boot_pids = {int(m) for f in boot_dir.glob("*/boot.log")
                 for m in re.findall(r"pid ([0-9]+)", f.read_text())}
    assert len(boot_pids) >= 3  # a worker started and booted for each job
    for pid, path in set_ups:
        assert int(pid) in boot_pids and int(pid) not in service_pids | {os.getpid()}
        assert path.startswith(f"{boot_dir}/venv-"), path
        assert path.endswith("site-packages/components/image_example_gen/convert.py"), path
        assert not path.startswith(str(ROOT)), path
