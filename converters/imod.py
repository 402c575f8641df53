"""IMOD tilt-series files: transforms (.xf), tilt angles (.tlt/.rawtlt), X-axis tilts (.xtilt), and the
read-only tiltalign log (align.log), etomo data file (.edf) and command files (tilt.com).

Facts about the syntax, from IMOD's own sources (LabShare-Archive/IMOD, commit 8c592ce):

* ``.xf`` (and .prexf, .prexg, .xg, .tltxf): one line per view, ``A11 A12 A21 A22 DX DY``; IMOD writes them
  with Fortran ``format(4f12.7,2f12.3)`` (``flib/subrs/xfsubs/xfwrite.f``) and reads them list-directed,
  i.e. free format (``flib/subrs/xfsubs/xfread.f``). Block ``views``, columns ``A11`` .. ``DY``.
* ``.tlt`` and ``.xtilt``: one angle in degrees per line, written ``(f7.2)`` by tiltalign
  (``flib/tiltalign/tiltalign.f90``); ``.rawtlt`` has the same syntax (written by SerialEM, etomo or
  scripts). Block ``views``, column ``tilt_angle`` (.tlt/.rawtlt) or ``xtilt_angle`` (.xtilt).
* align.log: the ``*** Entries to program NAME ***`` blocks (``Key = Value`` lines) become fields
  ``NAME.Key``; the per-view solution table (``view rotation tilt deltilt mag dmag skew resid-nm`` in
  IMOD >= 4.x, ``... mean resid`` in older versions, ``view tilt ... X-tilt mean resid`` when the rotation
  is fixed; rows ``(i4,2f10.1,f10.2,2f10.4,2f10.2)``, ``tiltalign.f90``) becomes block ``views`` keyed by
  the header's words; the first table is the global solution (later ones, printed for local areas, are
  not read). Scalar results become fields under the keys of :data:`ALIGN_LOG_FIELDS`; the tilt-angle
  offset tools use is ``total_tilt_angle_change`` (``Total tilt angle change =``, printed by
  ``flib/tiltalign/find_surfaces.f90``; teamtomo/yet-another-imod-wrapper
  ``yet_another_imod_wrapper/utils/etomo.py`` ``get_tilt_angle_offset`` reads the same line).
* ``.edf``: Java properties ``Key=Value`` (``Setup.DataSource=CCD``); ``#`` comment lines (etomo writes a
  timestamp there) are not kept.
* ``.com``: ``$program args`` starts a program, the lines after it are its options ``Option value``
  (``tilt.com``: ``$tilt -StandardInput`` then ``THICKNESS 1500``); fields ``program`` (its arguments) and
  ``program.Option``; ``#`` lines are comments and are not kept.

A key seen again in the same file is stored as ``key#2``, ``key#3``, ... so nothing is lost.
On writing, numbers keep IMOD's widths and at least IMOD's decimals, and more decimals when the values
carry them (a .xf written by another program with 4-decimal shifts survives exactly; IMOD reads free
format). Integer columns are written as integers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = [
    "ALIGN_LOG_FIELDS",
    "ALIGN_LOG_IRI",
    "COMMAND_FILE_IRI",
    "EDF_IRI",
    "FORMAT_IRI",
    "FORMAT_IRIS",
    "TILT_ANGLES_IRI",
    "XF_COLUMNS",
    "XF_IRI",
    "XTILT_IRI",
    "format_for",
    "parse",
    "read",
    "to_string",
    "write",
]

_SKG = "https://w3id.org/scipion-kg/ontology#"
XF_IRI = _SKG + "Format_IMODTransform"
TILT_ANGLES_IRI = _SKG + "Format_IMODTiltAngles"
XTILT_IRI = _SKG + "Format_IMODXTilt"
ALIGN_LOG_IRI = _SKG + "Format_IMODAlignLog"
EDF_IRI = _SKG + "Format_IMODEtomoDirective"
COMMAND_FILE_IRI = _SKG + "Format_IMODCommandFile"
FORMAT_IRI = XF_IRI
FORMAT_IRIS = (XF_IRI, TILT_ANGLES_IRI, XTILT_IRI, ALIGN_LOG_IRI, EDF_IRI, COMMAND_FILE_IRI)

XF_COLUMNS = ("A11", "A12", "A21", "A22", "DX", "DY")
_ANGLE_COLUMN = {TILT_ANGLES_IRI: "tilt_angle", XTILT_IRI: "xtilt_angle"}

_EXTENSIONS = {
    ".xf": XF_IRI,
    ".prexf": XF_IRI,
    ".prexg": XF_IRI,
    ".xg": XF_IRI,
    ".tltxf": XF_IRI,
    ".tlt": TILT_ANGLES_IRI,
    ".rawtlt": TILT_ANGLES_IRI,
    ".xtilt": XTILT_IRI,
    ".log": ALIGN_LOG_IRI,
    ".edf": EDF_IRI,
    ".com": COMMAND_FILE_IRI,
}

# Scalar results of tiltalign: field key -> the log text that precedes the value(s).
ALIGN_LOG_FIELDS: dict[str, str] = {
    "rotation_angle_at_minimum_tilt": "At minimum tilt, rotation angle is",
    "fixed_rotation_angle": "Fixed rotation angle is",
    "overall_rotation_angle": "Overall rotation angle is",
    "beam_tilt_angle": "Beam tilt angle is",
    "projection_skew": "Projection skew is",
    "residual_error_weighted_mean": "Residual error weighted mean:",
    "x_axis_tilt_needed": "X axis tilt needed =",
    "incremental_tilt_angle_change": "Incremental tilt angle change =",
    "total_tilt_angle_change": "Total tilt angle change =",
    "unbinned_thickness_needed": "Unbinned thickness needed to contain centers of all fiducials =",
    "incremental_unbinned_z_shift": "Incremental unbinned shift needed to center range of fiducials in Z =",
    "total_unbinned_z_shift": "Total unbinned shift needed to center range of fiducials in Z =",
}
_RESIDUAL = re.compile(r"Residual error mean and sd:\s+(\S+)\s+(\S+)\s*(\S*)")
_ENTRIES = re.compile(r"^\s*\*\*\* Entries to program (\S+) \*\*\*")
_END_ENTRIES = re.compile(r"^\s*\*\*\* End of entries \*\*\*")
_DUPLICATE = re.compile(r"#\d+$")

# (width, least decimals, most decimals) per column, IMOD's layout first.
_XF_LAYOUT = {"A11": (12, 7, 9), "A12": (12, 7, 9), "A21": (12, 7, 9), "A22": (12, 7, 9)}
_SHIFT_LAYOUT = (12, 3, 6)
_ANGLE_LAYOUT = (7, 2, 6)


def format_for(path: Path | str) -> str:
    """The format IRI of an IMOD file from its extension (``.xf``, ``.tlt``, ``align.log``...)."""
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        known = ", ".join(sorted(_EXTENSIONS))
        raise ParseError(f"{path}: not an IMOD file extension ({suffix or 'none'}; known: {known})") from None


def read(path: Path, format_iri: str | None = None) -> RawDocument:
    """Read an IMOD file; its format comes from the extension unless ``format_iri`` is given."""
    chosen = format_iri or format_for(Path(path))
    return read_with(lambda data, source: parse(data, source, chosen), path)


def parse(data: str | bytes, source: str = "<string>", format_iri: str | None = None) -> RawDocument:
    """Parse IMOD text; the format is ``format_iri``, else guessed from ``source``'s extension."""
    iri = format_iri or format_for(source)
    text = _decode(data)
    if iri == XF_IRI:
        return _parse_xf(text, source)
    if iri in _ANGLE_COLUMN:
        return _parse_angles(text, source, iri)
    if iri == ALIGN_LOG_IRI:
        return _parse_align_log(text, source)
    if iri == EDF_IRI:
        return _parse_edf(text, source)
    if iri == COMMAND_FILE_IRI:
        return _parse_command_file(text, source)
    raise ParseError(f"{source}: {iri} is not an IMOD format this module reads")


def to_string(document: RawDocument) -> str:
    """The file text of an .xf, .tlt/.rawtlt, .xtilt, .edf or .com document (align.log is read-only)."""
    iri = document.format_iri
    if iri == XF_IRI:
        return _xf_text(document)
    if iri in _ANGLE_COLUMN:
        return _angles_text(document)
    if iri == EDF_IRI:
        return "".join(f"{_base_key(key)}={value}\n" for key, value in document.fields.items())
    if iri == COMMAND_FILE_IRI:
        return _command_file_text(document)
    raise ConversionError(
        f"{_name(document)}: writing {iri} is not supported (the tiltalign log is read-only)"
    )


def write(document: RawDocument, path: Path) -> None:
    """Write ``document`` to ``path`` atomically."""
    atomic_write_bytes(Path(path), to_string(document).encode())


# -- transforms and angles -------------------------------------------------------------------------------


def _parse_xf(text: str, source: str) -> RawDocument:
    block = _number_table(text, source, XF_COLUMNS, "views", "A11 A12 A21 A22 DX DY")
    return RawDocument(XF_IRI, {"views": block})


def _parse_angles(text: str, source: str, iri: str = TILT_ANGLES_IRI) -> RawDocument:
    column = _ANGLE_COLUMN[iri]
    block = _number_table(text, source, (column,), "views", "one angle")
    return RawDocument(iri, {"views": block})


def _number_table(text: str, source: str, labels: Sequence[str], name: str, expected: str) -> RawBlock:
    """Whitespace-separated numbers, ``len(labels)`` per non-blank line."""
    rows: list[list[str]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != len(labels):
            raise ParseError(
                f"{source}: line {number}: expected {len(labels)} values ({expected}), found {len(tokens)}"
            )
        for label, token in zip(labels, tokens, strict=True):
            _check_number(token, source, number, label)
        rows.append(tokens)
        lines.append(number)
    if not rows:
        raise ParseError(f"{source}: no data lines (empty or truncated file)")
    columns = {label: infer_column([row[i] for row in rows]) for i, label in enumerate(labels)}
    return RawBlock(name, columns, np.asarray(lines, dtype=np.int64))


def _xf_text(document: RawDocument) -> str:
    block = _only_block(document)
    layout = [(label, *_XF_LAYOUT.get(label, _SHIFT_LAYOUT)) for label in XF_COLUMNS]
    return _fixed_width_text(document, block, layout)


def _angles_text(document: RawDocument) -> str:
    block = _only_block(document)
    label = _ANGLE_COLUMN[document.format_iri]
    return _fixed_width_text(document, block, [(label, *_ANGLE_LAYOUT)])


def _only_block(document: RawDocument) -> RawBlock:
    if "views" not in document.blocks:
        raise ConversionError(f"{_name(document)}: no block 'views' to write")
    return document.blocks["views"]


def _fixed_width_text(document: RawDocument, block: RawBlock, layout: list[tuple[str, int, int, int]]) -> str:
    missing = [label for label, *_ in layout if label not in block.columns]
    if missing:
        raise ConversionError(f"{_name(document)}: block 'views' lacks column(s) {', '.join(missing)}")
    cells = [
        _format_numbers(block.columns[label], width, least, most, f"{_name(document)}: column {label}")
        for label, width, least, most in layout
    ]
    return "".join("".join(_spaced(cell) for cell in row) + "\n" for row in zip(*cells, strict=True))


def _format_numbers(values: Column, width: int, least: int, most: int, where: str) -> list[str]:
    """Right-aligned numbers, at least ``least`` decimals, more (up to ``most``) if the values need them."""
    if values.dtype.kind in "iu":
        return [f"{int(value):{width}d}" for value in values]
    if values.dtype.kind != "f":
        raise ConversionError(f"{where}: text values cannot be written to a numeric IMOD file")
    digits = _decimals(values, least, most)
    return [f"{float(value):{width}.{digits}f}" for value in values]


def _decimals(values: Column, least: int, most: int) -> int:
    """The fewest decimals >= ``least`` that print every finite value exactly (``most`` at worst)."""
    finite = [float(value) for value in values if np.isfinite(value)]
    for digits in range(least, most + 1):
        if all(float(f"{value:.{digits}f}") == value for value in finite):
            return digits
    return most


def _spaced(cell: str) -> str:
    # A number wider than its field would touch its neighbour: IMOD reads free format, so one space does.
    return cell if cell.startswith(" ") else " " + cell


# -- align.log -------------------------------------------------------------------------------------------


def _parse_align_log(text: str, source: str) -> RawDocument:
    fields: dict[str, str] = {}
    lines = text.splitlines()
    program: str | None = None
    table: RawBlock | None = None
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if (match := _ENTRIES.match(line)) is not None:
            program = match.group(1)
            continue
        if program is not None:
            if _END_ENTRIES.match(line):
                program = None
            elif "=" in line:
                key, value = line.split("=", 1)
                _add_field(fields, f"{program}.{key.strip()}", value.strip())
            continue
        tokens = line.split()
        if table is None and tokens[:1] == ["view"] and "tilt" in tokens:
            table, number = _view_table(lines, number, source)
            continue
        _scalar_fields(line, number, source, fields)
    if table is None:
        raise ParseError(
            f"{source}: no per-view table ('view rotation tilt ...'): not a complete tiltalign log"
        )
    return RawDocument(ALIGN_LOG_IRI, {"views": table}, fields)


def _view_table(lines: list[str], header_number: int, source: str) -> tuple[RawBlock, int]:
    """The rows after the header at 1-based ``header_number``; returns the block and the next index."""
    words = lines[header_number - 1].split()
    labels: list[str] = []
    for word in words:
        if word == "resid" and labels and labels[-1] == "mean":
            labels[-1] = "mean resid"
        else:
            labels.append(word)
    rows: list[list[str]] = []
    row_lines: list[int] = []
    number = header_number
    while number < len(lines):
        tokens = lines[number].split()
        if not tokens:
            break
        number += 1
        if len(tokens) != len(labels):
            raise ParseError(
                f"{source}: line {number}: expected {len(labels)} values ({' '.join(labels)}), "
                f"found {len(tokens)}"
            )
        for label, token in zip(labels, tokens, strict=True):
            _check_number(token, source, number, label)
        rows.append(tokens)
        row_lines.append(number)
    if not rows:
        raise ParseError(f"{source}: line {header_number}: per-view table has no rows (truncated log?)")
    columns = {label: infer_column([row[i] for row in rows]) for i, label in enumerate(labels)}
    return RawBlock("views", columns, np.asarray(row_lines, dtype=np.int64)), number


def _scalar_fields(line: str, number: int, source: str, fields: dict[str, str]) -> None:
    for key, text in ALIGN_LOG_FIELDS.items():
        start = line.find(text)
        if start < 0:
            continue
        tokens = line[start + len(text) :].split()
        if not tokens:
            raise ParseError(f"{source}: line {number}, field {key}: no value after {text!r}")
        _check_number(tokens[0], source, number, key)
        _add_field(fields, key, tokens[0])
        return
    if (match := _RESIDUAL.search(line)) is not None:
        mean, sd, unit = match.groups()
        _check_number(mean, source, number, "residual_error_mean")
        _check_number(sd, source, number, "residual_error_sd")
        _add_field(fields, "residual_error_mean", mean)
        _add_field(fields, "residual_error_sd", sd)
        if unit:
            _add_field(fields, "residual_error_unit", unit)


# -- etomo .edf and command files ------------------------------------------------------------------------


def _parse_edf(text: str, source: str) -> RawDocument:
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        if "=" not in stripped:
            raise ParseError(f"{source}: line {number}: expected Key=Value, found {stripped!r}")
        key, value = stripped.split("=", 1)
        if not key.strip():
            raise ParseError(f"{source}: line {number}: empty key in {stripped!r}")
        _add_field(fields, key.strip(), value.strip())
    if not fields:
        raise ParseError(f"{source}: no Key=Value lines (empty or truncated file)")
    return RawDocument(EDF_IRI, {}, fields)


def _parse_command_file(text: str, source: str) -> RawDocument:
    fields: dict[str, str] = {}
    program: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("$"):
            words = stripped[1:].split(None, 1)
            if not words:
                raise ParseError(f"{source}: line {number}: '$' without a program name")
            program = _add_field(fields, words[0], words[1] if len(words) > 1 else "")
            continue
        if program is None:
            raise ParseError(f"{source}: line {number}: option {stripped!r} before any $program line")
        option, *value = stripped.split(None, 1)
        _add_field(fields, f"{program}.{option}", value[0] if value else "")
    if not fields:
        raise ParseError(f"{source}: no $program line (empty or truncated file)")
    return RawDocument(COMMAND_FILE_IRI, {}, fields)


def _command_file_text(document: RawDocument) -> str:
    out: list[str] = []
    for key, value in document.fields.items():
        program, dot, option = key.partition(".")
        if not dot:
            out.append(f"${_base_key(program)} {value}".rstrip())
        else:
            out.append(f"{_base_key(option)} {value}".rstrip())
    return "".join(line + "\n" for line in out)


# -- shared helpers --------------------------------------------------------------------------------------


def _add_field(fields: dict[str, str], key: str, value: str) -> str:
    """Store ``value`` under ``key``, or ``key#2``, ``key#3``... if taken; returns the key used."""
    stored, count = key, 1
    while stored in fields:
        count += 1
        stored = f"{key}#{count}"
    fields[stored] = value
    return stored


def _base_key(key: str) -> str:
    return _DUPLICATE.sub("", key)


def _check_number(token: str, source: str, line: int, column: str) -> None:
    try:
        float(token)
    except ValueError:
        raise ParseError(f"{source}: line {line}, column {column}: {token!r} is not a number") from None


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _name(document: RawDocument) -> str:
    return str(document.source) if document.source is not None else "document"
