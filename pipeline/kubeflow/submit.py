"""Runs of a compiled package: Kubeflow Pipelines through `kfp.Client` (kfp 2.5, API v2beta1),
Vertex AI through google-cloud-aiplatform's `PipelineJob` and `PipelineJobSchedule`.

Every call checks the package first, with the checks `imgpipe compile` ran, so a wrong file
fails here in one line, and turns the service's refusal into one line too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

# KFP's scheduler uses robfig/cron with seconds: "second minute hour day-of-month month weekday".
KFP_CRON_FIELDS = 6
# Vertex AI's schedules take the classic five fields, optionally after "TZ=..." or "CRON_TZ=...".
VERTEX_CRON_FIELDS = 5
SCHEDULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}")


@dataclasses.dataclass(frozen=True)
class Submitted:
    """What Kubeflow Pipelines created: a run or a recurring run, and its name."""

    id: str
    name: str


def load_package(package: Path, target: str) -> Any:
    """The package's PipelineSpec, refused in one line if `target` could not run it."""
    from pipeline.kubeflow import rules as kubeflow_rules
    from pipeline.kubeflow import spec as kubeflow_spec

    if not package.is_file():
        raise UserError(f"--package {package} does not exist; write it with 'imgpipe compile "
                        f"--target {target}'")
    suffixes = (".yaml", ".yml") if target == "kubeflow" else (".json",)
    if package.suffix.lower() not in suffixes:
        raise UserError(f"--package {package}: {target} takes the {' or '.join(suffixes)} file "
                        f"that 'imgpipe compile --target {target}' writes")
    spec = kubeflow_spec.read_package(package, target)
    kubeflow_rules.check_spec(spec, target, str(package))
    if target == "kubeflow":
        from pipeline.kubeflow import platform as kubeflow_platform

        kubeflow_platform.check_platform(
            package, set(kubeflow_spec.deployment_config(spec).executors))
    return spec


def kfp_client(host: str, namespace: str | None) -> Any:
    """`kfp.Client` for `host`; an unreachable host is a one-line error."""
    import kfp

    if not host.startswith(("http://", "https://")):
        raise UserError(f"--host {host!r} must start with http:// or https://, e.g. "
                        "http://localhost:8080 (kubectl port-forward to ml-pipeline-ui)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return kfp.Client(host=host, namespace=namespace or "kubeflow")
    except Exception as error:  # noqa: BLE001  (urllib3, the generated client and kfp all raise)
        raise UserError(f"cannot reach Kubeflow Pipelines at {host} ({first_line(error)}); "
                        "check --host and that the API server answers") from None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def submit_run(host: str, package: Path, experiment: str, run_name: str | None,
               namespace: str | None) -> Submitted:
    """Starts one run of the package on Kubeflow Pipelines at `host`."""
    spec = load_package(package, "kubeflow")
    client = kfp_client(host, namespace)
    name = run_name or spec.pipeline_info.name
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = client.create_run_from_pipeline_package(
                str(package), run_name=name, experiment_name=experiment, namespace=namespace)
    except Exception as error:  # noqa: BLE001  (ApiException, ValueError, urllib3 errors)
        raise UserError(f"Kubeflow Pipelines at {host} refused the run "
                        f"({first_line(error)})") from None
    return Submitted(result.run_id, name)


def create_recurring_run(host: str, package: Path, cron: str, experiment: str,
                         job_name: str | None, namespace: str | None) -> Submitted:
    """A recurring run of the package: one run at a time, no catch-up of missed times."""
    spec = load_package(package, "kubeflow")
    client = kfp_client(host, namespace)
    name = job_name or f"{spec.pipeline_info.name} schedule"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            experiment_id = client.create_experiment(experiment, namespace=namespace
                                                     ).experiment_id
            job = client.create_recurring_run(
                experiment_id=experiment_id, job_name=name, cron_expression=cron,
                max_concurrency=1,  # a retraining never overlaps the previous one
                no_catchup=True,  # after a pause, one run, not one per missed day
                pipeline_package_path=str(package))
    except Exception as error:  # noqa: BLE001  (ApiException, ValueError, urllib3 errors)
        raise UserError(f"Kubeflow Pipelines at {host} refused the recurring run "
                        f"({first_line(error)})") from None
    return Submitted(job.recurring_run_id, name)


def build_vertex_schedule(package: Path, cron: str, project: str, region: str,
                          name: str | None = None, credentials: Any = None) -> Any:
    """A `PipelineJobSchedule` for the package, not yet created (nothing is sent)."""
    from google.cloud import aiplatform

    spec = load_package(package, "vertex")
    name = name or f"{spec.pipeline_info.name}-schedule"
    if not SCHEDULE_NAME.fullmatch(name):
        raise UserError(f"--name {name!r}: letters, digits, ' ', '_', '.', '-', at most 128")
    job = aiplatform.PipelineJob(
        display_name=spec.pipeline_info.name, template_path=str(package), project=project,
        location=region, credentials=credentials)
    return aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=name,
                                          credentials=job.credentials)


def create_vertex_schedule(schedule: Any, cron: str, service_account: str | None) -> None:
    """Sends the schedule to Vertex AI; the API's refusal is a one-line error."""
    from google.api_core import exceptions

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            schedule.create(cron=cron, max_concurrent_run_count=1,
                            service_account=service_account)
    except exceptions.GoogleAPIError as error:
        raise UserError(f"Vertex AI refused the schedule ({first_line(error)})") from None
