"""CTFFIND 4/5 output summaries (the ``.txt`` beside the diagnostic image): header comments and one row per
micrograph.

CTFFIND writes (``src/programs/ctffind/ctffind.cpp``, ``WriteCommentLine`` calls; CTFFIND 4.1 and 5)::

    # Output from CTFFind version 4.1.8, run on 2019-02-25 11:33:34
    # Input file: 031.mrc ; Number of micrographs: 41
    # Pixel size: 1.327 Angstroms ; acceleration voltage: 300.0 keV ; spherical aberration: 2.70 mm ; ...
    # Box size: 512 pixels ; min. res.: 30.0 Angstroms ; ... ; min. def.: 10000.0 um; max. def. 75000.0 um
    # Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; ... #7 - spacing ...
    1.000000 14477.870117 13500.001953 75.000012 0.000000 0.001071 12.144508

CTFFIND 5 adds ``#8 - Estimated tilt axis angle; #9 - Estimated tilt angle ; #10 Estimated sample
thickness (in Angstroms)``. Rows are ``%f`` numbers separated by one space.

The document: block ``micrographs`` whose columns are named by the ``# Columns:`` line's own text
(``micrograph number``, ``defocus 1 [Angstroms]``, ``defocus 2``, ``azimuth of astigmatism``,
``additional phase shift [radians]``, ``cross correlation``, ``spacing (in Angstroms) up to which CTF rings
were fit successfully``, ...), and ``fields`` from the other header lines, as strings:

* ``CTFFind version`` and ``run on`` from the first line (the version is also ``document.version``);
* every ``label: value unit`` part of the ``;``-separated lines: ``fields[label]`` is the value alone and,
  when a unit follows the number, ``fields[label + " unit"]`` is the unit as written: ``Pixel size`` =
  ``1.327``, ``Pixel size unit`` = ``Angstroms``; ``acceleration voltage unit`` = ``keV``. Note that CTFFIND
  labels the defocus search range ``um`` although its numbers are in Å (10000.0 "um" is 1 µm).

The units of the table columns are CTFFIND's: defocus Å, azimuth degrees, phase shift radians, spacing Å.
:func:`to_string` writes CTFFIND's header layout from the fields (fields it does not know go on extra
``# label: value`` lines) and ``%f`` rows, widened to more decimals where values carry them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import RawBlock, RawDocument, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["BLOCK", "FORMAT_IRI", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_CTFFINDOutput"
BLOCK = "micrographs"

_VERSION = re.compile(
    r"Output from CTFFind version\s+(?P<version>\S+?),?\s+run on\s+(?P<date>.*)$", re.IGNORECASE
)
_COLUMN = re.compile(r"^#\s*(?P<index>\d+)\s*(?:-\s*)?(?P<label>.*?)\s*$")
_NO_COLON_PART = re.compile(r"^(?P<label>.+?)\s+(?P<value>[-+]?\.?\d.*)$")
# CTFFIND's header lines, as lists of labels; a label without a colon in CTFFIND's text is marked.
_LAYOUT = [
    ["Input file", "Number of micrographs"],
    ["Pixel size", "acceleration voltage", "spherical aberration", "amplitude contrast"],
    ["Box size", "min. res.", "max. res.", "min. def.", "max. def."],
]
_NO_COLON = {"max. def."}
_TIGHT_BEFORE = {"max. def."}  # CTFFIND writes "um; max. def." (no space before the semicolon)
_UNIT = " unit"


def read(path: Path) -> RawDocument:
    """Read a CTFFIND output .txt file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a CTFFIND output file."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    fields: dict[str, str] = {}
    version: str | None = None
    labels: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if labels is not None and rows:
                raise ParseError(f"{source}: line {number}: comment line after the data rows")
            comment = stripped[1:].strip()
            if comment.startswith("Columns:"):
                labels = _column_labels(comment[len("Columns:") :], source, number)
            elif (match := _VERSION.search(comment)) is not None:
                version = match.group("version")
                fields["CTFFind version"] = version
                fields["run on"] = match.group("date").strip()
            else:
                _header_parts(comment, source, number, fields)
            continue
        if labels is None:
            raise ParseError(f"{source}: line {number}: data row before the '# Columns:' header line")
        tokens = stripped.split()
        if len(tokens) != len(labels):
            raise ParseError(
                f"{source}: line {number}: expected {len(labels)} values (as in '# Columns:'), "
                f"found {len(tokens)}"
            )
        for label, token in zip(labels, tokens, strict=True):
            try:
                float(token)
            except ValueError:
                raise ParseError(
                    f"{source}: line {number}, column {label}: {token!r} is not a number"
                ) from None
        rows.append(tokens)
        lines.append(number)
    if labels is None:
        raise ParseError(f"{source}: no '# Columns:' header line (truncated or not a CTFFIND output file)")
    columns = {
        label: infer_column([row[i] for row in rows]) if rows else np.zeros(0, dtype=np.float64)
        for i, label in enumerate(labels)
    }
    block = RawBlock(BLOCK, columns, np.asarray(lines, dtype=np.int64))
    return RawDocument(FORMAT_IRI, {BLOCK: block}, fields, version)


def _column_labels(text: str, source: str, number: int) -> list[str]:
    labels: list[str] = []
    for part in text.split(";"):
        match = _COLUMN.match(part.strip())
        if match is None or int(match.group("index")) != len(labels) + 1 or not match.group("label"):
            raise ParseError(
                f"{source}: line {number}, column {len(labels) + 1}: cannot read {part.strip()!r}"
            )
        if match.group("label") in labels:
            raise ParseError(f"{source}: line {number}: column label {match.group('label')!r} given twice")
        labels.append(match.group("label"))
    return labels


def _header_parts(comment: str, source: str, number: int, fields: dict[str, str]) -> None:
    for part in comment.split(";"):
        part = part.strip()
        if ":" in part:
            label, value = (text.strip() for text in part.split(":", 1))
        elif (match := _NO_COLON_PART.match(part)) is not None:
            label, value = match.group("label"), match.group("value").strip()
        else:
            raise ParseError(
                f"{source}: line {number}: cannot read header part {part!r} (expected 'label: value')"
            )
        if not label:
            raise ParseError(f"{source}: line {number}: header part {part!r} has no label")
        if label in fields:
            raise ParseError(f"{source}: line {number}: header field {label!r} given twice")
        number_text, _, unit = value.partition(" ")
        if unit and _is_number(number_text):
            fields[label] = number_text
            fields[label + _UNIT] = unit.strip()
        else:
            fields[label] = value


def to_string(document: RawDocument) -> str:
    """The text of a CTFFIND output file (CTFFIND's header layout, ``%f`` rows)."""
    name = str(document.source) if document.source is not None else "document"
    block = document.blocks.get(BLOCK)
    if block is None:
        raise ConversionError(f"{name}: no block {BLOCK!r} to write")
    fields = dict(document.fields)
    out: list[str] = []
    version = fields.pop("CTFFind version", document.version)
    run_on = fields.pop("run on", None)
    if version is not None:
        out.append(f"# Output from CTFFind version {version}" + (f", run on {run_on}" if run_on else ""))
    for labels in [*_LAYOUT, *([label] for label in list(fields) if not label.endswith(_UNIT))]:
        parts = ""
        for label in labels:
            if label not in fields:
                continue
            value = fields.pop(label)
            unit = fields.pop(label + _UNIT, "")
            text = f"{label} {value}" if label in _NO_COLON else f"{label}: {value}"
            text += f" {unit}" if unit else ""
            if parts:
                parts += "; " if label in _TIGHT_BEFORE else " ; "
            parts += text
        if parts:
            out.append(f"# {parts}")
    out.append("# Columns: " + "; ".join(f"#{i} - {label}" for i, label in enumerate(block.columns, start=1)))
    cells = []
    for label, values in block.columns.items():
        if values.dtype.kind in "iu":
            cells.append([str(int(value)) for value in values])
        elif values.dtype.kind == "f":
            digits = _decimals([float(value) for value in values if np.isfinite(value)])
            cells.append([f"{float(value):.{digits}f}" for value in values])
        else:
            raise ConversionError(f"{name}: column {label!r} holds text; CTFFIND rows are numbers")
    out += [" ".join(row) for row in zip(*cells, strict=True)]
    return "\n".join(out) + "\n"


def write(document: RawDocument, path: Path) -> None:
    """Write ``document`` to ``path`` atomically."""
    atomic_write_bytes(Path(path), to_string(document).encode())


def _decimals(values: list[float]) -> int:
    for digits in range(6, 12):
        if all(float(f"{value:.{digits}f}") == value for value in values):
            return digits
    return 12


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
