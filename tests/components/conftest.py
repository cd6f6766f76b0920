"""Image files for ExampleGen tests: every good format and every kind of bad file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """`image` encoded as `fmt` bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def rgb(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A random RGB image, width x height = size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one tiny IDAT: a decompression
    bomb's shape without its bytes (it must be refused from the header alone)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def animated_gif(seed: int) -> bytes:
    """A two-frame GIF."""
    first = rgb(seed).convert("P")
    second = rgb(seed + 1).convert("P")
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second])
    return buffer.getvalue()


GOOD_KINDS = ("jpg", "JPG", "jpeg", "png", "PNG", "bmp", "gif", "cmyk", "gray", "alpha")


def good_image(kind: str, seed: int) -> tuple[str, bytes, str]:
    """(file extension, bytes, expected format) of a usable image of `kind`."""
    image = rgb(seed)
    table = {
        "jpg": ("jpg", encode(image, "JPEG"), "jpeg"),
        "JPG": ("JPG", encode(image, "JPEG"), "jpeg"),
        "jpeg": ("jpeg", encode(image, "JPEG"), "jpeg"),
        "png": ("png", encode(image, "PNG"), "png"),
        "PNG": ("PNG", encode(image, "PNG"), "png"),
        "bmp": ("bmp", encode(image, "BMP"), "bmp"),
        "gif": ("gif", animated_gif(seed), "gif"),
        "cmyk": ("jpg", encode(image.convert("CMYK"), "JPEG"), "jpeg"),
        "gray": ("png", encode(image.convert("L"), "PNG"), "png"),
        "alpha": ("png", encode(image.convert("RGBA"), "PNG"), "png"),
    }
    return table[kind]


def bad_files() -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, expected quarantine kind), one of each bad kind."""
    jpeg = encode(rgb(99), "JPEG")
    return {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "header_only.jpg": (jpeg[:100], "undecodable"),
        "notes.jpg": (b"this is a text file with an image's name\n", "not_an_image"),
        "bomb.png": (png_header_only(20_000, 20_000), "too_large"),
        "photo.webp": (encode(rgb(98), "WEBP"), "unsupported"),
        "mono.bmp": (encode(rgb(97).convert("1"), "BMP"), "undecodable"),
        "README.txt": (b"about this class\n", "unsupported"),
    }


def write(path: Path, data: bytes) -> None:
    """Writes `data` to `path`, making folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class _ImageFiles:
    """The helpers above, as one fixture (test modules cannot import each other here)."""

    GOOD_KINDS = GOOD_KINDS
    encode = staticmethod(encode)
    rgb = staticmethod(rgb)
    good_image = staticmethod(good_image)
    bad_files = staticmethod(bad_files)
    write = staticmethod(write)
    png_header_only = staticmethod(png_header_only)


@pytest.fixture
def image_files() -> type[_ImageFiles]:
    """Makers of good and bad image files."""
    return _ImageFiles
