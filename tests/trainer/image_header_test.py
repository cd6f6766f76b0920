"""The size read from each format's header, and the checks Transform makes before decoding."""

import struct
import time

import pytest
import tensorflow as tf

from trainer import image_header, transform


def _set(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def _jpeg_sized(data: bytes, width: int, height: int) -> bytes:
    """`data` (a baseline JPEG) with its frame header (SOF0) declaring width x height."""
    sof = data.index(b"\xff\xc0")
    return _set(data, sof + 5, struct.pack(">HH", height, width))


@pytest.fixture(scope="module")
def files(image_files):
    image = image_files.rgb(3, (40, 30))  # width 40, height 30
    return {fmt: image_files.encode(image, fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP")}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_the_header_gives_the_size_tensorflow_decodes(files, fmt):
    known, height, width = image_header.header_size(tf.constant(files[fmt]))
    decoded = tf.io.decode_image(files[fmt], channels=3, expand_animations=False)
    assert bool(known) and (int(height), int(width)) == tuple(decoded.shape[:2]) == (30, 40)


def test_a_top_down_bmp_has_a_negative_height(files):
    top_down = _set(files["BMP"], 22, struct.pack("<i", -30))
    _, height, width = image_header.header_size(tf.constant(top_down))
    assert (int(height), int(width)) == (30, 40)
    assert tf.io.decode_image(top_down, channels=3).shape == (30, 40, 3)  # TF reads it so too


def _bombs(files, image_files) -> dict[str, tuple[bytes, str]]:
    """Headers declaring far more pixels than their bytes hold -> the size they declare."""
    return {
        "png": (image_files.png_bomb(20_000), "20000x20000 = 400000000"),
        "jpeg": (_jpeg_sized(files["JPEG"], 20_000, 20_000), "20000x20000 = 400000000"),
        "gif": (_set(files["GIF"], 6, struct.pack("<HH", 65_535, 65_535)),
                "65535x65535 = 4294836225"),
        "bmp": (_set(files["BMP"], 18, struct.pack("<ii", 20_000, -20_000)),
                "20000x20000 = 400000000"),
    }


@pytest.mark.parametrize("kind", ["png", "jpeg", "gif", "bmp"])
def test_a_bomb_is_refused_from_its_header_naming_the_limit(files, image_files, kind):
    data, declared = _bombs(files, image_files)[kind]
    decode = tf.function(lambda b: transform.decode_and_resize(b, 32))
    decode.get_concrete_function(tf.TensorSpec([], tf.string))
    start = time.monotonic()
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        decode(tf.constant(data))
    seconds = time.monotonic() - start
    assert (f"image of {declared} pixels is over the limit of 50000000 pixels this model "
            "decodes (--max-pixels)") in raised.value.message
    assert seconds < 2.0, seconds  # a decode of 1.2 GB takes seconds; the check, milliseconds


def test_the_limit_is_inclusive(files):
    for data in files.values():
        assert transform.decode_and_resize(tf.constant(data), 8, 1200).shape == (8, 8, 3)
        with pytest.raises(tf.errors.InvalidArgumentError, match="limit of 1199 pixels"):
            transform.decode_and_resize(tf.constant(data), 8, 1199)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n\x00\x00", b"hello",
                                  b"RIFF\x00\x00\x00\x00WEBPVP8 "])
def test_bytes_without_a_known_header_are_not_an_image(data):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"not a JPEG, PNG, BMP or GIF image"):
        transform.decode_and_resize(tf.constant(data), 8)


def test_rows_over_the_limit_are_refused_naming_it():
    check = tf.function(lambda b: image_header.checked_rows(b, 3))
    assert check(tf.constant([b"a"] * 3)).shape == (3,)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="request of 4 images is over the limit of 3 images per request"):
        check(tf.constant([b"a"] * 4))


def _branch_ops(graph: tf.Graph, cond: tf.Operation) -> set[str]:
    """The op types of a cond's two branch functions."""
    names = {cond.get_attr(branch).name for branch in ("then_branch", "else_branch")}
    return {op.type for name in names
            for op in graph._functions[name].graph.get_operations()}  # noqa: SLF001


def test_the_decoders_take_their_input_from_the_pixel_check():
    """A data dependency: no decoder can start (and allocate) before the assertions pass."""
    graph = tf.function(lambda b: transform.decode_and_resize(b, 8)).get_concrete_function(
        tf.TensorSpec([], tf.string)).graph
    (cond,) = [op for op in graph.get_operations() if op.type in ("If", "StatelessIf")
               and {"DecodeJpeg", "DecodeImage"} <= _branch_ops(graph, op)]
    (checked,) = [t.op for t in cond.inputs[1:]]  # the branches' one input: the bytes
    assert checked.type == "Identity"
    (small_enough,) = checked.control_inputs
    assert small_enough.type == "Assert"
    assert "StringFormat" in {t.op.type for t in small_enough.inputs}  # the pixel limit's
    assert [op.type for op in small_enough.control_inputs] == ["Assert"]  # a known header's
