"""MRC/CCP4 map headers as EMDB wants them: the geometry of a map and its PDBx ``em_map`` row.

The ``em_map`` items follow the PDBx dictionary (v5.362): dimensions and origin are the header's column,
row and section counts and start indices (NX/NY/NZ, NXSTART/NYSTART/NZSTART), spacing is the sampling
(MX/MY/MZ), pixel spacing is cell / sampling (Å), axis order is MAPC/MAPR/MAPS as X/Y/Z letters; the
statistics are computed from the data, not copied from the header (headers written by some programs
carry stale DMIN/DMAX/RMS).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt
from mrcfile.utils import dtype_from_mode, normalise_byte_order

from ..errors import DepositionError
from .model import FieldValue

__all__ = [
    "DATA_TYPES",
    "MAP_TYPES",
    "MapGeometry",
    "MapStatistics",
    "em_map_row",
    "map_geometry",
    "map_statistics",
    "same_frame",
]

# _em_map.type enumeration of the PDBx dictionary.
MAP_TYPES = (
    "primary map",
    "half map",
    "additional map",
    "mask",
    "raw map",
    "FSC half map mask",
    "FSC map-model mask",
    "alignment mask",
    "focused refinement mask",
    "3D classification map",
    "focus refinement map",
    "segmentation",
)

# MRC mode -> _em_map.data_type enumeration of the PDBx dictionary (modes EMDB accepts).
DATA_TYPES = {
    0: "Image stored as signed byte",
    1: "Image stored as signed integer (2 bytes)",
    2: "Image stored as floating point number (4 bytes)",
}

_AXIS_LETTERS = {1: "X", 2: "Y", 3: "Z"}
# Sections read at a time when computing statistics, so a large map is never held twice in memory.
_SECTIONS_PER_CHUNK = 32


@dataclass(frozen=True)
class MapGeometry:
    """Where a map's voxels are: what two maps must share to be half maps of one reconstruction."""

    shape: tuple[int, int, int]  # (nx, ny, nz) = columns, rows, sections
    voxel_size: tuple[float, float, float]  # Å, along X, Y, Z
    origin: tuple[float, float, float]  # header origin (Å)
    nstart: tuple[int, int, int]
    axis_order: tuple[int, int, int]  # mapc, mapr, maps
    mode: int


@dataclass(frozen=True)
class MapStatistics:
    minimum: float
    maximum: float
    average: float
    std: float  # population standard deviation (RMS deviation from the mean), as EMDB reports it


def _float32(value: Any) -> float:
    """The shortest decimal that reads back as the same float32 (header fields are float32)."""
    return float(str(np.float32(value)))


def _voxel_size(header: Any) -> tuple[float, float, float]:
    """Cell length / sampling per axis (0 where the sampling is 0, as mrcfile does)."""
    lengths = (header.cella.x, header.cella.y, header.cella.z)
    sampling = (int(header.mx), int(header.my), int(header.mz))
    x, y, z = (_float32(_float32(a) / m) if m else 0.0 for a, m in zip(lengths, sampling, strict=True))
    return x, y, z


def _open_error(path: Path, error: Exception) -> DepositionError:
    return DepositionError(
        f"{path} is not a readable MRC/CCP4 map ({error}); EMDB accepts MRC2014/CCP4 maps (.map, .mrc)"
    )


def map_geometry(path: Path) -> MapGeometry:
    """The geometry in ``path``'s header (the data are not read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, header_only=True, permissive=False) as mrc:
                header = mrc.header
                return MapGeometry(
                    shape=(int(header.nx), int(header.ny), int(header.nz)),
                    voxel_size=_voxel_size(header),
                    origin=(
                        _float32(header.origin.x),
                        _float32(header.origin.y),
                        _float32(header.origin.z),
                    ),
                    nstart=(int(header.nxstart), int(header.nystart), int(header.nzstart)),
                    axis_order=(int(header.mapc), int(header.mapr), int(header.maps)),
                    mode=int(header.mode),
                )
    except (ValueError, OSError) as error:
        raise _open_error(path, error) from error


def same_frame(a: MapGeometry, b: MapGeometry, tolerance: float = 1e-3) -> list[str]:
    """The ways ``b`` is not in ``a``'s frame (box, voxel size, origin, start, axis order), in words."""
    differences: list[str] = []

    def shown(values: tuple[Any, ...]) -> str:
        return " x ".join(str(v) for v in values)

    if a.shape != b.shape:
        differences.append(f"box {shown(a.shape)} vs {shown(b.shape)} voxels")
    if any(abs(x - y) > tolerance for x, y in zip(a.voxel_size, b.voxel_size, strict=True)):
        differences.append(f"voxel size {shown(a.voxel_size)} vs {shown(b.voxel_size)} Å")
    if any(abs(x - y) > tolerance for x, y in zip(a.origin, b.origin, strict=True)):
        differences.append(f"origin {shown(a.origin)} vs {shown(b.origin)} Å")
    if a.nstart != b.nstart:
        differences.append(f"start index (nxstart, nystart, nzstart) {shown(a.nstart)} vs {shown(b.nstart)}")
    if a.axis_order != b.axis_order:
        differences.append(f"axis order (mapc, mapr, maps) {shown(a.axis_order)} vs {shown(b.axis_order)}")
    return differences


def _chunks(data: npt.NDArray[Any]) -> Iterator[npt.NDArray[np.float64]]:
    volume = data.reshape((1, *data.shape)) if data.ndim == 2 else data
    for start in range(0, volume.shape[0], _SECTIONS_PER_CHUNK):
        yield np.asarray(volume[start : start + _SECTIONS_PER_CHUNK], dtype=np.float64)


def map_statistics(path: Path) -> MapStatistics:
    """Minimum, maximum, mean and standard deviation of ``path``'s data, read a few sections at a time."""
    count = 0
    mean = 0.0
    squares = 0.0  # sum of squared deviations from the running mean (Chan et al. pairwise update)
    low, high = math.inf, -math.inf
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Compressed maps cannot be memory-mapped; mrcfile.open decompresses them.
            opener = mrcfile.open if path.suffix in (".gz", ".bz2") else mrcfile.mmap
            with opener(path, permissive=False) as mrc:
                if mrc.data is None or mrc.data.size == 0:
                    raise DepositionError(f"{path} has no data (NX, NY or NZ is 0); a map needs voxels")
                for chunk in _chunks(mrc.data):
                    n = chunk.size
                    chunk_mean = float(chunk.mean())
                    chunk_squares = float(((chunk - chunk_mean) ** 2).sum())
                    delta = chunk_mean - mean
                    total = count + n
                    mean += delta * n / total
                    squares += chunk_squares + delta * delta * count * n / total
                    count = total
                    low = min(low, float(chunk.min()))
                    high = max(high, float(chunk.max()))
    except (ValueError, OSError) as error:
        raise _open_error(path, error) from error
    return MapStatistics(low, high, mean, math.sqrt(squares / count))


def _header_fields(path: Path) -> dict[str, FieldValue]:
    """The em_map items read from the header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, header_only=True, permissive=False) as mrc:
                header = mrc.header
                order = normalise_byte_order(header.mode.dtype.byteorder)
                sampling = (int(header.mx), int(header.my), int(header.mz))
                cell_lengths = (_float32(header.cella.x), _float32(header.cella.y), _float32(header.cella.z))
                cell_angles = (
                    _float32(header.cellb.alpha),
                    _float32(header.cellb.beta),
                    _float32(header.cellb.gamma),
                )
                voxel_size = _voxel_size(header)
                mode = int(header.mode)
                # The uncompressed MRC size, also right for a .map.gz.
                size_bytes = (
                    1024
                    + int(header.nsymbt)
                    + int(header.nx) * int(header.ny) * int(header.nz) * dtype_from_mode(mode).itemsize
                )
                axes = (int(header.mapc), int(header.mapr), int(header.maps))
                fields: dict[str, FieldValue] = {
                    "dimensions_col": int(header.nx),
                    "dimensions_row": int(header.ny),
                    "dimensions_sec": int(header.nz),
                    "origin_col": int(header.nxstart),
                    "origin_row": int(header.nystart),
                    "origin_sec": int(header.nzstart),
                    "symmetry_space_group": int(header.ispg),
                }
    except (ValueError, OSError) as error:
        raise _open_error(path, error) from error
    if mode not in DATA_TYPES:
        raise DepositionError(
            f"{path} stores its voxels in MRC mode {mode}; EMDB's data types are modes "
            f"{', '.join(f'{m} ({name})' for m, name in DATA_TYPES.items())}: convert the map to mode 2"
        )
    if sorted(axes) != [1, 2, 3]:
        raise DepositionError(
            f"{path} has axis order (mapc, mapr, maps) = {axes}; a map needs a permutation of 1, 2, 3"
        )
    if min(sampling) < 1:
        raise DepositionError(f"{path} has sampling (mx, my, mz) = {sampling}; each must be at least 1")
    # EMDB's size_kbytes is the map's size in units of 1000 bytes, rounded down (a 300³ float map of
    # 108,001,024 bytes is 108001 in EMD-14544's header).
    fields["size_kb"] = max(1, size_bytes // 1000)
    fields["data_type"] = DATA_TYPES[mode]
    fields["endian_type"] = "little" if order == "<" else "big"
    for letter, count in zip("xyz", sampling, strict=True):
        fields[f"spacing_{letter}"] = count
    for name, length in zip("abc", cell_lengths, strict=True):
        fields[f"cell_{name}"] = length
    for name, angle in zip(("alpha", "beta", "gamma"), cell_angles, strict=True):
        fields[f"cell_{name}"] = angle
    for speed, axis in zip(("fast", "medium", "slow"), axes, strict=True):
        fields[f"axis_order_{speed}"] = _AXIS_LETTERS[axis]
    for letter, spacing in zip("xyz", voxel_size, strict=True):
        fields[f"pixel_spacing_{letter}"] = spacing
    return fields


def em_map_row(
    path: Path, map_type: str, *, file_name: str, contour_level: float | None = None
) -> dict[str, FieldValue]:
    """Every mandatory ``em_map`` item of ``path`` except the keys ``id`` and ``entry_id``.

    ``file_name`` is the name the map has in the deposition; ``contour_level`` (the author's recommended
    level) adds ``contour_level`` and ``contour_level_source`` = ``author``.
    """
    if map_type not in MAP_TYPES:
        raise DepositionError(
            f"em_map type {map_type!r} of {path} is not one the PDBx dictionary knows; "
            f"accepted: {', '.join(MAP_TYPES)}"
        )
    fields = _header_fields(path)
    statistics = map_statistics(path)
    row: dict[str, FieldValue] = {
        "type": map_type,
        "partition": 1,
        "format": "CCP4",
        **fields,
        "statistics_minimum": _float32(statistics.minimum),
        "statistics_maximum": _float32(statistics.maximum),
        "statistics_average": _float32(statistics.average),
        "statistics_std": _float32(statistics.std),
        "file": file_name,
    }
    if contour_level is not None:
        if not math.isfinite(contour_level):
            raise DepositionError(f"contour level {contour_level} for {path} is not a finite number")
        row["contour_level"] = float(contour_level)
        row["contour_level_source"] = "author"
    return row
