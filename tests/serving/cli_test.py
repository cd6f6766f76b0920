"""The commands: the real `imgpipe` console script end to end, and argument errors in process.

`imgpipe serve` runs as a subprocess on free ports; `imgpipe predict` runs against it as users
run it, while `imgpipe status` asks a port where nothing listens. Other variants run in process
(click's CliRunner) against the session's server: each subprocess costs a TensorFlow import.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import UserError

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
MODEL = "clf"
START_SECONDS = 240


def _env():
    # As a user runs it: without the test session's own TensorFlow log setting.
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve_process(link_versions, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    base = link_versions(root / MODEL, (1, 2))
    (base / ".last_version").write_text("2\n")
    log = open(root / "serve.log", "w+")  # a file, so a chatty server never blocks on a pipe
    process = subprocess.Popen(
        [IMGPIPE, "serve", "--model-base-path", str(base), "--model-name", MODEL,
         "--port", "0", "--rest-port", "0"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=_env())
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    output = []
    try:
        while not any(line.startswith("listening on") for line in output):
            output.append(lines.get(timeout=START_SECONDS))
    except queue.Empty:
        process.kill()
        pytest.fail(f"imgpipe serve did not start: {''.join(output)} "
                    f"{(root / 'serve.log').read_text()}")
    ports = dict((kind, int(port)) for port, kind in
                 re.findall(r"127\.0\.0\.1:(\d+) \((gRPC|REST)\)", output[-1]))
    yield {"output": output, "grpc": ports["gRPC"], "rest": ports["REST"], "process": process}
    process.send_signal(signal.SIGTERM)
    try:
        returncode = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        log.close()
    assert returncode == 0  # a clean stop on SIGTERM


@pytest.fixture(scope="module")
def client_runs(serve_process, images, tmp_path_factory):
    """`predict` on a folder, and `status` on a port where nothing listens, at once."""
    folder = tmp_path_factory.mktemp("to_classify")
    for name, data in images.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not an image: skipped in a folder")
    server = f"127.0.0.1:{serve_process['grpc']}"
    commands = {
        "predict": ["predict", "--server", server, "--model", MODEL, str(folder)],
        "closed": ["status", "--server", f"127.0.0.1:{_free_port()}", "--model", MODEL,
                   "--timeout", "20"],
    }
    started = {name: subprocess.Popen([IMGPIPE, *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=_env())
               for name, args in commands.items()}
    runs = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=START_SECONDS)
        runs[name] = (process.returncode, stdout, stderr)
    return folder, runs


def test_serve_reports_what_it_serves(serve_process):
    first = serve_process["output"][0]
    assert first.startswith(f"model {MODEL}: versions 2 from ")  # the latest, as TF Serving
    assert "(latest 1)" in first


def test_predict_prints_a_table_of_files_classes_and_probabilities(client_runs, images,
                                                                   expected):
    folder, runs = client_runs
    returncode, stdout, stderr = runs["predict"]
    assert returncode == 0, stderr
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["file", "class", "probability"]
    names = sorted(images)
    classes, probabilities = expected(2, names)
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == [str(folder / n) for n in names]
    assert [row[1] for row in rows] == classes
    assert [float(row[2]) for row in rows] == pytest.approx(probabilities.max(axis=1), abs=1e-4)
    assert lines[-1].startswith(f"model {MODEL} version 2 at ")


def test_status_prints_versions_states_and_signatures(grpc_address):
    result = _invoke("status", "--server", grpc_address, "--model", MODEL, "--metadata")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["version", "state", "status"]
    assert [line.split() for line in lines[2:4]] == [["2", "AVAILABLE", "OK"],
                                                     ["1", "AVAILABLE", "OK"]]
    assert ("  serving_default: image_bytes string [N] -> classes string [N], "
            "probabilities float32 [N, 3]") in lines


def test_a_server_that_does_not_answer_is_one_line_exit_2(client_runs):
    returncode, stdout, stderr = client_runs[1]["closed"]
    assert returncode == 2
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("imgpipe: error: no answer from 127.0.0.1:")


def _invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_predict_over_rest_with_a_label(rest_address, images, expected, tmp_path):
    (tmp_path / "a.png").write_bytes(images["star.png"])
    result = _invoke("predict", "--rest", "--server", rest_address, "--model", MODEL,
                     "--label", "stable", str(tmp_path / "a.png"))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[1] == expected(1, ["star.png"])[0][0]


def test_status_of_one_version(grpc_address):
    result = _invoke("status", "--server", grpc_address, "--model", MODEL, "--version", "1")
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.output.splitlines()[2:]] == [["1", "AVAILABLE", "OK"]]


def test_an_undecodable_file_is_named(grpc_address, images, tmp_path):
    (tmp_path / "a.png").write_bytes(images["star.png"])
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    result = _invoke("predict", "--server", grpc_address, "--model", MODEL, str(tmp_path))
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith(f"{tmp_path / 'b.jpg'}: the server refused it")


@pytest.mark.parametrize("args,message", [
    (["predict", "--server", "localhost", "--model", "m", "x.jpg"], "must be HOST:PORT"),
    (["predict", "--server", "h:1", "--model", "m", "--version", "1", "--label", "a", "x.jpg"],
     "pass one of them"),
    (["predict", "--server", "h:1", "--model", "m", "missing.jpg"], "missing.jpg does not exist"),
    (["status", "--server", "h:1", "--model", "a/b"], "--model 'a/b'"),
    (["status", "--server", "h:1", "--model", "m", "--client-cert", "c.pem"],
     "--client-cert and --client-key go together"),
    (["serve", "--model-base-path", "no/such/dir", "--model-name", "m"],
     "model base path no/such/dir of model m does not exist"),
    (["serve", "--model-base-path", ".", "--tls-cert", "c.pem"], "--tls-cert and --tls-key"),
    (["serve", "--model-config-file", "m.config", "--model-name", "m"],
     "--model-config-file replaces"),
    (["serve"], "pass --model-base-path"),
])
def test_argument_errors_are_one_line_user_errors(args, message):
    result = _invoke(*args)
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)
