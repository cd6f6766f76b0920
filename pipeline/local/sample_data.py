"""Deterministic synthetic image datasets: one folder of images per class.

Each class is a shape kind drawn at a random position, size, rotation and colour on a noisy,
randomly tinted background, so the only signal a classifier can use is the shape itself.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "cross", "square", "triangle", "ring", "stripes", "star", "diamond")


@dataclasses.dataclass(frozen=True)
class SampleDataReport:
    """What `write_sample_data` wrote."""

    root: Path
    class_names: tuple[str, ...]
    files_per_class: int
    jpeg_files: int
    png_files: int


def _polygon(cx: float, cy: float, radius: float, sides: int, angle: float) -> list[tuple]:
    return [
        (cx + radius * math.cos(angle + 2 * math.pi * k / sides),
         cy + radius * math.sin(angle + 2 * math.pi * k / sides))
        for k in range(sides)
    ]


def _star(cx: float, cy: float, radius: float, angle: float) -> list[tuple]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.45
        a = angle + math.pi * k / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, size: int, rng: np.random.Generator,
                colour: tuple[int, int, int]) -> None:
    radius = size * rng.uniform(0.18, 0.32)
    cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    width = max(2, int(radius * 0.3))
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, radius * 1.2, 4, angle), fill=colour)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, radius * 1.2, 3, angle), fill=colour)
    elif shape == "diamond":
        points = _polygon(cx, cy, radius * 1.2, 4, 0.0)
        draw.polygon([(x, cy + (y - cy) * 1.6) for x, y in points], fill=colour)
    elif shape == "cross":
        for a in (angle, angle + math.pi / 2):
            dx, dy = radius * math.cos(a), radius * math.sin(a)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=colour, width=width)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=width)
    elif shape == "stripes":
        for offset in (-0.6, 0.0, 0.6):
            x = cx + offset * radius
            draw.line((x, cy - radius, x, cy + radius), fill=colour, width=width)
    elif shape == "star":
        draw.polygon(_star(cx, cy, radius * 1.2, angle), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def render_image(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """Draws one `shape` on a noisy background of `size` x `size` pixels."""
    background = rng.integers(0, 256, size=3)
    noise = rng.normal(0.0, 18.0, size=(size, size, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    # A colour far from the background so the shape is always visible.
    colour = tuple(int(c) for c in (background + 128 + rng.integers(-40, 40, size=3)) % 256)
    _draw_shape(ImageDraw.Draw(image), shape, size, rng, colour)
    return image


def write_sample_data(root: Path, class_names: tuple[str, ...], per_class: int, size: int,
                      seed: int) -> SampleDataReport:
    """Writes `per_class` images of each shape in `class_names` to `root/<class>/`.

    Every third image is PNG, the rest JPEG. The same arguments always give the same bytes.
    """
    unknown = [name for name in class_names if name not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    jpeg = png = 0
    for name in class_names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            # Each image has its own stream, so a class's images do not depend on other classes.
            rng = np.random.default_rng([seed, SHAPES.index(name), i])
            image = render_image(name, size, rng)
            if i % 3 == 2:
                image.save(folder / f"{name}_{i:05d}.png", format="PNG")
                png += 1
            else:
                image.save(folder / f"{name}_{i:05d}.jpg", format="JPEG", quality=90)
                jpeg += 1
    return SampleDataReport(root, tuple(class_names), per_class, jpeg, png)
