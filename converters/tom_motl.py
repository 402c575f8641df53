"""TOM/AV3 motive lists: an EM-format image of 20 (or more) values per particle.

The EM format (TOM toolbox ``IOfun/tom_emread.m``; teamtomo/emfile ``emfile/specs.py`` [0eac5bf] lists the
same header) has no magic number: a 512-byte header of

* bytes 0-3: machine code (6 = PC, little-endian; 3 = SGI and 5 = Mac, big-endian; OS-9, VAX and Convex
  codes are refused), a version byte, an unused byte and the data type (1 int8, 2 int16, 4 int32,
  5 float32, 9 float64);
* bytes 4-15: the dimensions nx, ny, nz as int32;
* bytes 16-95: an 80-byte comment; bytes 96-255: 40 int32 "emdata" values (voltage, Cs, ...); bytes
  256-511: 256 bytes of user data (user name, date, free bytes);

then nx * ny * nz values, x fastest. A motive list is an nx = 20 by ny = N image with nz = 1: the 20
values of one particle are contiguous. Their meaning (AV3 convention) is named as in turonova/cryoCAT
``cryocat/core/cryomotl.py`` [b63ad22] ``Motl.motl_columns``: 1 score, 2 geom1, 3 geom2, 4 subtomo_id,
5 tomo_id, 6 object_id, 7 subtomo_mean, 8-10 x y z, 11-13 shift_x shift_y shift_z, 14-16 geom3 geom4 geom5,
17 phi, 18 psi, 19 theta, 20 class; rows beyond 20 are ``col_<N>``.

Representation: block :data:`BLOCK`, one row per particle, columns in that order (``float64`` for float
data, ``int64`` for integer data). ``fields`` keep what the writer needs to give the same header back:
``machine`` and ``data_type`` (codes as above), and ``comment``, ``emdata`` (40 space-separated integers)
and ``user_data`` (latin-1 text) when they are not empty. A document built from scratch is written as a PC
float32 file; columns are placed at their positions and absent positions are 0.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["BLOCK", "COLUMN_NAMES", "FORMAT_IRI", "HEADER_SIZE", "parse", "read", "to_bytes", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_TOMMotiveList"
BLOCK = "particles"
HEADER_SIZE = 512

COLUMN_NAMES = (
    "score",
    "geom1",
    "geom2",
    "subtomo_id",
    "tomo_id",
    "object_id",
    "subtomo_mean",
    "x",
    "y",
    "z",
    "shift_x",
    "shift_y",
    "shift_z",
    "geom3",
    "geom4",
    "geom5",
    "phi",
    "psi",
    "theta",
    "class",
)
_POSITIONS = {name: index + 1 for index, name in enumerate(COLUMN_NAMES)}
_GENERIC = re.compile(r"^col_(\d+)$")
_BYTE_ORDER = {3: ">", 5: ">", 6: "<"}
_DATA_TYPES = {1: "i1", 2: "i2", 4: "i4", 5: "f4", 9: "f8"}
# machine, version, unused, data type, nx, ny, nz, comment, 40 x emdata, user data (512 bytes in all)
_HEADER = "4B3i80s40i256s"


def read(path: Path) -> RawDocument:
    """Read a TOM/AV3 motive list (``.em``)."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the bytes of an EM-format motive list."""
    if isinstance(data, str):
        raise ParseError(f"{source}: an EM motive list is binary; pass its bytes, not text")
    if len(data) < HEADER_SIZE:
        raise ParseError(f"{source}: truncated: {len(data)} bytes, shorter than the 512-byte EM header")
    machine = data[0]
    order = _BYTE_ORDER.get(machine)
    if order is None:
        raise ParseError(
            f"{source}: byte 0 (machine code) is {machine}; only 6 (PC, little-endian), 3 (SGI) and 5 (Mac) "
            "EM files are supported"
        )
    header = struct.unpack(order + _HEADER, data[:HEADER_SIZE])
    code, nx, ny, nz = header[3], header[4], header[5], header[6]
    comment, emdata, user_data = header[7], header[8:48], header[48]
    if code not in _DATA_TYPES:
        raise ParseError(
            f"{source}: byte 3 (data type) is {code}; a motive list holds numbers (1, 2, 4, 5 or 9)"
        )
    if nx < 1 or ny < 0 or nz != 1:
        raise ParseError(
            f"{source}: dimensions {nx} x {ny} x {nz}: a motive list is nx (20 values) by ny (particles) by 1"
        )
    dtype = np.dtype(order + _DATA_TYPES[code])
    needed = HEADER_SIZE + nx * ny * dtype.itemsize
    if len(data) < needed:
        complete = (len(data) - HEADER_SIZE) // (nx * dtype.itemsize)
        raise ParseError(
            f"{source}: truncated: the header announces {ny} particles of {nx} values ({needed} bytes) but "
            f"the file has {len(data)} bytes; row {complete + 1} (particle {complete + 1}) is incomplete"
        )
    if len(data) > needed:
        raise ParseError(
            f"{source}: {len(data) - needed} bytes after the {ny} x {nx} values the header announces"
        )
    values = np.frombuffer(data, dtype=dtype, count=nx * ny, offset=HEADER_SIZE).reshape(ny, nx)
    target = np.float64 if dtype.kind == "f" else np.int64
    columns: dict[str, Column] = {_name(i + 1): values[:, i].astype(target) for i in range(nx)}
    fields = {"machine": str(machine), "data_type": str(code)}
    text = comment.rstrip(b"\0 ").decode("latin-1")
    if text:
        fields["comment"] = text
    if any(emdata):
        fields["emdata"] = " ".join(str(value) for value in emdata)
    user = user_data.rstrip(b"\0").decode("latin-1")
    if user:
        fields["user_data"] = user
    return RawDocument(FORMAT_IRI, {BLOCK: RawBlock(BLOCK, columns)}, fields=fields)


def to_bytes(document: RawDocument) -> bytes:
    """The bytes of an EM-format motive list (header as recorded in ``fields``, else PC float32)."""
    if len(document.blocks) != 1:
        raise ConversionError(
            f"a motive list holds exactly one table; the document has {len(document.blocks)} "
            f"({', '.join(document.blocks) or 'none'})"
        )
    block = next(iter(document.blocks.values()))
    fields = document.fields
    machine = _field_int(fields, "machine", 6)
    code = _field_int(fields, "data_type", 5)
    if machine not in _BYTE_ORDER:
        raise ConversionError(f"fields['machine'] = {machine}: only 3, 5 and 6 can be written")
    if code not in _DATA_TYPES:
        raise ConversionError(f"fields['data_type'] = {code}: only 1, 2, 4, 5 and 9 can be written")
    order = _BYTE_ORDER[machine]
    placed: dict[int, Column] = {}
    for name, values in block.columns.items():
        position = _position(name)
        if position in placed:
            raise ConversionError(f"column {name!r}: position {position} is given twice")
        if values.dtype.kind not in "iuf":
            raise ConversionError(f"column {name!r}: a motive list holds numbers only, not {values.dtype}")
        placed[position] = values
    nx = max([len(COLUMN_NAMES), *placed])
    dtype = np.dtype(order + _DATA_TYPES[code])
    matrix = np.zeros((block.n_rows, nx), dtype=dtype)
    for position, values in placed.items():
        matrix[:, position - 1] = values
    emdata = [int(value) for value in fields.get("emdata", "").split()] or [0] * 40
    if len(emdata) != 40:
        raise ConversionError(f"fields['emdata'] has {len(emdata)} integers; the EM header holds 40")
    comment = fields.get("comment", "").encode("latin-1")
    user_data = fields.get("user_data", "").encode("latin-1")
    if len(comment) > 80 or len(user_data) > 256:
        raise ConversionError("fields['comment'] is limited to 80 bytes and fields['user_data'] to 256")
    header = struct.pack(
        order + _HEADER, machine, 0, 0, code, nx, block.n_rows, 1, comment, *emdata, user_data
    )
    return header + matrix.tobytes()


def write(document: RawDocument, path: Path) -> None:
    """Write a motive list, atomically."""
    atomic_write_bytes(path, to_bytes(document))


def _name(position: int) -> str:
    return COLUMN_NAMES[position - 1] if position <= len(COLUMN_NAMES) else f"col_{position}"


def _position(name: str) -> int:
    if name in _POSITIONS:
        return _POSITIONS[name]
    match = _GENERIC.match(name)
    if match is None or int(match[1]) < 1:
        raise ConversionError(f"column {name!r} is not a motive-list row (names: score, ..., class, col_<N>)")
    return int(match[1])


def _field_int(fields: dict[str, str], key: str, default: int) -> int:
    try:
        return int(fields.get(key, default))
    except ValueError:
        raise ConversionError(f"fields[{key!r}] = {fields[key]!r} is not an integer code") from None
