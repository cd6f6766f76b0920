"""The gate end to end: a good model is pushed; a worse one (trained on shuffled labels) is not,
and the serving directory stays as it was; an interrupted push leaves nothing visible and the
next run publishes the next version."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.sample_data import write_sample_data

IMGPIPE = str(Path(sys.executable).parent / "imgpipe")
MODEL = "gate"
CLASSES = ("circle", "square")

pytestmark = pytest.mark.slow


def _imgpipe(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([IMGPIPE, *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def base_weights(tmp_path_factory) -> Path:
    """A base pretrained on the two shapes: the stand-in for ImageNet that makes a good model."""
    root = tmp_path_factory.mktemp("pretrain")
    write_sample_data(root / "source", CLASSES, 40, 75, seed=11)
    _imgpipe("pretrain-base", "--data", str(root / "source"), "--output", str(root / "base.h5"),
             "--image-size", "75", "--epochs", "4", "--batch-size", "16")
    return root / "base.h5"


def _run(data: Path, output: Path, weights: Path, *extra: str) -> dict:
    _imgpipe("run", "--data", str(data), "--output", str(output), "--weights", str(weights),
             "--image-size", "75", "--epochs", "3", "--batch-size", "16", "--no-augment",
             "--accuracy-threshold", "0", "--model-name", MODEL, *extra)
    return json.loads((output / "summary.json").read_text())


def _serving_listing(output: Path) -> dict[str, list[str]]:
    base = output / "serving" / MODEL
    return {p.name: sorted(q.name for q in p.rglob("*")) for p in sorted(base.iterdir())
            if p.is_dir()}


def _swap_half_of_the_labels(train: Path) -> list[tuple[Path, Path]]:
    """Moves every other image of each class into the other class folder: labels become noise."""
    moves = []
    for name, other in (CLASSES, CLASSES[::-1]):
        for image in sorted((train / name).iterdir())[::2]:
            moves.append((image, train / other / f"swapped_{image.name}"))
    for source, target in moves:
        source.rename(target)
    return moves


def test_worse_model_is_not_blessed_and_an_interrupted_push_leaves_nothing(tmp_path,
                                                                           base_weights):
    data, output = tmp_path / "data", tmp_path / "out"
    write_sample_data(data / "train", CLASSES, 30, 75, seed=5)
    write_sample_data(data / "eval", CLASSES, 12, 75, seed=6)

    first = _run(data, output, base_weights)
    assert first["blessed"] is True and first["eval_accuracy"] >= 0.8, first
    assert first["pushed_path"] == str(output / "serving" / MODEL / "1")
    serving_before = _serving_listing(output)

    moves = _swap_half_of_the_labels(data / "train")
    worse = _run(data, output, base_weights, "--no-warm-start")
    assert worse["blessed"] is False
    assert worse["accuracy_change"] < -0.02, worse
    assert any("against the last blessed model" in r for r in worse["not_blessed_because"])
    assert worse["pushed_path"] is None
    assert _serving_listing(output) == serving_before  # nothing added, nothing removed

    # What a push killed halfway leaves: a hidden staging folder with part of a model in it.
    for target, source in moves:
        source.rename(target)
    staging = output / "serving" / MODEL / ".tmp-2-interrupted"
    (staging / "variables").mkdir(parents=True)
    (staging / "variables" / "variables.index").write_bytes(b"partial")
    again = _run(data, output, base_weights)
    assert again["blessed"] is True
    assert again["pushed_path"] == str(output / "serving" / MODEL / "2")
    assert not staging.exists()
    assert sorted(_serving_listing(output)) == ["1", "2"]
