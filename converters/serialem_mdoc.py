"""SerialEM .mdoc autodoc files: global ``Key = Value`` lines, ``[T = ...]`` titles, then one section per
image (``[ZValue = N]``), frame set (``[FrameSet = N]``) or montage piece (``[MontSection = N]``).

Syntax from SerialEM's autodoc description (SerialEM help, "Autodoc files") and the files it writes, as
read by teamtomo/mdocfile ``src/mdocfile/data_models.py`` [e90d955]: lines are ``Key = Value``; a line
``[Type = N]`` opens a section that holds the keys after it; ``[T = text]`` is a title line (SerialEM
writes a blank line after it); files written on Windows end lines with CRLF.

The document:

* ``fields``: the global keys in file order, values as written (stripped). Title lines are stored in the
  same order under ``[T]``, ``[T]#2``, ``[T]#3``..., their text kept with its inner and trailing blanks (a
  bare ``T = ...`` line, as SerialEM writes at the top of frame-set files, is an ordinary key ``T``).
* one block per section type, named by it (``ZValue``, ``FrameSet``, ``MontSection``), one row per
  section in file order; column ``<Type>`` holds the section number, then one column per key, in order
  of first appearance. A key whose values are, in every section, the same number (>1) of numbers
  (``StagePosition = 20.7936 155.287``, ``MinMaxMean = 5 1403 623.699``, ``ImageShift``...) is split into
  columns ``Key[0]``, ``Key[1]``...; other values stay one text column (``DateTime = 30-Nov-15  15:21:38``
  keeps its two spaces). Columns are typed with ``infer_column``; a key missing from some sections gives
  NaN there (numeric columns, which are then float) or "" (text columns).
* ``lines``: the line of each section's ``[Type = N]`` header.

A key repeated inside one section, or in the globals, is stored as ``Key#2``. Comment lines (``#``) are
not kept. :func:`to_string` writes globals, titles and sections back (rows of several section types in
their source-line order when known), skipping NaN and "" cells; numbers are written in their shortest
exact form (``repr``), integers as integers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["FORMAT_IRI", "TITLE_KEY", "parse", "read", "to_string", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_SerialEMMdoc"
TITLE_KEY = "[T]"

_SECTION = re.compile(r"^\[\s*(?P<key>[^=\]]+?)\s*=\s*(?P<value>.*?)\s*\]$")
_SPLIT = re.compile(r"^(?P<key>.+)\[(?P<index>\d+)\]$")
_DUPLICATE = re.compile(r"#\d+$")


def read(path: Path) -> RawDocument:
    """Read a SerialEM .mdoc file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a SerialEM .mdoc file."""
    text = _decode(data)
    fields: dict[str, str] = {}
    # Per section type: the section numbers, their lines and one {key: value} per section.
    sections: dict[str, tuple[list[str], list[int], list[dict[str, str]]]] = {}
    current: dict[str, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            match = _SECTION.match(stripped)
            if match is None:
                raise ParseError(f"{source}: line {number}: malformed section line {stripped!r}")
            key, value = match.group("key"), match.group("value")
            if key == "T":
                if current is not None:
                    raise ParseError(f"{source}: line {number}: title line inside a section")
                # A title is free text: keep its spacing (only the one blank after "=" is syntax).
                title = line.rstrip("\r\n").rstrip()[:-1].split("=", 1)[1]
                _add(fields, TITLE_KEY, title[1:] if title.startswith(" ") else title)
                continue
            try:
                int(value)
            except ValueError:
                raise ParseError(
                    f"{source}: line {number}, column {key}: {value!r} is not an integer"
                ) from None
            numbers, lines, rows = sections.setdefault(key, ([], [], []))
            numbers.append(value)
            lines.append(number)
            current = {}
            rows.append(current)
            continue
        key, equals, value = stripped.partition("=")
        if not equals or not key.strip():
            raise ParseError(f"{source}: line {number}: expected 'Key = Value', found {stripped!r}")
        _add(fields if current is None else current, key.strip(), value.strip())
    if not fields and not sections:
        raise ParseError(f"{source}: no 'Key = Value' line and no section (empty file)")
    blocks = {
        kind: _block(kind, numbers, lines, rows, source) for kind, (numbers, lines, rows) in sections.items()
    }
    return RawDocument(FORMAT_IRI, blocks, fields)


def _block(
    kind: str, numbers: list[str], lines: list[int], rows: list[dict[str, str]], source: str
) -> RawBlock:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    if kind in keys:
        raise ParseError(f"{source}: line {lines[0]}: key {kind!r} inside its own [{kind} = ...] sections")
    columns: dict[str, Column] = {kind: infer_column(numbers)}
    for key in keys:
        values = [row.get(key) for row in rows]
        present = [value.split() for value in values if value is not None]
        counts = {len(tokens) for tokens in present}
        if len(counts) == 1 and counts != {1} and counts != {0} and all(map(_all_numbers, present)):
            width = counts.pop()
            for index in range(width):
                tokens = [None if value is None else value.split()[index] for value in values]
                columns[f"{key}[{index}]"] = _typed(tokens)
        else:
            columns[key] = _typed(values)
    return RawBlock(kind, columns, np.asarray(lines, dtype=np.int64))


def _typed(values: list[str | None]) -> Column:
    present = [value for value in values if value is not None]
    typed = infer_column(present)
    if len(present) == len(values):
        return typed
    if typed.dtype.kind in "iuf":
        column = np.full(len(values), np.nan)
    else:
        column = np.full(len(values), "", dtype=typed.dtype)
    column[[value is not None for value in values]] = typed
    return column


def to_string(document: RawDocument) -> str:
    """The text of a .mdoc file (LF line ends)."""
    name = str(document.source) if document.source is not None else "document"
    out: list[str] = []
    for key, value in document.fields.items():
        if _DUPLICATE.sub("", key) == TITLE_KEY:
            out += ["", f"[T = {value}]", ""]
        else:
            out.append(f"{_DUPLICATE.sub('', key)} = {value}")
    entries: list[tuple[int, int, int, list[str]]] = []
    for order, block in enumerate(document.blocks.values()):
        if block.name not in block.columns:
            raise ConversionError(
                f"{name}: block {block.name!r} lacks its section-number column {block.name!r}"
            )
        cells = {label: _texts(values) for label, values in block.columns.items()}
        groups = _group_split_columns(list(block.columns))
        for row in range(block.n_rows):
            section = ["", f"[{block.name} = {cells[block.name][row]}]"]
            for key, labels in groups.items():
                if key == block.name:
                    continue
                texts = [cells[label][row] for label in labels]
                if any(texts):
                    section.append(f"{_DUPLICATE.sub('', key)} = {' '.join(texts)}")
            line = block.line_of(row)
            entries.append((line if line is not None else 0, order, row, section))
    for *_, section in sorted(entries, key=lambda entry: entry[:3]):
        out += section
    return "\n".join(_squeeze_blank_lines(out)) + "\n"


def write(document: RawDocument, path: Path) -> None:
    """Write ``document`` to ``path`` atomically."""
    atomic_write_bytes(Path(path), to_string(document).encode())


def _group_split_columns(labels: list[str]) -> dict[str, list[str]]:
    """``Key[0]``, ``Key[1]``... under ``Key``; other labels alone."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        match = _SPLIT.match(label)
        groups.setdefault(match.group("key") if match else label, []).append(label)
    return groups


def _texts(values: Column) -> list[str]:
    if values.dtype.kind in "iu":
        return [str(int(value)) for value in values]
    if values.dtype.kind == "f":
        numbers = values.astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        # A key missing from some sections made an integer column float: write its numbers as integers.
        integral = bool(np.isnan(numbers).any()) and bool(np.all(finite == np.round(finite)))
        return [
            "" if np.isnan(value) else str(int(value)) if integral else repr(float(value))
            for value in numbers
        ]
    return [str(value) for value in values]


def _squeeze_blank_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    return out


def _add(target: dict[str, str], key: str, value: str) -> None:
    stored, count = key, 1
    while stored in target:
        count += 1
        stored = f"{key}#{count}"
    target[stored] = value


def _all_numbers(tokens: list[str]) -> bool:
    try:
        for token in tokens:
            float(token)
    except ValueError:
        return False
    return True


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # SerialEM on Windows may write paths in the ANSI code page.
        return data.decode("latin-1")
