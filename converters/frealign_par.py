"""FREALIGN / FrealignX / cisTEM-export parameter files (``.par``).

Layout, from the writers and readers of the format:

* comment lines start with ``C``; one of them before the data names the columns. FREALIGN 9 and FrealignX
  write ``C           PSI   THETA     PHI       SHX       SHY     MAG  INCLUDE   DF1      DF2  ANGAST  PSHIFT
  OCC      LogP      SIGMA   SCORE  CHANGE`` where the leading ``C`` also labels the first column, the
  particle number (asarnow/pyem ``pyem/metadata/cistem.py`` [82981cf] ``write_fx_par``, ``parse_f9_par``);
  nextpyp/pyp ``src/pyp/inout/metadata/frealign_parfile.py`` [3440405] writes ``C    NO     PSI ...``, where
  ``C`` is only the comment mark. FREALIGN 9.0-9.08 has 16 columns (``FILM`` for ``INCLUDE``, no
  ``PSHIFT``), FrealignX and cisTEM's export 17, FREALIGN 8's CCLIN layout 13 (``PRESA DPRESA``).
* one fixed-width line per particle, Fortran-style: ``%7d`` number, ``%8.2f`` PSI THETA PHI, ``%10.2f`` SHX
  SHY, ``%8.0f`` MAG, ``%6d`` INCLUDE/FILM, ``%9.1f`` DF1 DF2, ``%8.2f`` ANGAST PSHIFT OCC, ``%10d`` LogP,
  ``%11.4f`` SIGMA, ``%8.2f`` SCORE CHANGE (pyp's ``FREALIGNX_PAR_STRING_TEMPLATE``);
* FREALIGN 9 ends the file with more ``C`` lines (averages, statistics).

Representation: block :data:`BLOCK`, one row per particle, columns named by the header line (``C`` or
``NO`` for the particle number as the file says; without a header line, FREALIGN's names for 13, 16 or 17
columns, else ``col_<N>``). ``fields["header_comments"]`` and ``fields["trailer_comments"]`` keep the other
comment lines before and after the data (text after the ``C``, one per line). Values are read by blanks,
as pyem and cisTEM do, so every line must have as many fields as the header.

The writer uses the widths and decimals above (FREALIGN's precision); a value that would lose digits at
that precision is written in its shortest exact form instead, so reading a file and writing it gives the
same numbers. Columns the layout does not know are written ``%10.4f`` (or ``%10d``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, decode_text, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["BLOCK", "FORMAT_IRI", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_FREALIGNPar"
BLOCK = "particles"

_FREALIGNX = ["C", "PSI", "THETA", "PHI", "SHX", "SHY", "MAG", "INCLUDE", "DF1", "DF2", "ANGAST", "PSHIFT",
              "OCC", "LogP", "SIGMA", "SCORE", "CHANGE"]  # fmt: skip
_FREALIGN9 = ["C", "PSI", "THETA", "PHI", "SHX", "SHY", "MAG", "FILM", "DF1", "DF2", "ANGAST",
              "OCC", "LogP", "SIGMA", "SCORE", "CHANGE"]  # fmt: skip
_CCLIN = ["C", "PSI", "THETA", "PHI", "SHX", "SHY", "MAG", "FILM", "DF1", "DF2", "ANGAST", "PRESA", "DPRESA"]
_DEFAULTS = {len(names): names for names in (_FREALIGNX, _FREALIGN9, _CCLIN)}

# name -> (width, decimals; None for integers)
_LAYOUT: dict[str, tuple[int, int | None]] = {
    "C": (7, None),
    "NO": (7, None),
    "NUM": (7, None),
    "PSI": (8, 2),
    "THETA": (8, 2),
    "PHI": (8, 2),
    "SHX": (10, 2),
    "SHY": (10, 2),
    "SX": (10, 2),
    "SY": (10, 2),
    "MAG": (8, 0),
    "INCLUDE": (6, None),
    "FILM": (6, None),
    "DF1": (9, 1),
    "DF2": (9, 1),
    "ANGAST": (8, 2),
    "PSHIFT": (8, 2),
    "OCC": (8, 2),
    "LogP": (10, None),
    "LOGP": (10, None),
    "SIGMA": (11, 4),
    "SCORE": (8, 2),
    "CHANGE": (8, 2),
    "PRESA": (8, 2),
    "DPRESA": (8, 2),
}
_OTHER = (10, 4)


def read(path: Path) -> RawDocument:
    """Read a FREALIGN ``.par`` file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a FREALIGN ``.par`` file."""
    text = decode_text(data, source)
    before: list[str] = []
    after: list[str] = []
    header: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("C"):
            if rows:
                after.append(stripped[1:])
            elif _is_header(stripped):
                if header is not None:
                    before.append(" ".join(header))
                header, header_line = stripped.split(), number
            else:
                before.append(stripped[1:])
            continue
        if after:
            raise ParseError(f"{source}: line {number}: a particle line after the closing comment lines")
        rows.append(stripped.split())
        lines.append(number)
    width = len(rows[0]) if rows else (len(header) if header else 0)
    names = _names(header, width, source, header_line)
    for tokens, number in zip(rows, lines, strict=True):
        if len(tokens) != len(names):
            raise ParseError(
                f"{source}: line {number}: {len(tokens)} fields where the header names {len(names)} columns "
                f"({' '.join(names[:4])} ...); the file may be truncated"
            )
    columns: dict[str, Column] = {}
    if rows:
        matrix = np.array(rows, dtype=str)
        for index, name in enumerate(names):
            values = infer_column(matrix[:, index])
            if values.dtype.kind == "U":
                row = next(i for i, value in enumerate(values) if not _is_number(value))
                raise ParseError(
                    f"{source}: line {lines[row]}, column {name}: {str(values[row])!r} is not a number"
                )
            columns[name] = values
    else:
        columns = {name: np.array([], dtype=np.float64) for name in names}
    fields = {}
    if before:
        fields["header_comments"] = "\n".join(before)
    if after:
        fields["trailer_comments"] = "\n".join(after)
    block = RawBlock(BLOCK, columns, lines=np.array(lines, dtype=np.int64))
    return RawDocument(FORMAT_IRI, {BLOCK: block}, fields=fields)


def _is_header(stripped: str) -> bool:
    words = stripped.split()
    return "PSI" in words or "DF1" in words


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _names(header: list[str] | None, width: int, source: str, header_line: int) -> list[str]:
    if header is None:
        return _DEFAULTS.get(width, [f"col_{i}" for i in range(1, width + 1)])
    if len(header) == width:
        names = header  # FREALIGN style: "C" is the comment mark and the first column's label
    elif len(header) == width + 1:
        names = header[1:]  # pyp style: "C    NO     PSI ..."
    else:
        raise ParseError(
            f"{source}: line {header_line}: the header names {len(header)} columns but the particle lines "
            f"have {width} fields"
        )
    if len(set(names)) != len(names):
        raise ParseError(f"{source}: line {header_line}: the header repeats a column name: {' '.join(names)}")
    return names


def to_string(document: RawDocument) -> str:
    """The text of a FREALIGN ``.par`` file: header comments, column header, particles, trailer."""
    if len(document.blocks) != 1:
        raise ConversionError(
            f"a FREALIGN .par file holds exactly one table; the document has {len(document.blocks)} "
            f"({', '.join(document.blocks) or 'none'})"
        )
    block = next(iter(document.blocks.values()))
    names = list(block.columns)
    for name in names:
        if not name or any(c.isspace() for c in name):
            raise ConversionError(f"column {name!r}: .par column names are single words")
        if block.columns[name].dtype.kind not in "iuf":
            raise ConversionError(
                f"column {name!r}: a .par file holds numbers only, not {block.columns[name].dtype}"
            )
    out = [f"C{line}\n" for line in document.fields.get("header_comments", "").split("\n") if line]
    text = [_format_column(block.columns[name], *_LAYOUT.get(name, _OTHER)) for name in names]
    if names:
        out.append(_header_line(names))
    for row in range(block.n_rows):
        out.append("".join(column[row] for column in text) + "\n")
    out.extend(f"C{line}\n" for line in document.fields.get("trailer_comments", "").split("\n") if line)
    return "".join(out)


def write(document: RawDocument, path: Path) -> None:
    """Write a FREALIGN ``.par`` file, atomically."""
    atomic_write_bytes(path, to_string(document).encode("utf-8"))


def _header_line(names: list[str]) -> str:
    """``C`` then the names right-aligned over their columns; a first column named ``C`` shares the mark."""
    labels = [_cell(name, _LAYOUT.get(name, _OTHER)[0]) for name in names]
    first = "C" if names[0] == "C" else _cell(names[0], _LAYOUT.get(names[0], _OTHER)[0] - 1)
    return ("C" + first if names[0] != "C" else f"{first:<{_LAYOUT['C'][0]}}") + "".join(labels[1:]) + "\n"


def _cell(token: str, width: int) -> str:
    # Always at least one blank before a token: readers split on blanks.
    return f" {token}" if len(token) >= width else f"{token:>{width}}"


def _format_column(values: Column, width: int, decimals: int | None) -> list[str]:
    """Each value at the layout's width and precision, or exactly when that precision would lose digits."""
    out = []
    integral = values.dtype.kind in "iu"
    for value in values.tolist():
        if integral:
            token = str(value)
        else:
            places = 4 if decimals is None else decimals
            token = f"{value:#.{places}f}"
            if float(token) != value:
                token = repr(float(value))
        out.append(_cell(token, width))
    return out
