"""A Beam SDK worker's boot, as the Python SDK container's does it, for an external worker pool.

Usage (by Beam's worker pool, never by hand):
`python -m apache_beam.runners.worker.worker_pool_main --service_port=P
--container_executable=<a wrapper running this file>`. The pool's `StartWorker` runs the
executable with `--id --logging_endpoint --artifact_endpoint --provision_endpoint
--control_endpoint` (`apache_beam/runners/worker/worker_pool_main.py`); without an executable,
Beam's pool starts a bare `SdkHarness` that installs nothing, so staged packages never reach
it. This file does what the container's Go boot does (apache/beam
`sdks/python/container/boot.go`, `launchSDKProcess`, and `piputil.go`):

1. the provision info from the provision endpoint, with the worker id in the call's metadata
   (the endpoints it names take precedence over the flags);
2. a fresh virtual environment for this worker with the image's packages visible
   (`setupVenv`: `python -m venv --system-site-packages`);
3. the staged artifacts retrieved from the artifact endpoint into `<dir>/staged`
   (`artifact.Materialize`: ResolveArtifacts, then GetArtifact for each);
4. their installation (`installSetupPackages`): `requirements.txt` (`--no-index --no-deps
   --find-links`, then with dependencies), each file of `extra_packages.txt` in order
   (`--upgrade --force-reinstall --no-deps`, then plain `pip install` for its dependencies),
   and `workflow.tar.gz` (`--setup_file`);
5. `python -m apache_beam.runners.worker.sdk_worker_main` with `PIPELINE_OPTIONS` (the
   options as JSON), `SEMI_PERSISTENT_DIRECTORY`, `LOGGING_API_SERVICE_DESCRIPTOR`,
   `CONTROL_API_SERVICE_DESCRIPTOR`, `RUNNER_CAPABILITIES`, `WORKER_ID` set.

Three differences, for running beside a test rather than in a container. The "image" is the
Python this file runs with, itself a virtual environment, whose site-packages a venv's
`--system-site-packages` cannot see: a `.pth` line adds that folder as a plain path (so its own
`.pth` files, such as an editable install of the repository, are not run). The venv is made and
the artifacts installed once per distinct set of staged files (by their SHA-256), under a file
lock, and reused by later workers, as boot.go did before its venvs
(`multiProcessExactlyOnce`, "beam.install.complete.<pool id>", at apache/beam commit 0067f0f):
every component's Beam job starts its workers anew, and pip's dependency check takes tens of
seconds. And the worker is exec'd rather than supervised, its output going to
`<dir>/worker.log`: Beam's pool pipes the executable's stdout and never reads it. Boot steps are
logged to `<dir>/boot.log`; `<dir>` is `$BEAM_BOOT_DIR/<worker id>`, the venvs are
`$BEAM_BOOT_DIR/venv-<digest>`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (
    beam_artifact_api_pb2,
    beam_artifact_api_pb2_grpc,
    beam_provision_api_pb2,
    beam_provision_api_pb2_grpc,
    beam_runner_api_pb2,
    endpoints_pb2,
)
from google.protobuf import json_format

SDK_HARNESS = "apache_beam.runners.worker.sdk_worker_main"
# These names as in apache_beam/runners/portability/stager.py.
REQUIREMENTS_FILE = "requirements.txt"
EXTRA_PACKAGES_FILE = "extra_packages.txt"
WORKFLOW_FILE = "workflow.tar.gz"


def provision_info(endpoint: str, worker_id: str) -> beam_provision_api_pb2.ProvisionInfo:
    """The job's provision info; the runner finds the worker by the `worker_id` metadata."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        return stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                     metadata=[("worker_id", worker_id)]).info


def materialize(endpoint: str, worker_id: str,
                dependencies: list[beam_runner_api_pb2.ArtifactInformation],
                staged: Path) -> list[str]:
    """Retrieves every staged artifact into `staged`, named by its staging name."""
    staged.mkdir(parents=True, exist_ok=True)
    metadata = [("worker_id", worker_id)]
    names = []
    with grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length",
                                                   64 << 20)]) as channel:
        stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        resolved = stub.ResolveArtifacts(beam_artifact_api_pb2.ResolveArtifactsRequest(
            artifacts=dependencies), metadata=metadata).replacements
        for artifact in resolved:
            if artifact.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
                raise RuntimeError(f"artifact role {artifact.role_urn} is not a staged file")
            name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
                artifact.role_payload).staged_name
            with (staged / name).open("wb") as handle:
                for chunk in stub.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(
                        artifact=artifact), metadata=metadata):
                    handle.write(chunk.data)
            names.append(name)
    return names


def make_venv(directory: Path) -> Path:
    """A venv seeing the image's packages (see the module's docstring); its python."""
    venv.EnvBuilder(system_site_packages=True, clear=True, with_pip=False).create(directory)
    python = directory / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; "
                             "print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    image = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    Path(target, "_image_site_packages.pth").write_text("".join(p + "\n" for p in image))
    return python


def install(python: Path, staged: Path, names: list[str], log) -> None:
    """`installSetupPackages` of boot.go: requirements, extra packages, the workflow."""

    def pip(*args: str) -> None:
        print("pip", *args, file=log, flush=True)
        subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                       stdout=log, stderr=log, check=True)

    if REQUIREMENTS_FILE in names:
        requirements = str(staged / REQUIREMENTS_FILE)
        pip("install", "-r", requirements, "--no-index", "--no-deps", "--find-links", str(staged))
        pip("install", "-r", requirements, "--find-links", str(staged))
    if EXTRA_PACKAGES_FILE in names:
        for package in (staged / EXTRA_PACKAGES_FILE).read_text().split():
            pip("install", "--upgrade", "--force-reinstall", "--no-deps", str(staged / package))
            pip("install", str(staged / package))
    if WORKFLOW_FILE in names:
        pip("install", str(staged / WORKFLOW_FILE))


def main() -> None:
    """Provision, materialize, install, then exec the SDK harness."""
    parser = argparse.ArgumentParser()
    for flag in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint",
                 "control_endpoint"):
        parser.add_argument(f"--{flag}", default="")
    args, _ = parser.parse_known_args()
    work = Path(os.environ["BEAM_BOOT_DIR"]) / args.id
    work.mkdir(parents=True, exist_ok=True)
    with (work / "boot.log").open("a") as log:
        print(f"boot {args.id}: pid {os.getpid()}, {sys.executable}", file=log, flush=True)
        info = provision_info(args.provision_endpoint, args.id)
        logging_url = info.logging_endpoint.url or args.logging_endpoint
        artifact_url = info.artifact_endpoint.url or args.artifact_endpoint
        control_url = info.control_endpoint.url or args.control_endpoint
        names = materialize(artifact_url, args.id, list(info.dependencies), work / "staged")
        print("staged:", *names, file=log, flush=True)
        digest = hashlib.sha256()
        for name in sorted(names):
            digest.update(name.encode() + b"\0" + (work / "staged" / name).read_bytes())
        environment = work.parent / f"venv-{digest.hexdigest()[:16]}"
        with (work.parent / f"{environment.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one installation; the other workers wait
            python = environment / "bin" / "python"
            if not (environment / "installed").exists():
                make_venv(environment)
                install(python, work / "staged", names, log)
                (environment / "installed").touch()
            print(f"environment: {environment}", file=log, flush=True)
    env = dict(os.environ, VIRTUAL_ENV=str(environment),
               PATH=f"{environment / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               WORKER_ID=args.id,
               PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
               SEMI_PERSISTENT_DIRECTORY=str(work),
               LOGGING_API_SERVICE_DESCRIPTOR=str(endpoints_pb2.ApiServiceDescriptor(
                   url=logging_url)),
               CONTROL_API_SERVICE_DESCRIPTOR=str(endpoints_pb2.ApiServiceDescriptor(
                   url=control_url)),
               RUNNER_CAPABILITIES=" ".join(info.runner_capabilities))
    if info.HasField("status_endpoint"):
        env["STATUS_API_SERVICE_DESCRIPTOR"] = str(info.status_endpoint)
    output = os.open(work / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.execve(str(python), [str(python), "-m", SDK_HARNESS], env)


if __name__ == "__main__":
    main()
