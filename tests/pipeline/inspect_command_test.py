"""`imgpipe inspect-model`: the table and JSON, from flags and from a pushed SavedModel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.inspect import inspect_model  # noqa: F401  (registers the command)
from trainer import export
from trainer import model as model_lib
from trainer.hparams import HParams

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
SIZE = 75
FLAT = 3 * 3 * 768  # mixed7 at 75 px
BASE_PARAMS = 8_975_264
DEFAULT_HEAD = FLAT * 1024 + 1024 + 1024 + 1
SEEDS_HEAD = FLAT * 512 + 512 + 512 * 1024 + 1024 + 1024 + 1


def imgpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # As a user runs it: without the test session's own TensorFlow log setting.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([IMGPIPE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def _assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("imgpipe: error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_default_model_from_flags_as_json_through_the_console_script(tmp_path):
    result = imgpipe("inspect-model", "--image-size", str(SIZE), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert report["trainable_params"] == DEFAULT_HEAD
    assert report["non_trainable_params"] == BASE_PARAMS
    assert report["total_params"] == DEFAULT_HEAD + BASE_PARAMS
    assert (report["dropout_input"], report["dropout_input_units"]) == ("dense_0", 1024)
    assert report["cut_layer"] == "mixed7" and report["cut_output_shape"] == [3, 3, 768]
    assert report["batchnorm"] == {"layers": 70, "moving_statistics": 140,
                                   "call_training": False, "statistics_unchanged": True,
                                   "inference_mode": True}


def test_seeds_head_from_flags_as_a_table():
    result = CliRunner().invoke(cli, ["inspect-model", "--image-size", str(SIZE),
                                      "--dense-units", "512,1024"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"{SEEDS_HEAD + BASE_PARAMS:,} = {SEEDS_HEAD:,} trainable + {BASE_PARAMS:,} " \
           "non-trainable" in result.output
    base_row = next(line for line in lines if line.startswith("inception_v3_mixed7"))
    assert base_row.split()[3:] == ["no", "0", f"{BASE_PARAMS:,}"]
    dense_row = next(line for line in lines if line.startswith("dense_1"))
    assert dense_row.split()[3:] == ["yes", f"{512 * 1024 + 1024:,}", "0"]
    assert "dropout:    drops 20% of dense_1's 1024 outputs, in training only" in result.output
    assert "batchnorm:  70 layers, run in inference mode: yes" in result.output
    assert "base layers: all 229 frozen" in result.output


@pytest.fixture(scope="module")
def serving_dir(transform_output, tmp_path_factory) -> Path:
    """A model's serving folder with one pushed version of the default head."""
    hp = HParams(class_names=("cat", "dog"), image_size=SIZE, weights="none")
    root = tmp_path_factory.mktemp("serving") / "image_classifier"
    export.export(model_lib.build_model(hp), transform_output, hp.class_names, SIZE,
                  str(root / "1"), hparams=hp)
    return root


def test_default_head_from_a_pushed_saved_model(serving_dir):
    # The model's folder stands for its newest version.
    result = CliRunner().invoke(cli, ["inspect-model", str(serving_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["source"] == str(serving_dir / "1")
    assert report["class_names"] == ["cat", "dog"]
    assert (report["trainable_params"], report["non_trainable_params"]) == (
        DEFAULT_HEAD, BASE_PARAMS)
    assert report["dropout_input"] == "dense_0"
    assert report["batchnorm"]["inference_mode"] is True


def test_model_flags_with_a_saved_model_are_refused(serving_dir, tmp_path):
    result = imgpipe("inspect-model", str(serving_dir / "1"), "--dense-units", "512,1024",
                     cwd=tmp_path)
    _assert_one_line_error(result, "--dense-units: a SavedModel's own hyperparameters")


@pytest.mark.parametrize("make,expected", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: root, "is not a SavedModel (no saved_model.pb)"),
])
def test_bad_path_is_one_line_and_exit_code_2(tmp_path, make, expected):
    result = imgpipe("inspect-model", str(make(tmp_path)), cwd=tmp_path)
    _assert_one_line_error(result, expected)
