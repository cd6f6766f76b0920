"""`imgpipe tensorboard`: finding the Trainer's logs, the error without them, a served page."""

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.tensorboard import TRAINER_LOGS, find_log_dirs, tensorboard_args
from pipeline.errors import UserError

# Runs the command as `imgpipe` does (its one-line errors).
COMMAND = ("import sys; from pipeline.cli import main; "
           "sys.argv = ['imgpipe', *sys.argv[1:]]; main()")


def _trainer_logs(output, execution: str, scalar: float = 0.5):
    """A Trainer model_run folder with TensorBoard event files, as the Keras callback writes."""
    for split in ("train", "validation"):
        with tf.summary.create_file_writer(str(output / TRAINER_LOGS / execution / split)
                                           ).as_default():
            tf.summary.scalar("epoch_accuracy", scalar, step=0)


def test_every_trainer_execution_with_logs_is_one_named_run_in_execution_order(tmp_path):
    for execution in ("12", "9"):
        _trainer_logs(tmp_path, execution)
    (tmp_path / TRAINER_LOGS / "10").mkdir()  # a Trainer that failed before logging
    runs = find_log_dirs(tmp_path)
    assert list(runs) == ["execution-9", "execution-12"]
    assert runs["execution-9"] == (tmp_path / TRAINER_LOGS / "9").resolve()
    args = tensorboard_args(runs, 0)
    assert args == ["--logdir_spec", f"execution-9:{runs['execution-9']},"
                    f"execution-12:{runs['execution-12']}", "--host", "127.0.0.1", "--port", "0"]


@pytest.mark.parametrize("make, expected", [
    (lambda root: None, "no Trainer logs under"),
    (lambda root: (root / TRAINER_LOGS / "3").mkdir(parents=True), "no Trainer logs under"),
])
def test_an_output_without_trainer_logs_is_one_clear_error(tmp_path, make, expected):
    make(tmp_path)
    with pytest.raises(UserError, match=expected) as error:
        find_log_dirs(tmp_path)
    assert f"run 'imgpipe run --output {tmp_path}' first" in str(error.value)
    with pytest.raises(UserError, match="is not a folder"):
        find_log_dirs(tmp_path / "missing")


def test_the_command_refuses_an_output_without_logs_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-c", COMMAND, "tensorboard", "--output",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"imgpipe: error: no Trainer logs under {tmp_path / TRAINER_LOGS}: no run on this output "
        f"has trained yet; run 'imgpipe run --output {tmp_path}' first"]
    assert CliRunner().invoke(cli, ["tensorboard", "--help"]).exit_code == 0


def test_tensorboard_serves_the_runs_on_a_free_loopback_port(tmp_path):
    _trainer_logs(tmp_path, "4")
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", COMMAND, "tensorboard", "--output", str(tmp_path),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        started = time.monotonic()
        line = process.stdout.readline()  # blocks until TensorBoard listens (or exits)
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, f"no URL in {line!r} (exit code {process.poll()})"
        with urllib.request.urlopen(match.group(1), timeout=30) as response:
            assert response.status == 200
        with urllib.request.urlopen(match.group(1) + "data/runs", timeout=30) as response:
            assert sorted(json.loads(response.read())) == [
                "execution-4/train", "execution-4/validation"]
        print(f"tensorboard answered {time.monotonic() - started:.1f} s after start")
    finally:
        process.terminate()  # TensorBoard exits on SIGTERM
        process.wait(timeout=30)
