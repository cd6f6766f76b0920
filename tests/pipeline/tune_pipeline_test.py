"""`--tune N`: TFX's Tuner before the Trainer, which takes its best values; the flags; bad
search spaces refused in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pipeline.cli.options import Destination, build_pipeline_config, pipeline_options
from pipeline.config import PipelineConfig
from pipeline.errors import UserError
from pipeline.pipeline import create_pipeline
from trainer.contract import HPARAMS_KEY, TUNE_KEY, TUNER_FN
from trainer.hparams import HParams
from trainer.search_space import SearchSpace, TuneConfig

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
HPARAMS = HParams(class_names=("a", "b"), weights="none")


def _components(tune: TuneConfig) -> dict:
    config = PipelineConfig(pipeline_name="shapes", pipeline_root="/tmp/root",
                            data_root="/tmp/data", serving_model_dir="/tmp/serving/shapes",
                            hparams=HPARAMS, tune=tune)
    return {component.id: component for component in create_pipeline(config).components}


def test_the_tuner_runs_before_the_trainer_which_takes_its_best_values():
    tune = TuneConfig(trials=7, algorithm="hyperband", space=SearchSpace(pooling=("avg",)))
    components = _components(tune)
    tuner, trainer, transform = components["Tuner"], components["Trainer"], components["Transform"]
    assert trainer.inputs["hyperparameters"] is tuner.outputs["best_hyperparameters"]
    assert tuner.inputs["examples"] is transform.outputs["transformed_examples"]
    assert tuner.inputs["transform_graph"] is transform.outputs["transform_graph"]
    assert tuner.exec_properties["tuner_fn"] == TUNER_FN
    custom = json.loads(tuner.exec_properties["custom_config"])
    assert TuneConfig.from_config(custom[TUNE_KEY]) == tune
    assert HParams.from_config(custom[HPARAMS_KEY]) == HPARAMS
    without = _components(TuneConfig())
    assert "Tuner" not in without and "hyperparameters" not in without["Trainer"].inputs


def _build(**options) -> TuneConfig:
    flags = click.command()(pipeline_options(lambda **_: None))
    defaults = {p.name: p.get_default(click.Context(flags)) for p in flags.params}
    destination = Destination("shapes", "/tmp/root", "/tmp/data", "/tmp/serving")
    return build_pipeline_config(destination, HPARAMS, {**defaults, **options},
                                 spans=False, given_splits=False).tune


def test_the_tune_flags_reach_the_config(tmp_path):
    assert _build() == TuneConfig()
    space = tmp_path / "space.json"
    space.write_text('{"dense_units": [64, 128], "learning_rate": [1e-4, 1e-3]}')
    built = _build(tune=5, tune_algorithm="bayesian", tune_space=str(space))
    assert built == TuneConfig(trials=5, algorithm="bayesian", space=SearchSpace(
        dense_units=(64, 128), learning_rate=(1e-4, 1e-3)))
    with pytest.raises(UserError, match="--tune-space .* needs --tune N"):
        _build(tune_space=str(space))


@pytest.mark.parametrize(("text", "expected"), [
    ('{"dropout": [0.5, 2]}', "dropout must lie in [0, 1)"),
    ('{"batch": [32]}', "unknown key(s) batch"),
    ("not json", "is not JSON"),
    (None, "cannot be read"),
])
def test_run_refuses_a_bad_search_space_in_one_line(tmp_path, text, expected):
    data = tmp_path / "data"
    for name in ("cats", "dogs"):
        (data / name).mkdir(parents=True)
        (data / name / "0.jpg").write_bytes(b"\xff\xd8\xff")
    space = tmp_path / "space.json"
    if text is not None:
        space.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [IMGPIPE, "run", "--data", str(data), "--output", str(tmp_path / "out"), "--tune", "3",
         "--tune-space", str(space), "--weights", "none"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgpipe: error: --tune-space "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()  # refused before anything was written
