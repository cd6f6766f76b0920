"""`imgpipe` on bad input: one clear line on stderr, exit code 2, no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")


def imgpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # As a user runs it: without the test session's own TensorFlow log setting.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([IMGPIPE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def _class(root: Path, name: str, files: int = 1) -> None:
    (root / name).mkdir(parents=True)
    for i in range(files):
        (root / name / f"{i}.jpg").write_bytes(b"\xff\xd8\xff")


def _assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("imgpipe: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("make_data,args,expected", [
    (lambda d: None, [], "does not exist"),
    (lambda d: d.mkdir(), [], "has no class folders"),
    (lambda d: _class(d, "cats"), [], "has one class (cats)"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--weights", "resnet"],
     "unknown --weights value 'resnet'"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--weights", "missing.h5"],
     "weights file missing.h5 does not exist"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--epochs", "0"], "--epochs"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--model-name", "a/b"], "--model-name"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--span", "3"],
     "--span 3 given, but"),
    (lambda d: (_class(d / "span-1", "cats"), _class(d / "span-1", "dogs")), ["--span", "2"],
     "--span 2: no folder"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--window", "2"],
     "--window 2 needs the data in span folders"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--window", "0"], "--window"),
    (lambda d: (_class(d / "train", "cats"), _class(d, "dogs")), [],
     "has a train/ folder but no eval/ folder"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--max-class-drift", "0"],
     "--max-class-drift"),
    (lambda d: (_class(d, "cats"), _class(d, "dogs")), ["--max-quarantined", "1.5"],
     "--max-quarantined"),
])
def test_run_refuses_bad_input(tmp_path, make_data, args, expected):
    data = tmp_path / "data"
    make_data(data)
    result = imgpipe("run", "--data", str(data), "--output", str(tmp_path / "out"),
                     "--weights", "none", *args, cwd=tmp_path)
    _assert_one_line_error(result, expected)
    assert not (tmp_path / "out").exists()


def test_run_refuses_output_inside_data(tmp_path):
    data = tmp_path / "data"
    _class(data, "cats")
    _class(data, "dogs")
    result = imgpipe("run", "--data", str(data), "--output", str(data / "cats" / "out"),
                     "--weights", "none", cwd=tmp_path)
    _assert_one_line_error(result, "overlap")


def test_missing_required_option_is_one_line(tmp_path):
    _assert_one_line_error(imgpipe("run", "--output", "out", cwd=tmp_path), "--data")


def test_sample_data_refuses_unknown_shapes(tmp_path):
    result = imgpipe("sample-data", str(tmp_path / "d"), "--shapes", "circle,hexagon",
                     cwd=tmp_path)
    _assert_one_line_error(result, "unknown shape(s) hexagon")


def test_pretrain_base_refuses_a_non_h5_output(tmp_path):
    _class(tmp_path / "src", "a")
    _class(tmp_path / "src", "b")
    result = imgpipe("pretrain-base", "--data", str(tmp_path / "src"), "--output", "w.bin",
                     cwd=tmp_path)
    _assert_one_line_error(result, "must end in .h5")


@pytest.mark.parametrize("args,expected", [
    (["--weights-sha256", "00"], "expected 00; the file is not the one pinned"),
    ([], "w.h5 does not fit the inception_v3 base (Unable to synchronously open"),
    (["--weights", "none", "--xla", "on"], "XLA cannot compile"),
    (["--weights", "none", "--dense-units", "12,x"], "must be comma-separated integers"),
    (["--weights", "none", "--base", "mobilenet_v2", "--image-size", "31"], "--image-size"),
])
def test_run_refuses_inconsistent_model_flags(tmp_path, args, expected):
    data = tmp_path / "data"
    _class(data, "cats")
    _class(data, "dogs")
    (tmp_path / "w.h5").write_bytes(b"weights")
    result = imgpipe("run", "--data", str(data), "--output", str(tmp_path / "out"),
                     "--weights", "w.h5", *args, cwd=tmp_path)
    _assert_one_line_error(result, expected)
    assert not (tmp_path / "out").exists()


def test_imagenet_download_failure_is_one_clear_line(monkeypatch):
    from pipeline.errors import UserError
    from pipeline.local import preflight
    from trainer import bases
    from trainer.hparams import HParams

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known\nmore detail")

    monkeypatch.setattr(bases, "build_application", offline)
    with pytest.raises(UserError, match=r"could not get ImageNet weights for inception_v3 "
                                        r"\(URL fetch failure: \[Errno -2\] Name or service not "
                                        r"known\); without internet pass --weights PATH.h5"):
        preflight.check_weights(HParams(class_names=("a", "b"), weights="imagenet"))


def test_run_refuses_weights_of_another_base(tmp_path):
    import tensorflow as tf

    data = tmp_path / "data"
    _class(data, "cats")
    _class(data, "dogs")
    mobilenet = tf.keras.applications.MobileNetV2(include_top=False, weights=None,
                                                  input_shape=(32, 32, 3))
    mobilenet.save_weights(str(tmp_path / "mobilenet.h5"))
    result = imgpipe("run", "--data", str(data), "--output", str(tmp_path / "out"),
                     "--weights", "mobilenet.h5", cwd=tmp_path)
    _assert_one_line_error(result, "does not fit the inception_v3 base (Layer count mismatch")


def test_run_refuses_an_input_scaling_that_contradicts_the_weights_files_record(tmp_path):
    import tensorflow as tf

    from trainer.scaling import record_convention

    data = tmp_path / "data"
    _class(data, "cats")
    _class(data, "dogs")
    tf.keras.applications.MobileNetV2(include_top=False, weights=None,
                                      input_shape=(32, 32, 3)).save_weights(str(tmp_path / "m.h5"))
    record_convention(str(tmp_path / "m.h5"), "unit")
    result = imgpipe("run", "--data", str(data), "--output", str(tmp_path / "out"), "--base",
                     "mobilenet_v2", "--image-size", "32", "--weights", "m.h5",
                     "--input-scaling", "caffe", cwd=tmp_path)
    _assert_one_line_error(result, "--input-scaling caffe contradicts the unit recorded in "
                                   f"{tmp_path / 'm.h5'} (by pretrain-base); drop "
                                   "--input-scaling to use the file's, or pass --input-scaling "
                                   "unit")
    assert not (tmp_path / "out" / "pipeline").exists()


def _docker_answers() -> bool:
    import docker

    try:
        docker.from_env(timeout=5).ping()
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.skipif(_docker_answers(), reason="a Docker engine answers on this machine")
def test_docker_infra_validation_without_an_engine_is_one_line(tmp_path):
    data = tmp_path / "data"
    _class(data, "cats")
    _class(data, "dogs")
    result = imgpipe("run", "--data", str(data), "--output", str(tmp_path / "out"),
                     "--weights", "none", "--infra-validation", "docker", cwd=tmp_path)
    _assert_one_line_error(result, "--infra-validation docker needs a Docker engine")
    assert "use --infra-validation local" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_data_folder_is_refused_before_tensorflow_is_imported(tmp_path):
    # The checks on the user's flags and folders come first: a typo costs a fraction of a
    # second, not TensorFlow's and TFX's import (seconds, and tens of seconds on a busy machine).
    probe = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in "
             "('tensorflow', 'tfx', 'apache_beam') if m in sys.modules), file=sys.stderr)); "
             "from pipeline.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", probe, "run", "--data", str(tmp_path / "no"),
                             "--output", str(tmp_path / "out"), "--weights", "none"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"imgpipe: error: data folder {tmp_path / 'no'} does not exist; pass --data a folder of "
        "class folders", "[]"], result.stderr
