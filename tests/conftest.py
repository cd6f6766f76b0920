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


@pytest.fixture(scope="session")
def image_files() -> type[_ImageFiles]:
    """Makers of good and bad image files."""
    return _ImageFiles
