"""MRC/CCP4 header metadata: the 1024-byte main header as a key-value block, the voxel grid it describes,
and how mrcfile's ``data[section][row][column]`` maps to the crystallographic axes. The map data is never
loaded (read-only; maps are written by :mod:`scipion_kg.converters.mrc`).

Header words (MRC2014, Cheng et al. 2015, J Struct Biol 192:146-150, doi:10.1016/j.jsb.2015.04.002; CCP-EM
"MRC2014" page with the 2022 "20141" note; read through ccpem/mrcfile, which neither applies MAPC/MAPR/
MAPS nor loads the data when ``header_only``):

* NX, NY, NZ: columns (fastest), rows, sections (slowest); mrcfile's array is ``data[section][row][col]``.
* MAPC, MAPR, MAPS: the crystallographic axis (1 = X, 2 = Y, 3 = Z) along columns, rows and sections.
* NXSTART, NYSTART, NZSTART: grid index of the first column, row and section, i.e. in the *storage*
  (permuted) order, in units of the sampling MX, MY, MZ of the crystallographic X, Y, Z axes.
* CELLA (Å) and CELLB (degrees): the cell; voxel size along X, Y, Z = CELLA / (MX, MY, MZ).
* ISPG: 0 = image or image stack, 1-230 = volume (space group), 401-630 = stack of volumes (NZ / MZ of
  them). NSYMBT = bytes of extended header (EXTTYP names its kind), NVERSION = 20140 / 20141 or 0.
* ORIGIN (words 50-52): "phase origin (pixels) or origin of subvolume (Å)".

The document has block ``header`` (one row, ``is_loop`` False) with columns NX NY NZ MODE NXSTART NYSTART
NZSTART MX MY MZ CELLA_X CELLA_Y CELLA_Z CELLB_ALPHA CELLB_BETA CELLB_GAMMA MAPC MAPR MAPS DMIN DMAX DMEAN
ISPG NSYMBT EXTTYP NVERSION ORIGIN_X ORIGIN_Y ORIGIN_Z MAP MACHST (hex) RMS NLABL LABEL_1..LABEL_<NLABL>;
float32 words become the float64 of their shortest decimal form (CELLA 17.93 reads as 17.93, not
17.930000305). Block ``grid`` (one row) holds what :class:`VoxelGrid` derives: ``voxel_size_x/y/z``,
``axis_order`` ("XYZ"; "ZXY" when MAPC/MAPR/MAPS = 3, 1, 2), ``is_orthogonal`` (1/0), ``kind`` ("image",
"image_stack", "volume", "volume_stack" or "unknown"), ``n_items`` (images or volumes), ``start_x/y/z``
(grid start along X, Y, Z) and ``first_voxel_x/y/z``. ``document.version`` is NVERSION when non-zero.

World coordinate of the first stored voxel (``first_voxel``, Å, Cartesian): the grid start along each
cell axis times the voxel size, taken to Cartesian coordinates with the usual crystallographic
orthogonalisation (a along x, b in the xy plane; the identity for orthogonal cells), plus ORIGIN when it is
non-zero. Programs disagree on ORIGIN versus NSTART (some use ORIGIN alone when it is set); the per-package
choice belongs to the conventions layer, which has ``start_angstrom`` and ``origin`` separately
(docs: conventions §3).

Axis permutation: when MAPC/MAPR/MAPS is not 1, 2, 3, mrcfile's ``data[s][r][c]`` is indexed by the
crystallographic axes MAPS, MAPR, MAPC (EMD-3001: 3, 1, 2 means columns run along Z, rows along X,
sections along Y, so ``data[y][x][z]``). :func:`axis_permutation` gives the ``numpy.transpose`` axes that
turn it into ``[z][y][x]``; :meth:`VoxelGrid.to_zyx` applies them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt
from mrcfile.mrcinterpreter import MrcInterpreter
from scipion_kg.converters.raw import Column, RawBlock, RawDocument

from scipion_kg.errors import ParseError

__all__ = ["FORMAT_IRI", "VoxelGrid", "axis_permutation", "grid_of", "parse", "read", "voxel_grid"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_MRC"

_HEADER_BYTES = 1024
# Bytes per voxel of each MRC mode (mode 101 packs two 4-bit voxels per byte).
_MODE_BYTES = {0: 1.0, 1: 2.0, 2: 4.0, 3: 4.0, 4: 8.0, 6: 2.0, 12: 2.0, 101: 0.5}
_AXES = "XYZ"


@dataclass(frozen=True)
class VoxelGrid:
    """The sampling grid an MRC header describes (all tuples in the order named)."""

    shape: tuple[int, int, int]  # NX, NY, NZ: columns, rows, sections as stored
    axis_map: tuple[int, int, int]  # MAPC, MAPR, MAPS
    start: tuple[int, int, int]  # NXSTART, NYSTART, NZSTART: first column, row, section
    sampling: tuple[int, int, int]  # MX, MY, MZ along X, Y, Z
    cell_lengths: tuple[float, float, float]  # CELLA X, Y, Z (Å)
    cell_angles: tuple[float, float, float]  # CELLB alpha, beta, gamma (degrees)
    origin: tuple[float, float, float]  # ORIGIN X, Y, Z (Å)
    space_group: int  # ISPG

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Å per voxel along X, Y, Z (CELLA / M; 0 where M is 0)."""
        pairs = zip(self.cell_lengths, self.sampling, strict=True)
        x, y, z = (length / count if count else 0.0 for length, count in pairs)
        return (x, y, z)

    @property
    def axis_order(self) -> str:
        """The crystallographic axes along columns, rows, sections: "XYZ" for the standard order ("" if the
        header's MAPC/MAPR/MAPS are not a permutation of 1, 2, 3)."""
        return "".join(_AXES[axis - 1] for axis in self.axis_map) if self._axes_valid else ""

    @property
    def is_orthogonal(self) -> bool:
        return all(abs(angle - 90.0) < 1e-4 for angle in self.cell_angles)

    @property
    def kind(self) -> str:
        """ "image", "image_stack", "volume", "volume_stack" or "unknown" (from ISPG and NZ)."""
        if self.space_group == 0:
            return "image" if self.shape[2] == 1 else "image_stack"
        if 1 <= self.space_group <= 230:
            return "volume"
        if 401 <= self.space_group <= 630:
            return "volume_stack"
        return "unknown"

    @property
    def n_items(self) -> int:
        """Images in an image stack, volumes in a volume stack, else 1."""
        if self.kind == "image_stack":
            return self.shape[2]
        if self.kind == "volume_stack" and self.sampling[2] > 0:
            return self.shape[2] // self.sampling[2]
        return 1

    @property
    def start_xyz(self) -> tuple[int, int, int]:
        """The grid start along X, Y, Z (NSTART words are in storage order; as is if MAPC/R/S are bad)."""
        if not self._axes_valid:
            return self.start
        x, y, z = (self.start[self.axis_map.index(axis)] for axis in (1, 2, 3))
        return (x, y, z)

    @property
    def _axes_valid(self) -> bool:
        return sorted(self.axis_map) == [1, 2, 3]

    @property
    def start_angstrom(self) -> tuple[float, float, float]:
        """Grid start times voxel size along the cell axes X, Y, Z (Å; not yet Cartesian)."""
        x, y, z = (start * size for start, size in zip(self.start_xyz, self.voxel_size, strict=True))
        return (x, y, z)

    @property
    def first_voxel(self) -> tuple[float, float, float]:
        """Cartesian coordinate (Å) of the first stored voxel: orthogonalised start plus ORIGIN."""
        u, v, w = self.start_angstrom
        cos_a, cos_b, cos_g = (math.cos(math.radians(angle)) for angle in self.cell_angles)
        sin_g = math.sin(math.radians(self.cell_angles[2]))
        if self.is_orthogonal:
            x, y, z = u, v, w
        else:
            volume = math.sqrt(max(0.0, 1 - cos_a**2 - cos_b**2 - cos_g**2 + 2 * cos_a * cos_b * cos_g))
            x = u + v * cos_g + w * cos_b
            y = v * sin_g + w * (cos_a - cos_b * cos_g) / sin_g
            z = w * volume / sin_g
        ox, oy, oz = self.origin
        return (x + ox, y + oy, z + oz)

    def zyx_axes(self) -> tuple[int, int, int]:
        """``numpy.transpose`` axes turning mrcfile's ``data[s][r][c]`` into ``[z][y][x]``."""
        return axis_permutation(*self.axis_map)

    def to_zyx(self, data: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A view of a 3-D ``data[section][row][column]`` array indexed ``[z][y][x]``."""
        return np.transpose(data, self.zyx_axes())


def axis_permutation(mapc: int, mapr: int, maps: int) -> tuple[int, int, int]:
    """The transpose axes that turn ``data[section][row][column]`` into ``data[z][y][x]``.

    ``data`` axis 0 runs along crystallographic axis MAPS, axis 1 along MAPR, axis 2 along MAPC; result
    axis 0 must be Z, 1 Y, 2 X. (3, 1, 2) gives (2, 0, 1); the standard (1, 2, 3) gives (0, 1, 2).
    """
    along = (maps, mapr, mapc)
    if sorted(along) != [1, 2, 3]:
        raise ValueError(f"MAPC/MAPR/MAPS = {(mapc, mapr, maps)} is not a permutation of 1, 2, 3")
    z, y, x = (along.index(axis) for axis in (3, 2, 1))
    return (z, y, x)


def read(path: Path, permissive: bool = False) -> RawDocument:
    """Read the header of an MRC file (gzip or bzip2 compressed too), not its data.

    Strict by default: a corrupt or truncated file raises :class:`ParseError`; ``permissive`` turns the
    problems mrcfile and this module can survive into ``RuntimeWarning``.
    """
    path = Path(path)
    try:
        with mrcfile.open(path, header_only=True, permissive=permissive) as mrc:
            header, extended = mrc.header, mrc.extended_header
    except ValueError as error:
        raise ParseError(f"{path}: not a readable MRC header: {error}") from None
    with path.open("rb") as handle:
        compressed = _is_compressed(handle.read(3))
    size = None if compressed else path.stat().st_size
    document = _document(header, _nbytes(extended), str(path), size, permissive)
    document.source = path
    return document


def parse(data: str | bytes, source: str = "<string>", permissive: bool = False) -> RawDocument:
    """Read an MRC header from the file's bytes (at least the header and extended header)."""
    if isinstance(data, str):
        raise ParseError(f"{source}: an MRC file is binary; give its bytes, not text")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:3] == b"BZh":
        data = bz2.decompress(data)
    try:
        interpreter = MrcInterpreter(io.BytesIO(data), permissive=permissive, header_only=True)
    except ValueError as error:
        raise ParseError(f"{source}: not a readable MRC header: {error}") from None
    return _document(interpreter.header, _nbytes(interpreter.extended_header), source, len(data), permissive)


def voxel_grid(path: Path, permissive: bool = False) -> VoxelGrid:
    """The voxel grid of an MRC file's header."""
    return grid_of(read(path, permissive))


def grid_of(document: RawDocument) -> VoxelGrid:
    """The voxel grid of a document from :func:`read` or :func:`parse`."""
    block = document.block("header")

    def ints(*labels: str) -> tuple[int, int, int]:
        a, b, c = (int(block.columns[label][0]) for label in labels)
        return (a, b, c)

    def floats(*labels: str) -> tuple[float, float, float]:
        a, b, c = (float(block.columns[label][0]) for label in labels)
        return (a, b, c)

    return VoxelGrid(
        shape=ints("NX", "NY", "NZ"),
        axis_map=ints("MAPC", "MAPR", "MAPS"),
        start=ints("NXSTART", "NYSTART", "NZSTART"),
        sampling=ints("MX", "MY", "MZ"),
        cell_lengths=floats("CELLA_X", "CELLA_Y", "CELLA_Z"),
        cell_angles=floats("CELLB_ALPHA", "CELLB_BETA", "CELLB_GAMMA"),
        origin=floats("ORIGIN_X", "ORIGIN_Y", "ORIGIN_Z"),
        space_group=int(block.columns["ISPG"][0]),
    )


def _document(
    header: Any, extended_bytes: int, source: str, size: int | None, permissive: bool
) -> RawDocument:
    values: dict[str, int | float | str] = {
        "NX": int(header.nx),
        "NY": int(header.ny),
        "NZ": int(header.nz),
        "MODE": int(header.mode),
        "NXSTART": int(header.nxstart),
        "NYSTART": int(header.nystart),
        "NZSTART": int(header.nzstart),
        "MX": int(header.mx),
        "MY": int(header.my),
        "MZ": int(header.mz),
        "CELLA_X": _float(header.cella.x),
        "CELLA_Y": _float(header.cella.y),
        "CELLA_Z": _float(header.cella.z),
        "CELLB_ALPHA": _float(header.cellb.alpha),
        "CELLB_BETA": _float(header.cellb.beta),
        "CELLB_GAMMA": _float(header.cellb.gamma),
        "MAPC": int(header.mapc),
        "MAPR": int(header.mapr),
        "MAPS": int(header.maps),
        "DMIN": _float(header.dmin),
        "DMAX": _float(header.dmax),
        "DMEAN": _float(header.dmean),
        "ISPG": int(header.ispg),
        "NSYMBT": int(header.nsymbt),
        "EXTTYP": bytes(header.exttyp).decode("latin-1").rstrip("\x00"),
        "NVERSION": int(header.nversion),
        "ORIGIN_X": _float(header.origin.x),
        "ORIGIN_Y": _float(header.origin.y),
        "ORIGIN_Z": _float(header.origin.z),
        "MAP": bytes(header.map).decode("latin-1").rstrip("\x00"),
        "MACHST": bytes(np.asarray(header.machst, dtype=np.uint8)).hex(),
        "RMS": _float(header.rms),
        "NLABL": int(header.nlabl),
    }
    for index in range(min(max(int(header.nlabl), 0), 10)):
        values[f"LABEL_{index + 1}"] = _text(bytes(header.label[index]))
    _check(values, extended_bytes, source, size, permissive)
    block = RawBlock("header", {key: _column(value) for key, value in values.items()}, is_loop=False)
    version = str(values["NVERSION"]) if values["NVERSION"] != 0 else None
    document = RawDocument(FORMAT_IRI, {"header": block}, version=version)
    document.blocks["grid"] = _grid_block(grid_of(document))
    return document


def _check(
    values: dict[str, int | float | str], extended: int, source: str, size: int | None, lenient: bool
) -> None:
    problems: list[str] = []
    shape = (values["NX"], values["NY"], values["NZ"])
    if any(int(count) < 0 for count in shape):
        problems.append(f"header words 1-3 (NX, NY, NZ): {shape} has a negative size")
    axes = (values["MAPC"], values["MAPR"], values["MAPS"])
    if sorted(int(axis) for axis in axes) != [1, 2, 3]:
        problems.append(f"header words 17-19 (MAPC, MAPR, MAPS): {axes} is not a permutation of 1, 2, 3")
    mode = int(values["MODE"])
    if mode not in _MODE_BYTES:
        problems.append(f"header word 4 (MODE): {mode} is not an MRC mode ({sorted(_MODE_BYTES)})")
    elif size is not None and not problems:
        nx, ny, nz = (int(count) for count in shape)
        data = (nx + 1) // 2 * ny * nz if mode == 101 else int(_MODE_BYTES[mode] * nx * ny * nz)
        needed = _HEADER_BYTES + extended + data
        if size < needed:
            problems.append(
                f"truncated: the header describes {needed} bytes ({nx}x{ny}x{nz} voxels of mode {mode} after "
                f"{_HEADER_BYTES} + {extended} header bytes) but the file has {size}"
            )
    for problem in problems:
        if not lenient:
            raise ParseError(f"{source}: {problem}")
        warnings.warn(f"{source}: {problem}", RuntimeWarning, stacklevel=3)


def _grid_block(grid: VoxelGrid) -> RawBlock:
    values: dict[str, int | float | str] = {}
    for axis, size, start, first in zip(
        "xyz", grid.voxel_size, grid.start_xyz, grid.first_voxel, strict=True
    ):
        values[f"voxel_size_{axis}"] = size
        values[f"start_{axis}"] = start
        values[f"first_voxel_{axis}"] = first
    values |= {
        "axis_order": grid.axis_order,
        "is_orthogonal": int(grid.is_orthogonal),
        "kind": grid.kind,
        "n_items": grid.n_items,
    }
    return RawBlock("grid", {key: _column(value) for key, value in values.items()}, is_loop=False)


def _column(value: int | float | str) -> Column:
    if isinstance(value, str):
        return np.asarray([value], dtype=str)
    if isinstance(value, int):
        return np.asarray([value], dtype=np.int64)
    return np.asarray([value], dtype=np.float64)


def _float(value: Any) -> float:
    # The float32 word's shortest decimal form, so 17.93 stays 17.93 in float64.
    return float(str(np.float32(value)))


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" \x00")


def _nbytes(extended: Any) -> int:
    return int(extended.nbytes) if extended is not None else 0


def _is_compressed(magic: bytes) -> bool:
    return magic[:2] == b"\x1f\x8b" or magic == b"BZh"
