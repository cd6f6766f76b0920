"""Synthetic data: deterministic, both formats, and a learnable signal."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from pipeline.local.sample_data import SHAPES, render_image, write_sample_data


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_same_bytes(tmp_path):
    write_sample_data(tmp_path / "a", ("circle", "square"), 4, 32, seed=7)
    write_sample_data(tmp_path / "b", ("circle", "square"), 4, 32, seed=7)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_sample_data(tmp_path / "c", ("circle", "square"), 4, 32, seed=8)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_layout_formats_and_sizes(tmp_path):
    report = write_sample_data(tmp_path, ("ring", "star", "cross"), 6, 48, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cross", "ring", "star"]
    assert (report.jpeg_files, report.png_files) == (12, 6)
    for path in tmp_path.rglob("*.*"):
        with Image.open(path) as image:
            assert image.size == (48, 48)
            assert image.format == {".jpg": "JPEG", ".png": "PNG"}[path.suffix]


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_draws_a_visible_figure(shape):
    pixels = np.asarray(render_image(shape, 64, np.random.default_rng(1))).astype(float)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    far = np.abs(pixels - background).sum(axis=-1) > 150
    assert 0.02 < far.mean() < 0.6


def test_unknown_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown shape"):
        write_sample_data(tmp_path, ("circle", "hexagon"), 1, 32, seed=0)
