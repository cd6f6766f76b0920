"""`imgpipe kfp submit|schedule|run-local` and `imgpipe vertex schedule`: runs of a compiled
package."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import check_cron
from pipeline.errors import UserError


@click.group("kfp")
def kfp_group() -> None:
    """Run a compiled package on Kubeflow Pipelines (imgpipe compile --target kubeflow)."""


@kfp_group.command("submit")
@click.option("--host", required=True, help="The KFP API, e.g. http://localhost:8080.")
@click.option("--package", required=True, type=click.Path(path_type=Path),
              help="The YAML file 'imgpipe compile --target kubeflow' wrote.")
@click.option("--experiment", default="imgpipe", show_default=True,
              help="The experiment the run goes in (created if missing).")
@click.option("--run-name", default=None, help="The run's name [default: pipeline name].")
@click.option("--namespace", default=None, help="Kubeflow namespace (multi-user installs).")
def kfp_submit(host: str, package: Path, experiment: str, run_name: str | None,
               namespace: str | None) -> None:
    """Start one run of the package."""
    from pipeline.kubeflow import submit

    run = submit.submit_run(host, package, experiment, run_name, namespace)
    click.echo(f"submitted run {run.id} ({run.name}) in experiment {experiment}: "
               f"{host.rstrip('/')}/#/runs/details/{run.id}")


@kfp_group.command("schedule")
@click.option("--host", required=True, help="The KFP API, e.g. http://localhost:8080.")
@click.option("--package", required=True, type=click.Path(path_type=Path),
              help="The YAML file 'imgpipe compile --target kubeflow' wrote.")
@click.option("--cron", required=True,
              help="Six fields, seconds first (KFP's cron): '0 0 3 * * *' is 03:00 daily.")
@click.option("--experiment", default="imgpipe", show_default=True)
@click.option("--name", "job_name", default=None,
              help="The recurring run's name [default: '<pipeline name> schedule'].")
@click.option("--namespace", default=None, help="Kubeflow namespace (multi-user installs).")
def kfp_schedule(host: str, package: Path, cron: str, experiment: str, job_name: str | None,
                 namespace: str | None) -> None:
    """Create a recurring run: one run at a time, no catch-up of missed times."""
    from pipeline.kubeflow import submit

    cron = check_cron(cron, submit.KFP_CRON_FIELDS)
    job = submit.create_recurring_run(host, package, cron, experiment, job_name, namespace)
    click.echo(f"created recurring run {job.id} ({job.name}) in experiment "
               f"{experiment}: cron '{cron}', at most one run at a time")


@kfp_group.command("run-local")
@click.argument("package", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(["kfp", "vertex"]), default=None,
              help="Run it as Kubeflow Pipelines' open-source backend or Vertex AI runs it "
                   "[default: kfp for .yaml, vertex for .json].")
@click.option("--pipeline-root", default=None,
              help="A folder for the artifacts, the store and the cache, kept across runs "
                   "[default: the package's root].")
def kfp_run_local(package: Path, backend: str | None, pipeline_root: str | None) -> None:
    """Run a package compiled with --for-run-local on this machine, as its backend would:
    every task's container command, in dependency order, with this environment's Python."""
    from pipeline.kubeflow.local_run.runner import run_package

    if backend is None:
        backend = "vertex" if package.suffix.lower() == ".json" else "kfp"

    def report(task) -> None:
        detail = f" ({task.detail})" if task.detail else ""
        click.echo(f"{task.name:<55} {task.state:<8} {task.seconds:7.1f} s{detail}")

    run = run_package(package, backend, pipeline_root, report)
    total = sum(task.seconds for task in run.tasks)
    click.echo(f"run {run.job_id} ({backend}) done in {total:.0f} s; artifacts under "
               f"{run.pipeline_root}")
    if run.pushed_to:
        click.echo(f"pushed: {run.pushed_to}")
    else:
        click.echo(f"not pushed: {run.not_pushed_because}")


@click.group("vertex")
def vertex_group() -> None:
    """Run a compiled package on Vertex AI Pipelines (imgpipe compile --target vertex)."""


@vertex_group.command("schedule")
@click.option("--cron", required=True,
              help="Five fields, '0 3 * * *' is 03:00 daily; prefix 'TZ=Europe/Paris ' for a "
                   "time zone (UTC otherwise).")
@click.option("--project", required=True, help="Google Cloud project.")
@click.option("--region", required=True, help="Vertex AI region, e.g. europe-west4.")
@click.option("--package", required=True, type=click.Path(path_type=Path),
              help="The JSON file 'imgpipe compile --target vertex' wrote.")
@click.option("--name", default=None, help="The schedule's name [default: <pipeline>-schedule].")
@click.option("--service-account", default=None, help="The service account runs use.")
def vertex_schedule(cron: str, project: str, region: str, package: Path, name: str | None,
                    service_account: str | None) -> None:
    """Create a Vertex AI schedule: one run at a time."""
    from pipeline.kubeflow import submit

    cron = check_cron(cron, submit.VERTEX_CRON_FIELDS, time_zone=True)
    import google.auth.exceptions

    try:
        schedule = submit.build_vertex_schedule(package, cron, project, region, name)
        submit.create_vertex_schedule(schedule, cron, service_account)
    except google.auth.exceptions.DefaultCredentialsError:
        raise UserError("no Google Cloud credentials found; run 'gcloud auth "
                        "application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
                        ) from None
    click.echo(f"created Vertex AI schedule {schedule.resource_name}: cron '{cron}', at most "
               "one run at a time")


