"""`imgpipe run --window K`: the flag reaches the ExampleGen's configuration (no pipeline run)."""

import pytest
from click.testing import CliRunner

from components.image_example_gen.settings import window_from_exec_properties
from pipeline.cli import cli
from pipeline.cli import run as run_command
from pipeline.local.sample_data import write_sample_data
from pipeline.pipeline import create_pipeline


class _StopError(Exception):
    """Raised in place of running the pipeline, carrying what `imgpipe run` built."""


@pytest.fixture
def built(monkeypatch):
    """The PipelineConfig `imgpipe run` passes on, captured instead of running it."""
    seen = {}

    def capture(config, layout, with_report=True):
        seen["config"] = config
        raise _StopError

    monkeypatch.setattr(run_command, "run_and_summarize", capture)
    return seen


@pytest.mark.parametrize("args,spans_echo,window", [
    ([], "span 3 of 3", 1),
    (["--window", "2"], "span 3 of 3 (with span 2 in a window of 2)", 2),
    (["--window", "5"], "span 3 of 3 (with spans 1, 2 in a window of 5)", 5),
    (["--span", "2", "--window", "2"], "span 2 of 3 (with span 1 in a window of 2)", 2),
])
def test_window_reaches_the_example_gen(tmp_path, built, args, spans_echo, window):
    for span in (1, 2, 3):
        write_sample_data(tmp_path / "data" / f"span-{span}", ("circle", "cross"), 2, 32,
                          seed=span)
    result = CliRunner().invoke(cli, ["run", "--data", str(tmp_path / "data"), "--output",
                                      str(tmp_path / "out"), "--weights", "none", *args])
    assert isinstance(result.exception, _StopError), (result.output, result.exception)
    assert result.output.startswith(spans_echo + ": ")
    config = built["config"]
    assert config.layout.window == window
    example_gen = next(c for c in create_pipeline(config).components
                       if c.id == "ImageExampleGen")
    assert window_from_exec_properties(example_gen.exec_properties) == window
