"""MRC images, stacks and movies for the steps: header checks before anything runs, atomic writes."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt

from scipion_kg.errors import ProcessingError

__all__ = ["MRCHeader", "check_mrc", "read_mrc", "write_mrc"]


class MRCHeader:
    """What a step needs to know of an MRC file without reading its data."""

    def __init__(self, path: Path, nx: int, ny: int, nz: int, pixel_size: float) -> None:
        self.path, self.nx, self.ny, self.nz, self.pixel_size = path, nx, ny, nz, pixel_size


def check_mrc(path: Path) -> MRCHeader:
    """Read and check ``path``'s header: a valid MRC2014 header whose data fit in the file.

    A corrupt or truncated file is a ProcessingError naming it and what is wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                header = mrc.header
                if header is None or not bytes(header.map).startswith(b"MAP"):
                    raise ProcessingError(f"{path}: not an MRC file (no 'MAP ' identifier in its header)")
                nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
                itemsize = mrcfile.utils.data_dtype_from_header(header).itemsize
                offset = 1024 + int(header.nsymbt)
                pixel = float(mrc.voxel_size.x)
    except ValueError as error:
        raise ProcessingError(f"{path}: not a readable MRC file: {error}") from error
    except OSError as error:
        raise ProcessingError(f"{path}: cannot read: {error}") from error
    expected = nx * ny * nz * itemsize
    size = path.stat().st_size
    if size < offset + expected:
        raise ProcessingError(
            f"{path}: truncated MRC file: the header announces {nx} x {ny} x {nz} values "
            f"({offset + expected} bytes with the header) but the file has {size} bytes"
        )
    if min(nx, ny, nz) <= 0:
        raise ProcessingError(f"{path}: MRC header gives an empty size {nx} x {ny} x {nz}")
    return MRCHeader(path, nx, ny, nz, pixel)


def read_mrc(path: Path) -> npt.NDArray[np.float32]:
    """The data of an MRC image, stack or movie as float32 (z, y, x), or (y, x) for one image."""
    check_mrc(path)
    with mrcfile.open(path, mode="r", permissive=True) as mrc:
        return np.asarray(mrc.data, dtype=np.float32).copy()


def write_mrc(path: Path, data: npt.NDArray[np.floating], pixel_size: float, *, stack: bool = False) -> None:
    """Write ``data`` as float32 MRC (a stack of 2D images when ``stack``), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    try:
        with mrcfile.new(temporary, overwrite=True) as mrc:
            array = np.ascontiguousarray(data, dtype=np.float32)
            if stack:
                mrc.set_data(array if array.ndim == 3 else array[None])
                mrc.set_image_stack()
            else:
                mrc.set_data(array)
            mrc.voxel_size = pixel_size
            mrc.update_header_stats()
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
