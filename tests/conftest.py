"""Shared test set-up: Keras 2 is chosen before any test imports TensorFlow.

`transform_output` is a real Transform graph (tf.Transform's Beam API) for tests that export or
serve a model without running the pipeline. `image_files` makes image files of every good format
and every kind of bad file (the ExampleGen's and the reliability tests'). `required_tool` finds
a program the suite needs besides Python, and fails the test when it is missing: a test that
cannot check its promise must not pass as skipped.
"""

import functools
import io
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

# Keras 2 (tf_keras), as the CLI's entry point and TFX's module files choose it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from PIL import Image  # noqa: E402
from tensorflow_transform import TFTransformOutput  # noqa: E402
from tensorflow_transform.tf_metadata import (  # noqa: E402
    dataset_metadata,
    metadata_io,
    schema_utils,
)

from trainer.transform import (  # noqa: E402
    IMAGE_BYTES,
    LABEL,
    TRANSFORMED_IMAGE,
    preprocessing_fn,
)

IMAGE_SIZE = 75
# The time limit of a test without the slow marker, or a limit of its own (pyproject.toml's
# `timeout`, 1800 s, holds for the slow ones). The slowest such test measured about 80 s on two
# busy cores (the serving load test's set-up).
FAST_TEST_TIMEOUT = 600
# The programs the suite runs besides Python -> the Debian package holding each: the Makefile's
# TEST_TOOLS, which `make test-tools` installs (and `make test` runs first).
REQUIRED_TOOLS = {
    "strace": "strace",  # reliability/ingest_paths_test.py: every file the ExampleGen writes
    "chromium": "chromium",  # pipeline/report_chromium_test.py: the run report in a browser
    "setpriv": "util-linux",  # reliability/unreadable_test.py: file modes that hold for root
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests without the slow marker and without a `timeout` marker get FAST_TEST_TIMEOUT."""
    for item in items:
        if item.get_closest_marker("slow") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def required_tools() -> dict[str, str]:
    """The programs the suite needs besides Python -> the Debian package holding each."""
    return dict(REQUIRED_TOOLS)


@pytest.fixture(scope="session")
def required_tool() -> Callable[[str], str]:
    """`required_tool(name)`: the path of a program in REQUIRED_TOOLS; the test fails, naming
    the make target that installs it, when it is missing (never skips)."""

    def find(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            pytest.fail(f"{name} is not installed (Debian package {REQUIRED_TOOLS[name]}), and "
                        "this test needs it: run 'make test-tools' (as root or with sudo; "
                        "'make test' runs it first), then the tests again", pytrace=False)
        return path

    return find



def _write_records(path: Path, images: np.ndarray, labels: np.ndarray) -> str:
    """Gzipped TFRecords as Transform writes them: resized PNG bytes and the label."""
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for image, label in zip(images, labels, strict=True):
            png = tf.io.encode_png(image).numpy()
            example = tf.train.Example(features=tf.train.Features(feature={
                TRANSFORMED_IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
            writer.write(example.SerializeToString())
    return str(path)


@pytest.fixture(scope="session")
def write_records():
    """`write_records(path, uint8 images [N, S, S, 3], labels [N])`: Transform's output for them
    (what the Trainer reads), as a gzipped TFRecord file; returns its path."""
    return _write_records


@pytest.fixture(scope="session")
def transform_output(tmp_path_factory) -> TFTransformOutput:
    """Transform's output for `preprocessing_fn` at 75 px, as the Transform component writes it."""
    out = tmp_path_factory.mktemp("transform")
    raw_spec = {
        IMAGE_BYTES: tf.io.FixedLenFeature([1], tf.string),
        LABEL: tf.io.FixedLenFeature([1], tf.int64),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    fn = functools.partial(preprocessing_fn, custom_config={"image_size": IMAGE_SIZE})
    with tft_beam.Context(temp_dir=str(out / "tmp"), force_tf_compat_v1=False):
        transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(out / "transform_graph"))
    # The Transform component also records the raw schema; `raw_feature_spec()` reads it.
    metadata_io.write_metadata(
        metadata, str(out / "transform_graph" / TFTransformOutput.RAW_METADATA_DIR)
    )
    return TFTransformOutput(str(out / "transform_graph"))

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


def png_bomb(side: int, rows_per_block: int = 250) -> bytes:
    """A valid side x side grayscale PNG of zeros, about side**2 / 1000 bytes: 20,000 gives the
    issue's 390 KB file that decodes to 1.2 GB. Its IDAT repeats one compressed block of rows
    (a full flush makes blocks independent), so it is built in well under a second."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    assert side % rows_per_block == 0
    rows = (b"\x00" * (side + 1)) * rows_per_block  # filter byte 0, then the row
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = block.compress(rows) + block.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(side // rows_per_block):
        checksum = zlib.adler32(rows, checksum)
    stream = (b"\x78\xda" + compressed * (side // rows_per_block)
              + zlib.compressobj(9, zlib.DEFLATED, -15).flush() + struct.pack(">I", checksum))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream)
            + chunk(b"IEND", b""))


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


def _png(pixels: np.ndarray, color_type: int, interlaced: bool) -> bytes:
    """A PNG written by hand (Pillow writes neither 16-bit RGB nor interlaced PNGs): uint8 or
    uint16 `pixels`, [H, W] (color type 0, gray) or [H, W, 3] (2, RGB), Adam7 when interlaced."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    stored = pixels.astype(">u2") if pixels.dtype == np.uint16 else pixels
    passes = ([(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2),
               (0, 1, 2, 2), (1, 0, 2, 1)] if interlaced else [(0, 0, 1, 1)])
    raw = b"".join(b"\x00" + row.tobytes()  # filter type 0 on every row
                   for y, x, dy, dx in passes for row in np.ascontiguousarray(stored[y::dy, x::dx]))
    height, width = pixels.shape[:2]
    ihdr = struct.pack(">IIBBBBB", width, height, 8 * pixels.itemsize, color_type, 0, 0,
                       int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _ycck_jpeg(image: Image.Image) -> bytes:
    """A YCCK JPEG (Adobe APP14 transform 2) of `image`: Pillow writes CMYK only, so its CMYK
    channels are turned into YCCK as libjpeg's encoder does (`cmyk_ycck_convert` on the
    inverted samples Pillow stores) and the Adobe marker's transform byte is set to 2."""
    cmyk = np.asarray(image.convert("CMYK"), dtype=np.float64)
    r, g, b = cmyk[..., 0], cmyk[..., 1], cmyk[..., 2]  # 255 - stored C, M, Y
    stored = np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                       -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
                       0.5 * r - 0.418688 * g - 0.081312 * b + 128,
                       255 - cmyk[..., 3]], axis=-1)
    samples = np.clip(np.round(stored), 0, 255).astype(np.uint8)
    data = encode(Image.fromarray(255 - samples, "CMYK"), "JPEG", quality=95)
    transform = data.index(b"Adobe") + 11  # "Adobe", version, flags0, flags1, transform
    assert data[transform] == 0  # Pillow wrote plain CMYK
    return data[:transform] + b"\x02" + data[transform + 1:]


def _exif_rotated_jpeg(image: Image.Image) -> bytes:
    """A JPEG whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def pixel_formats(size: int) -> dict[str, tuple[bytes, np.ndarray]]:
    """Every pixel format a user may bring -> (file bytes, the RGB pixels it must decode to).

    The reference is Pillow's `.convert("RGB")` of the file as stored, except where Pillow's
    own is not the picture: a 16-bit grayscale PNG (Pillow clips its values at 255) is its
    high byte, and a GIF's transparent pixels are black (TensorFlow's giflib decoder paints
    them so; PNG transparency keeps the stored colour, as Pillow does). EXIF orientation is not
    applied anywhere (docs/data.md).
    """
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    pixels[: size // 3] = pixels[0, 0]  # a flat band: a palette colour GIF's transparency hits
    image = Image.fromarray(pixels, "RGB")
    palette = image.convert("P")
    transparent = int(np.asarray(palette)[0, 0])
    gray16 = (np.asarray(image.convert("L")).astype(np.uint16) * 256  # low bytes at random
              + rng.integers(0, 256, (size, size)).astype(np.uint16))
    rgb16 = np.minimum(pixels.astype(np.int64) * 257 + 100, 65535).astype(np.uint16)
    files = {
        "rgb.jpg": encode(image, "JPEG", quality=90),
        "progressive.jpg": encode(image, "JPEG", quality=90, progressive=True),
        "gray.jpg": encode(image.convert("L"), "JPEG", quality=90),
        "cmyk.jpg": encode(image.convert("CMYK"), "JPEG", quality=90),
        "ycck.jpg": _ycck_jpeg(image),
        "exif-rotated.jpg": _exif_rotated_jpeg(image),
        "rgb.png": encode(image, "PNG"),
        "gray.png": encode(image.convert("L"), "PNG"),
        "gray-alpha.png": encode(image.convert("LA"), "PNG"),
        "rgba.png": encode(image.convert("RGBA"), "PNG"),
        "palette-transparent.png": encode(palette, "PNG", transparency=transparent),
        "rgb16.png": _png(rgb16, 2, interlaced=False),
        "gray16.png": _png(gray16, 0, interlaced=False),
        "interlaced.png": _png(pixels, 2, interlaced=True),
        "interlaced-gray16.png": _png(gray16, 0, interlaced=True),
        "rgb.bmp": encode(image, "BMP"),
        "palette.gif": encode(palette, "GIF"),
        "transparent.gif": encode(palette, "GIF", transparency=transparent),
    }
    formats = {}
    for name, data in files.items():
        opened = Image.open(io.BytesIO(data))
        if opened.mode.startswith("I;16"):
            gray = (np.asarray(opened).astype(np.uint32) >> 8).astype(np.uint8)
            reference = np.stack([gray] * 3, axis=-1)
        else:
            reference = np.asarray(opened.convert("RGB")).copy()
        if name == "transparent.gif":
            reference[np.asarray(opened) == opened.info["transparency"]] = 0
        formats[name] = (data, reference)
    return formats


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
    png_bomb = staticmethod(png_bomb)
    pixel_formats = staticmethod(pixel_formats)


@pytest.fixture(scope="session")
def image_files() -> type[_ImageFiles]:
    """Makers of good and bad image files."""
    return _ImageFiles
