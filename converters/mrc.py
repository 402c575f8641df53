"""MRC/CCP4 maps through mrcfile: atomic writes with the voxel size in the header."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt

__all__ = ["read_map", "write_map"]


def write_map(path: Path, data: npt.NDArray[np.floating], voxel_size: float) -> None:
    """Write ``data`` (z, y, x) as a float32 MRC2014 map, atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    try:
        with mrcfile.new(temporary, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
            mrc.voxel_size = voxel_size
            mrc.update_header_stats()
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_map(path: Path) -> tuple[npt.NDArray[np.float32], float]:
    """The map's data (z, y, x) and its voxel size in Å (x axis)."""
    with mrcfile.open(path, permissive=False) as mrc:
        return np.asarray(mrc.data, dtype=np.float32).copy(), float(mrc.voxel_size.x)
