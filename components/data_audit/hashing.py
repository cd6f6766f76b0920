"""Image fingerprints: a byte digest for exact copies, a perceptual hash and a colour signature
for near ones.

The perceptual hash is the DCT hash (pHash): the image in grey at 32x32, the 8x8 lowest
frequencies of its 2-D DCT, each bit set when above their median. Re-encoding, resizing and a
slight shift or recolouring move few of its 64 bits; a different picture moves about half.
The hash reads grey levels only, so the colour signature (the image averaged to 4x4 RGB) tells
a slightly recoloured copy from the same composition in other colours.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_SIDE = 32  # the grey image the DCT reads
HASH_BITS_SIDE = 8  # its lowest 8x8 frequencies make the 64-bit hash
HASH_BITS = HASH_BITS_SIDE * HASH_BITS_SIDE
COLOUR_SIDE = 4
COLOUR_VALUES = COLOUR_SIDE * COLOUR_SIDE * 3


def byte_digest(image_bytes: bytes) -> str:
    """Hex SHA-256 of the encoded file: equal digests are exact copies."""
    return hashlib.sha256(image_bytes).hexdigest()


def fingerprints(image_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(the perceptual hash, the colour signature: uint8 [COLOUR_VALUES]) of an encoded image.

    Raises ValueError when the bytes do not decode.
    """
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            rgb = image.convert("RGB")
            grey = rgb.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
            colours = rgb.resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX)
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"image does not decode: {error}") from error
    return _dct_hash(np.asarray(grey, dtype=np.float32)), np.asarray(colours, np.uint8).ravel()


def perceptual_hash(image_bytes: bytes) -> np.ndarray:
    """The 64-bit DCT hash of an encoded image, as 8 uint8 bytes (faiss' binary layout).

    Raises ValueError when the bytes do not decode.
    """
    return fingerprints(image_bytes)[0]


def _dct_hash(pixels: np.ndarray) -> np.ndarray:
    low = dctn(pixels, norm="ortho")[:HASH_BITS_SIDE, :HASH_BITS_SIDE].ravel()
    # The DC term is the mean brightness: left out of the median so a recolouring moves less.
    bits = low > np.median(low[1:])
    return np.packbits(bits)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Bits that differ between two packed hashes."""
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())
