"""`imgpipe vertex schedule`: aiplatform's PipelineJobSchedule, built and sent, offline.

Vertex AI needs Google credentials, so the schedule is built with anonymous credentials and its
API client is replaced by one that records the request aiplatform sends.
"""

import json

import pytest
from click.testing import CliRunner
from google.auth.credentials import AnonymousCredentials

from pipeline.cli import cli
from pipeline.cli.options import check_cron
from pipeline.errors import UserError
from pipeline.kubeflow.submit import build_vertex_schedule, create_vertex_schedule

JOB = {
    "displayName": "image-classifier",
    "pipelineSpec": {
        "pipelineInfo": {"name": "image-classifier"},
        "schemaVersion": "2.0.0",
        "components": {"Trainer": {"executorLabel": "Trainer_executor"}},
        "deploymentSpec": {"executors": {"Trainer_executor": {"container": {
            "image": "europe-docker.pkg.dev/p/imgpipe/imgpipe:1", "args": ["--a"]}}}},
        "root": {"dag": {"tasks": {"Trainer": {"componentRef": {"name": "Trainer"},
                                               "taskInfo": {"name": "Trainer"}}}}},
    },
    "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/root"},
}


class RecordingScheduleClient:
    """Stands in for aiplatform's ScheduleServiceClient: keeps the request, names the result."""

    def __init__(self) -> None:
        self.requests = []

    def create_schedule(self, parent, schedule, timeout=None):
        self.requests.append((parent, schedule))
        schedule.name = f"{parent}/schedules/42"
        return schedule


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(JOB))
    return path


def test_schedule_sends_the_job_the_cron_and_one_run_at_a_time(package):
    schedule = build_vertex_schedule(package, "TZ=Europe/Paris 0 3 * * *", "my-project",
                                     "europe-west4", credentials=AnonymousCredentials())
    client = RecordingScheduleClient()
    schedule.api_client = client
    create_vertex_schedule(schedule, "TZ=Europe/Paris 0 3 * * *", "runner@p.iam.gserviceaccount")
    ((parent, sent),) = client.requests
    assert parent == "projects/my-project/locations/europe-west4"
    assert sent.display_name == "image-classifier-schedule"
    assert sent.cron == "TZ=Europe/Paris 0 3 * * *"
    assert sent.max_concurrent_run_count == 1
    job = sent.create_pipeline_job_request.pipeline_job
    assert job.pipeline_spec["pipelineInfo"]["name"] == "image-classifier"
    assert job.runtime_config.gcs_output_directory == "gs://bucket/root"
    assert job.service_account == "runner@p.iam.gserviceaccount"
    assert schedule.resource_name.endswith("/schedules/42")


@pytest.mark.parametrize("cron,expected", [
    ("0 0 3 * * *", "has 6 fields; this scheduler takes 5"),
    ("0 25 * * *", "is not a valid cron expression"),
])
def test_cli_refuses_kfp_style_or_invalid_cron(package, cron, expected):
    result = CliRunner().invoke(cli, ["vertex", "schedule", "--cron", cron, "--project", "p",
                                      "--region", "europe-west4", "--package", str(package)])
    assert isinstance(result.exception, UserError)
    assert expected in str(result.exception)


def test_cli_refuses_a_kubeflow_package_and_a_job_without_root(tmp_path, package):
    args = ["vertex", "schedule", "--cron", "0 3 * * *", "--project", "p", "--region", "r"]
    yaml_package = tmp_path / "pipeline.yaml"
    yaml_package.write_text("a: 1\n")
    result = CliRunner().invoke(cli, [*args, "--package", str(yaml_package)])
    assert "vertex takes the .json file" in str(result.exception)
    without_root = json.loads(package.read_text())
    del without_root["runtimeConfig"]
    package.write_text(json.dumps(without_root))
    result = CliRunner().invoke(cli, [*args, "--package", str(package)])
    assert "has no runtimeConfig.gcsOutputDirectory" in str(result.exception)


def test_time_zone_prefix_only_where_allowed():
    assert check_cron("TZ=Europe/Paris  0 3 * * *", 5, time_zone=True) == (
        "TZ=Europe/Paris 0 3 * * *")
    with pytest.raises(UserError, match="no time zone prefix here"):
        check_cron("TZ=Europe/Paris 0 3 * * *", 5)


def test_cli_without_credentials_is_one_clear_line(package, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    result = CliRunner().invoke(cli, ["vertex", "schedule", "--cron", "0 3 * * *", "--project",
                                      "p", "--region", "europe-west4", "--package",
                                      str(package)])
    assert isinstance(result.exception, UserError)
    assert "no Google Cloud credentials found" in str(result.exception)
