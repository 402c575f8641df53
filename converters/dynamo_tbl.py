"""Dynamo particle tables (``.tbl``) and tomogram table maps (``.doc``).

A Dynamo table is a headerless text matrix, one particle per line, whose columns mean what their position
says (Dynamo wiki "Table convention", the ``dthelp`` listing). Column names follow teamtomo/dynamotable
``dynamotable/constants.py`` [cb5a286], with the short names ``aligned`` and ``averaged`` for columns 2 and
3: tag 1, aligned 2, averaged 3, dx dy dz 4-6, tdrot tilt narot 7-9, cc 10, cc2 11, cpu 12, ftype 13,
ymintilt ymaxtilt xmintilt xmaxtilt 14-17, fs1 fs2 18-19, tomo 20, reg 21, class 22, annotation 23,
x y z 24-26, dshift 27, daxis 28, dnarot 29, dcc 30, otag 31, npar 32, ref 34, sref 35, apix 36, def 37,
eig1 41, eig2 42. The columns dthelp leaves undefined (33, 38-40) and any beyond 42 are ``col_<N>``.
Tables come with 26 to 42 or more columns (corpus ``dynamo_tbl/``: cryoCAT's has 26, dynamo2m's and
teamtomo's ``t_double.tbl`` 35); every line of one table has the same count.

A table map (``.doc``, Dynamo wiki "Tomogram-table map file") has one ``index path`` line per tomogram:
the index is the table's column 20 (``tomo``). It is read into block :data:`MAP_BLOCK` with the columns
``index`` (int) and ``path`` (str).

Writing: every column of the block is placed at its position; positions no column names are written as 0
(a table needs all of them), so a table read from a file is written back with the same columns in the same
order. Numbers are written in their shortest exact form (``4.1156``, ``1.2074e-06``): re-reading gives the
same values.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, decode_text, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = [
    "BLOCK",
    "COLUMN_NAMES",
    "FORMAT_IRI",
    "MAP_BLOCK",
    "MAP_FORMAT_IRI",
    "column_name",
    "column_position",
    "parse",
    "parse_table_map",
    "read",
    "read_table_map",
    "table_map_to_string",
    "to_string",
    "write",
    "write_table_map",
]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_DynamoTable"
MAP_FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_DynamoTableMap"
BLOCK = "particles"
MAP_BLOCK = "tomograms"

# 1-based column position -> name (teamtomo/dynamotable constants.py; 33 and 38-40 are undefined there).
COLUMN_NAMES: dict[int, str] = {
    1: "tag",
    2: "aligned",
    3: "averaged",
    4: "dx",
    5: "dy",
    6: "dz",
    7: "tdrot",
    8: "tilt",
    9: "narot",
    10: "cc",
    11: "cc2",
    12: "cpu",
    13: "ftype",
    14: "ymintilt",
    15: "ymaxtilt",
    16: "xmintilt",
    17: "xmaxtilt",
    18: "fs1",
    19: "fs2",
    20: "tomo",
    21: "reg",
    22: "class",
    23: "annotation",
    24: "x",
    25: "y",
    26: "z",
    27: "dshift",
    28: "daxis",
    29: "dnarot",
    30: "dcc",
    31: "otag",
    32: "npar",
    34: "ref",
    35: "sref",
    36: "apix",
    37: "def",
    41: "eig1",
    42: "eig2",
}
_POSITIONS = {name: position for position, name in COLUMN_NAMES.items()}
_GENERIC = re.compile(r"^col_(\d+)$")


def column_name(position: int) -> str:
    """The name of a 1-based table column."""
    return COLUMN_NAMES.get(position, f"col_{position}")


def column_position(name: str) -> int:
    """The 1-based position of a named column (``tdrot`` -> 7, ``col_33`` -> 33)."""
    if name in _POSITIONS:
        return _POSITIONS[name]
    match = _GENERIC.match(name)
    if match is None or int(match[1]) < 1:
        raise ConversionError(
            f"column {name!r} is not a Dynamo table column (names: tag, dx, tdrot, ..., col_<N>)"
        )
    return int(match[1])


def read(path: Path) -> RawDocument:
    """Read a Dynamo ``.tbl`` table."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a Dynamo table."""
    text = decode_text(data, source)
    rows: list[list[str]] = []
    lines: list[int] = []
    width = 0
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if not rows:
            width = len(tokens)
        elif len(tokens) != width:
            raise ParseError(
                f"{source}: line {number}: {len(tokens)} columns where the table's first row "
                f"(line {lines[0]}) has {width}; the file may be truncated"
            )
        rows.append(tokens)
        lines.append(number)
    columns: dict[str, Column] = {}
    if rows:
        matrix = np.array(rows, dtype=str)
        for index in range(width):
            name = column_name(index + 1)
            values = infer_column(matrix[:, index])
            if values.dtype.kind == "U":
                row = _first_non_number(values)
                raise ParseError(
                    f"{source}: line {lines[row]}, column {index + 1} ({name}): "
                    f"{str(values[row])!r} is not a number"
                )
            columns[name] = values
    block = RawBlock(BLOCK, columns, lines=np.array(lines, dtype=np.int64))
    return RawDocument(FORMAT_IRI, {BLOCK: block})


def to_string(document: RawDocument) -> str:
    """The text of a Dynamo table: one line per row, columns at their Dynamo positions."""
    block = _single_block(document, "a Dynamo table")
    placed: dict[int, Column] = {}
    for name, values in block.columns.items():
        position = column_position(name)
        if position in placed:
            raise ConversionError(f"column {name!r}: position {position} is given twice")
        if values.dtype.kind not in "iuf":
            raise ConversionError(f"column {name!r}: a Dynamo table holds numbers only, not {values.dtype}")
        placed[position] = values
    if not placed:
        return ""
    width = max(placed)
    zero = ["0"] * block.n_rows
    text_columns = [_format_column(placed[p]) if p in placed else zero for p in range(1, width + 1)]
    return "".join(" ".join(row) + "\n" for row in zip(*text_columns, strict=True))


def write(document: RawDocument, path: Path) -> None:
    """Write a Dynamo table, atomically."""
    atomic_write_bytes(path, to_string(document).encode("ascii"))


def read_table_map(path: Path) -> RawDocument:
    """Read a Dynamo tomogram table map (``.doc``)."""
    return read_with(parse_table_map, path)


def parse_table_map(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a Dynamo table map: ``index path`` lines."""
    text = decode_text(data, source)
    indices: list[int] = []
    paths: list[str] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(f"{source}: line {number}: expected 'index path', found only {parts[0]!r}")
        try:
            indices.append(int(parts[0]))
        except ValueError:
            raise ParseError(
                f"{source}: line {number}, column index: {parts[0]!r} is not an integer tomogram index"
            ) from None
        paths.append(parts[1].strip())
        lines.append(number)
    columns: dict[str, Column] = {
        "index": np.array(indices, dtype=np.int64),
        "path": np.array(paths, dtype=str),
    }
    block = RawBlock(MAP_BLOCK, columns, lines=np.array(lines, dtype=np.int64))
    return RawDocument(MAP_FORMAT_IRI, {MAP_BLOCK: block})


def table_map_to_string(document: RawDocument) -> str:
    """The text of a Dynamo table map."""
    block = _single_block(document, "a Dynamo table map")
    for name in ("index", "path"):
        if name not in block.columns:
            raise ConversionError(
                f"a Dynamo table map needs the columns 'index' and 'path'; {name!r} is missing"
            )
    indices, paths = block.columns["index"], block.columns["path"]
    if indices.dtype.kind not in "iu":
        raise ConversionError(f"column 'index': tomogram indices are integers, not {indices.dtype}")
    return "".join(f"{int(index)} {path}\n" for index, path in zip(indices, paths, strict=True))


def write_table_map(document: RawDocument, path: Path) -> None:
    """Write a Dynamo table map, atomically."""
    atomic_write_bytes(path, table_map_to_string(document).encode("utf-8"))


def _first_non_number(values: Column) -> int:
    for row, value in enumerate(values):
        try:
            float(value)
        except ValueError:
            return row
    return 0


def _format_column(values: Column) -> list[str]:
    if values.dtype.kind in "iu":
        return [str(value) for value in values.tolist()]
    return [repr(value) for value in values.astype(np.float64).tolist()]


def _single_block(document: RawDocument, what: str) -> RawBlock:
    if len(document.blocks) != 1:
        raise ConversionError(
            f"{what} holds exactly one table; the document has {len(document.blocks)} "
            f"({', '.join(document.blocks) or 'none'})"
        )
    return next(iter(document.blocks.values()))
