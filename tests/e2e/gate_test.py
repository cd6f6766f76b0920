"""The gate end to end: a good model is pushed; a worse one (trained on shuffled labels) is
refused by the paired test against it, and the serving directory stays as it was; an
interrupted push leaves nothing visible, the next run publishes the next version, and versions
beyond --keep-versions are removed."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.augment import AugmentConfig

MODEL = "gate"
CLASSES = ("bright", "dark")

pytestmark = pytest.mark.slow


def _write_images(root: Path, per_class: int, seed: int) -> None:
    """Noise images, dark or bright: a signal even a frozen base with random weights carries,
    so a good first model needs no pretrained weights (which would cost minutes here)."""
    rng = np.random.default_rng(seed)
    for name, (low, high) in zip(CLASSES, ((185, 256), (0, 70)), strict=True):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, (75, 75, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")


@pytest.fixture
def run(run_pipeline):
    def run(data: Path, output: Path, keep_versions: int = 5, warm_start: bool = True) -> dict:
        # The random base's features are small in scale: the head needs RMSprop at 1e-2.
        summary, _ = run_pipeline(data, output, MODEL, {"keep_versions": keep_versions},
                                  epochs=15, batch_size=16, learning_rate=0.01,
                                  augment=AugmentConfig.off(), warm_start=warm_start)
        return summary.to_json()

    return run


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


@pytest.mark.timeout(3600)  # three pipeline runs, up to ~7 minutes each on two busy cores
def test_worse_model_is_not_blessed_and_an_interrupted_push_leaves_nothing(tmp_path, run):
    data, output = tmp_path / "data", tmp_path / "out"
    _write_images(data / "train", 30, seed=5)
    _write_images(data / "eval", 12, seed=6)

    first = run(data, output)
    assert first["blessed"] is True and first["eval_accuracy"] >= 0.9, first
    assert first["pushed_path"] == str(output / "serving" / MODEL / "1")
    serving_before = _serving_listing(output)

    moves = _swap_half_of_the_labels(data / "train")
    worse = run(data, output, warm_start=False)
    assert worse["blessed"] is False
    assert worse["accuracy_change"] < -0.02, worse
    # Refused by the paired test on the same eval images, not by a margin on accuracy.
    assert worse["paired_test"]["overall"]["significantly_worse"], worse["paired_test"]
    assert any(r.startswith("significantly worse than the last blessed model overall")
               for r in worse["not_blessed_because"]), worse["not_blessed_because"]
    assert worse["pushed_path"] is None
    assert _serving_listing(output) == serving_before  # nothing added, nothing removed

    # What a push killed halfway leaves: a hidden staging folder with part of a model in it.
    for target, source in moves:
        source.rename(target)
    staging = output / "serving" / MODEL / ".tmp-2-interrupted"
    (staging / "variables").mkdir(parents=True)
    (staging / "variables" / "variables.index").write_bytes(b"partial")
    again = run(data, output, keep_versions=1)
    assert again["blessed"] is True
    assert again["pushed_path"] == str(output / "serving" / MODEL / "2")
    assert not staging.exists()
    assert sorted(_serving_listing(output)) == ["2"]  # version 1 is beyond --keep-versions 1
