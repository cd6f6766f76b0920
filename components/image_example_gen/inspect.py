"""Is this file a usable image? One verdict per file: its format and size, or why not.

A file is usable when Pillow reads its header (a supported format), its pixel count is within
the limit (from the header, before any decoding: decompression bombs never expand), and
TensorFlow's `decode_image` — the decoder Transform and the serving signature run — decodes it.
Each image is decoded once, by TensorFlow; only when TensorFlow refuses it does Pillow decode it
too, to tell a truncated or corrupt file from a variant only TensorFlow cannot read (1-bit BMP).
Grayscale, palette, alpha and CMYK images are usable: that decoder makes them RGB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import warnings
from collections.abc import Iterator

from PIL import Image

from trainer.contract import DEFAULT_MAX_PIXELS

# Pillow names what it opened; MPO is the multi-picture JPEG some cameras write.
SUPPORTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "BMP": "bmp", "GIF": "gif"}
# Signatures of the supported formats, to tell a damaged image from something else.
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"GIF87a": "gif",
          b"GIF89a": "gif", b"BM": "bmp"}

_PIL_LIMIT_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """A usable image: its format (jpeg, png, bmp, gif) and its first frame's size."""

    format: str
    height: int
    width: int


class Unusable(Exception):  # noqa: N818  (a verdict, raised and caught in one place)
    """Why a file cannot be used: `kind` is one word for counting, `reason` a readable line."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@contextlib.contextmanager
def _pillow_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's own bomb check (an error above twice its limit) set from ours, then restored."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _tensorflow_decodes(data: bytes) -> str | None:
    """None if TensorFlow's `decode_image` (as Transform calls it) decodes `data`, else why not."""
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError as error:
        return error.message.split("}}")[-1].strip() or type(error).__name__
    return None


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """The image's format and size.

    Raises:
        Unusable: the file is empty, not an image, an unsupported format, over `max_pixels`,
            truncated, or undecodable (by Pillow or by TensorFlow).
    """
    if not data:
        raise Unusable("empty", "empty file (0 bytes)")
    with _pillow_pixel_limit(max_pixels):
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise Unusable("too_large", f"over the pixel limit: {error}") from None
        except Exception:  # noqa: BLE001  (Pillow raises several kinds for non-images)
            fmt = next((f for magic, f in _MAGIC.items() if data.startswith(magic)), None)
            if fmt is not None:
                raise Unusable("undecodable", f"{fmt} file whose header cannot be read "
                                              "(truncated or corrupt)") from None
            raise Unusable("not_an_image", "not an image (no known image header)") from None
        fmt = SUPPORTED_FORMATS.get(image.format or "")
        if fmt is None:
            raise Unusable("unsupported", f"unsupported image format {image.format}; "
                                          "use JPEG, PNG, BMP or GIF")
        width, height = image.size
        if width * height > max_pixels:
            raise Unusable("too_large", f"over the pixel limit: {width}x{height} = "
                                        f"{width * height} pixels > {max_pixels}")
    # Pillow decodes first only for GIF: giflib (TensorFlow's) decodes some corrupt GIFs that
    # Pillow refuses; for JPEG, PNG and BMP the two decoders agree.
    if fmt == "gif":
        _pillow_decodes(image, fmt, max_pixels)
    problem = _tensorflow_decodes(data)
    if problem is None:
        return ImageInfo(fmt, height, width)
    _pillow_decodes(image, fmt, max_pixels)  # why TensorFlow refused it, when Pillow knows
    raise Unusable("undecodable", f"{fmt} variant TensorFlow cannot decode ({problem}); "
                                  "convert it to PNG")


def _pillow_decodes(image: Image.Image, fmt: str, max_pixels: int) -> None:
    """Decodes the first frame completely with Pillow; Unusable if it cannot."""
    with _pillow_pixel_limit(max_pixels):
        try:
            image.load()
        except Exception as error:  # noqa: BLE001
            message = str(error) or type(error).__name__
            if "truncated" in message.lower():
                raise Unusable("truncated", f"truncated {fmt} file ({message})") from None
            raise Unusable("undecodable", f"undecodable {fmt} file ({message})") from None
