"""An encoded image's size, read from its header in the graph, and the checks made before decoding.

TensorFlow's decoders allocate the whole output from the header's dimensions (PNG, GIF and BMP
refuse only sizes past int32): a valid 390 KB PNG of 20,000 x 20,000 pixels costs 1.2 GB, 6.7 s.
Transform's graph, which the exported serving signatures run (in `imgpipe serve` and in TF Serving
alike), therefore reads the size first and decodes only what `checked_image` passes on after its
assertions; a refusal is an InvalidArgumentError, which TF Serving answers as INVALID_ARGUMENT
with the message (`ToGRPCStatus` in tensorflow_serving/model_servers/grpc_status_util.cc casts
TensorFlow's code to gRPC's, keeping up to 1024 characters).

Sizes are read where TensorFlow's own decoders read them: JPEG's frame header
(`extract_jpeg_shape`), PNG's IHDR (bytes 16-23, big-endian), GIF's logical screen (bytes 6-9,
little-endian; giflib allocates the screen), BMP's info header (bytes 18-25, little-endian signed
int32, as `decode_bmp` reads them; a negative height is a top-down bitmap).
"""

from __future__ import annotations

import tensorflow as tf

# (magic bytes, offset of the width, offset of the height, bytes each, big-endian, signed)
_PNG = (b"\x89PNG\r\n\x1a\n", 16, 20, 4, True, False)
_GIF87 = (b"GIF87a", 6, 8, 2, False, False)
_GIF89 = (b"GIF89a", 6, 8, 2, False, False)
_BMP = (b"BM", 18, 22, 4, False, True)
_JPEG_MAGIC = b"\xff\xd8\xff"
_HEADER_BYTES = 26  # enough for every field above
FORMATS = "JPEG, PNG, BMP or GIF"


def _integer(padded: tf.Tensor, offset: int, size: int, big_endian: bool,
             signed: bool) -> tf.Tensor:
    """The unsigned (or two's complement) integer at `offset`, as int64."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, size), tf.uint8), tf.int64)
    weights = tf.constant([256 ** i for i in range(size)], tf.int64)
    value = tf.reduce_sum(raw * (tf.reverse(weights, [0]) if big_endian else weights))
    if signed:
        value = tf.where(value >= 2 ** (8 * size - 1), value - 2 ** (8 * size), value)
    return value


def is_jpeg(image_bytes: tf.Tensor) -> tf.Tensor:
    """Whether the bytes start as a JPEG does (the test `decode_image` makes)."""
    return tf.strings.substr(image_bytes, 0, len(_JPEG_MAGIC)) == _JPEG_MAGIC


def header_size(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(known, height, width) of one encoded image (scalar string), int64, without decoding.

    `known` is False for bytes that start like none of the formats or are too short to hold
    the size; height and width are then 0. A JPEG whose header is damaged fails in
    `extract_jpeg_shape` (InvalidArgumentError).
    """
    length = tf.strings.length(image_bytes)
    padded = tf.strings.join([image_bytes, tf.constant(b"\x00" * _HEADER_BYTES)])
    known, height, width = tf.constant(False), tf.constant(0, tf.int64), tf.constant(0, tf.int64)
    for magic, w_at, h_at, size, big_endian, signed in (_PNG, _GIF87, _GIF89, _BMP):
        this = tf.logical_and(tf.strings.substr(padded, 0, len(magic)) == magic,
                              length >= h_at + size)
        known = tf.logical_or(known, this)
        width = tf.where(this, _integer(padded, w_at, size, big_endian, signed), width)
        height = tf.where(this, tf.abs(_integer(padded, h_at, size, big_endian, signed)), height)
    jpeg = is_jpeg(padded)
    jpeg_shape = tf.cond(jpeg,
                         lambda: tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64),
                         lambda: tf.zeros([3], tf.int64))
    height = tf.where(jpeg, jpeg_shape[0], height)
    width = tf.where(jpeg, jpeg_shape[1], width)
    return tf.logical_or(known, jpeg), height, width


def checked_image(image_bytes: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """`image_bytes`, passed on only once it is known to be a JPEG, PNG, BMP or GIF of at most
    `max_pixels` pixels; InvalidArgumentError naming the limit otherwise.

    Decode what this returns: the decoder then takes its input from the assertions' output, a
    data dependency. A control dependency is not enough: in a `tf.function`, a `tf.cond`
    created under `tf.control_dependencies` does not get the control input (measured: the
    decoder's If op had none), so the decoder could run, and allocate, before the check.
    """
    known, height, width = header_size(image_bytes)
    pixels = height * width
    is_image = tf.debugging.Assert(known, [tf.constant(
        f"not a {FORMATS} image (no known header, or too short to hold one)")])
    with tf.control_dependencies([is_image]):
        small_enough = tf.debugging.Assert(pixels <= max_pixels, [tf.strings.format(
            "image of {}x{} = {} pixels is over the limit of {} pixels this model decodes "
            "(--max-pixels)", (width, height, pixels, max_pixels))])
    with tf.control_dependencies([small_enough]):
        return tf.identity(image_bytes)


def checked_rows(image_bytes: tf.Tensor, max_rows: int) -> tf.Tensor:
    """The batch `image_bytes` ([N] strings), passed on only if it holds at most `max_rows`
    images; InvalidArgumentError naming the limit otherwise."""
    rows = tf.size(image_bytes)
    few_enough = tf.debugging.Assert(rows <= max_rows, [tf.strings.format(
        "request of {} images is over the limit of {} images per request this model takes "
        "(--max-request-images); send fewer per request", (rows, max_rows))])
    with tf.control_dependencies([few_enough]):
        return tf.identity(image_bytes)
