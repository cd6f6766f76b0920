"""Which files are images, decided by name alone (no TensorFlow, so it is cheap to import)."""

from __future__ import annotations

import posixpath

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def is_image_path(path: str) -> bool:
    """True for a visible file whose extension (any case) is a supported image format."""
    name = posixpath.basename(path)
    return not name.startswith(".") and posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS
