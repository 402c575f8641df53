"""The entry image OneDep asks for (``img-emdb``, about 500 x 500 pixels), rendered from a map.

The map is put in (Z, Y, X) order whatever its header's axis order; the image is either the projection
along Z (sum of all sections) or the central Z section, shown with Y up, greys scaled between the 0.5th
and 99.5th percentiles. The PNG is written directly (8-bit greyscale, no metadata), so it is the same
bytes for the same map.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ..atomic import atomic_write_bytes
from ..errors import DepositionError

__all__ = ["IMAGE_KINDS", "encode_grey_png", "write_entry_image"]

IMAGE_KINDS = ("projection", "slice")
_LOW_PERCENTILE = 0.5
_HIGH_PERCENTILE = 99.5


def _section_image(path: Path, kind: str) -> npt.NDArray[np.float64]:
    """The (Y, X) image of the map: the sum over Z or the central Z section, whatever the axis order."""
    # Compressed maps cannot be memory-mapped; mrcfile.open decompresses them.
    opener = mrcfile.open if path.suffix in (".gz", ".bz2") else mrcfile.mmap
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with opener(path, permissive=False) as mrc:
                if mrc.data is None or mrc.data.size == 0:
                    raise ValueError("no data block")
                data = mrc.data if mrc.data.ndim == 3 else mrc.data.reshape((1, *mrc.data.shape))
                # Data axis i (sections, rows, columns) holds physical axis labels[i] (1 = X, 2 = Y, 3 = Z).
                labels = [int(mrc.header.maps), int(mrc.header.mapr), int(mrc.header.mapc)]
                if sorted(labels) != [1, 2, 3]:
                    raise DepositionError(
                        f"{path} has axis order (mapc, mapr, maps) = {tuple(labels[::-1])}; "
                        "a map needs a permutation of 1, 2, 3"
                    )
                z_axis = labels.index(3)
                if kind == "projection":
                    image = np.asarray(data.sum(axis=z_axis, dtype=np.float64))
                else:
                    image = np.asarray(np.take(data, data.shape[z_axis] // 2, axis=z_axis), dtype=np.float64)
    except (ValueError, OSError) as error:
        raise DepositionError(f"{path} is not a readable MRC/CCP4 map ({error}); no entry image") from error
    remaining = [label for label in labels if label != 3]
    return image if remaining == [2, 1] else image.T


def _to_grey(image: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    low, high = np.percentile(image, [_LOW_PERCENTILE, _HIGH_PERCENTILE])
    if high <= low:
        return np.full(image.shape, 128, dtype=np.uint8)
    scaled = np.clip((image - low) / (high - low), 0.0, 1.0)
    return np.asarray(np.rint(scaled * 255.0), dtype=np.uint8)


def _fit(image: npt.NDArray[np.float64], size: int) -> npt.NDArray[np.float64]:
    """``image`` scaled so its longer side is ``size``, centred on a ``size`` x ``size`` canvas."""
    rows, columns = image.shape
    factor = size / max(rows, columns)
    scaled = ndimage.zoom(image, factor, order=1, grid_mode=True, mode="nearest")
    scaled = scaled[:size, :size]
    canvas = np.full((size, size), float(np.percentile(image, _LOW_PERCENTILE)))
    top = (size - scaled.shape[0]) // 2
    left = (size - scaled.shape[1]) // 2
    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return canvas


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_grey_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit greyscale PNG of ``pixels`` (rows top to bottom)."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8 or 0 in pixels.shape:
        raise ValueError(f"a PNG needs a non-empty 2D uint8 array, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, greyscale, no interlace
    rows = np.hstack([np.zeros((height, 1), dtype=np.uint8), pixels])  # filter byte 0 per row
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + _chunk(b"IEND", b"")
    )


def write_entry_image(map_path: Path, out: Path, *, size: int = 500, kind: str = "projection") -> None:
    """Write a ``size`` x ``size`` grey PNG of ``map_path``: its projection along Z or its central section."""
    if kind not in IMAGE_KINDS:
        raise DepositionError(f"entry image kind {kind!r} is unknown; accepted: {', '.join(IMAGE_KINDS)}")
    if not 16 <= size <= 4096:
        raise DepositionError(
            f"entry image size {size} px is out of range; accepted: 16 to 4096 (EMDB: ~500)"
        )
    image = _section_image(map_path, kind)
    # Row 0 of the map is the lowest Y; images are written top row first, so flip to show Y up.
    grey = _to_grey(_fit(image[::-1], size))
    atomic_write_bytes(out, encode_grey_png(grey))
