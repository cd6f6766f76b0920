"""`imgpipe kfp submit|schedule`: the real kfp.Client (API v2beta1) against a local KFP stand-in.

The stand-in answers the endpoints kfp 2.5's client calls (healthz, experiments, runs,
recurring runs) on 127.0.0.1 and records every request, so the tests assert on what was sent.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import UserError

API = "/apis/v2beta1"
# A package in the form Kubeflow's backend takes: schema 2.1.0, TFX's 2.1.0 container arguments.
SPEC = {
    "pipelineInfo": {"name": "image-classifier"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "tfx-1.16.0",
    "defaultPipelineRoot": "gs://bucket/root",
    "components": {"Trainer": {"executorLabel": "Trainer_executor"}},
    "deploymentSpec": {"executors": {"Trainer_executor": {"container": {
        "image": "registry.example/imgpipe:1",
        "command": ["python", "-m", "tfx.orchestration.kubeflow.v2.container."
                    "kubeflow_v2_run_executor"],
        "args": ["--executor_class_path", "x.Y", "--json_serialized_invocation_args", "{{$}}",
                 "--json_serialized_inputs_spec_args", "{}"]}}}},
    "root": {"dag": {"tasks": {"Trainer": {"componentRef": {"name": "Trainer"},
                                           "taskInfo": {"name": "Trainer"}}}}},
}


class FakeKfp(BaseHTTPRequestHandler):
    """Records requests; answers as the KFP API server does, with fixed ids."""

    requests: list = []
    experiments: dict = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict]:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        self.requests.append((self.command, url.path, parse_qs(url.query), body))
        return url.path, body

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        path, _ = self._record()
        if path == f"{API}/healthz":
            self._reply({"multi_user": False})
        elif path == f"{API}/experiments":
            self._reply({"experiments": list(self.experiments.values())})
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        path, body = self._record()
        if path == f"{API}/experiments":
            experiment = {"experiment_id": "exp-1", "display_name": body["display_name"]}
            self.experiments[body["display_name"]] = experiment
            self._reply(experiment)
        elif path == f"{API}/runs":
            self._reply({**body, "run_id": "run-1", "state": "PENDING"})
        elif path == f"{API}/recurringruns":
            self._reply({**body, "recurring_run_id": "rr-1", "status": "ENABLED"})
        else:
            self.send_error(404)


@pytest.fixture
def kfp_host():
    FakeKfp.requests, FakeKfp.experiments = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def _posts(path: str) -> list[dict]:
    return [body for method, p, _, body in FakeKfp.requests if method == "POST" and p == path]


def test_submit_creates_the_experiment_and_a_run_with_the_package_spec(kfp_host, package):
    result = CliRunner().invoke(cli, ["kfp", "submit", "--host", kfp_host, "--package",
                                      str(package), "--experiment", "retraining"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert all(path.startswith(f"{API}/") for _, path, _, _ in FakeKfp.requests)
    assert [e["display_name"] for e in _posts(f"{API}/experiments")] == ["retraining"]
    (run,) = _posts(f"{API}/runs")
    assert run["experiment_id"] == "exp-1"
    assert run["display_name"] == "image-classifier"
    assert run["pipeline_spec"] == SPEC  # the package, as uploaded, nothing lost
    assert result.output.strip() == (f"submitted run run-1 (image-classifier) in experiment "
                                     f"retraining: {kfp_host}/#/runs/details/run-1")


def test_schedule_creates_a_recurring_run_with_six_field_cron_and_one_at_a_time(kfp_host,
                                                                                   package):
    result = CliRunner().invoke(cli, ["kfp", "schedule", "--host", kfp_host, "--package",
                                      str(package), "--cron", "0  0 3 * * *"])
    assert result.exit_code == 0, (result.output, result.exception)
    (job,) = _posts(f"{API}/recurringruns")
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert int(job["max_concurrency"]) == 1
    assert job["no_catchup"] is True
    assert job["mode"] == "ENABLE"
    assert job["experiment_id"] == "exp-1"
    assert job["display_name"] == "image-classifier schedule"
    assert job["pipeline_spec"] == SPEC
    assert "created recurring run rr-1" in result.output


@pytest.mark.parametrize("cron,expected", [
    ("0 3 * * *", "has 5 fields; this scheduler takes 6"),
    ("0 0 25 * * *", "is not a valid cron expression"),
])
def test_schedule_refuses_a_wrong_cron_before_sending_anything(kfp_host, package, cron,
                                                               expected):
    result = CliRunner().invoke(cli, ["kfp", "schedule", "--host", kfp_host, "--package",
                                      str(package), "--cron", cron])
    assert isinstance(result.exception, UserError)
    assert expected in str(result.exception)
    assert FakeKfp.requests == []


def test_packages_kubeflow_cannot_run_are_refused_before_sending_anything(kfp_host, tmp_path):
    vertex = tmp_path / "pipeline.json"
    vertex.write_text("{}")
    result = CliRunner().invoke(cli, ["kfp", "submit", "--host", kfp_host, "--package",
                                      str(vertex)])
    assert "kubeflow takes the .yaml or .yml file" in str(result.exception)
    with_resolver = json.loads(json.dumps(SPEC))
    with_resolver["components"]["r"] = {"executorLabel": "r_executor"}
    with_resolver["deploymentSpec"]["executors"]["r_executor"] = {"resolver": {
        "outputArtifactQueries": {"model": {"filter": 'schema_title="tfx.Model" AND state=LIVE'}}}}
    with_resolver["root"]["dag"]["tasks"]["r"] = {"componentRef": {"name": "r"},
                                                  "taskInfo": {"name": "r"}}
    package = tmp_path / "resolver.yaml"
    package.write_text(yaml.safe_dump(with_resolver))
    result = CliRunner().invoke(cli, ["kfp", "submit", "--host", kfp_host, "--package",
                                      str(package)])
    assert "task r is a resolver, which Kubeflow Pipelines does not run" in str(result.exception)
    schema_2_0 = tmp_path / "schema-2.0.yaml"
    schema_2_0.write_text(yaml.safe_dump({**SPEC, "schemaVersion": "2.0.0"}))
    for command, *more in (["submit"], ["schedule", "--cron", "0 0 3 * * *"]):
        result = CliRunner().invoke(cli, ["kfp", command, "--host", kfp_host, "--package",
                                          str(schema_2_0), *more])
        assert isinstance(result.exception, UserError), result.output
        assert str(result.exception) == (
            f"{schema_2_0} is not a valid kubeflow pipeline: schemaVersion is 2.0.0; Kubeflow "
            "Pipelines' API server accepts 2.1.0 only (kubeflow/pipelines backend/src/apiserver/"
            "template/v2_template.go); recompile it with 'imgpipe compile --target kubeflow'")
    # A mount under a label the backend has no executor for would be ignored: the step could not
    # read its data.
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        "Transform_executor": {"pvcMount": [{"constant": "images", "mountPath": "/mnt/i"}]}}}}}}
    misplaced = tmp_path / "misplaced-mount.yaml"
    misplaced.write_text(yaml.safe_dump_all([SPEC, platform]))
    result = CliRunner().invoke(cli, ["kfp", "submit", "--host", kfp_host, "--package",
                                      str(misplaced)])
    assert isinstance(result.exception, UserError), result.output
    assert "names executor 'Transform_executor', which the pipeline does not have" in str(
        result.exception)
    assert FakeKfp.requests == []
