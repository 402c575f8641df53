"""EMX 1.0 XML files: micrographs and particles with unit attributes, read with a hardened XML parser.

The Electron Microscopy eXchange format (Marabini et al., "The Electron Microscopy eXchange (EMX)
initiative", J Struct Biol 194(2):156-163, 2016; XSD in scipion-em/scipion-em-emxlib [df668d0]; example
files I2PC/xmipp ``src/xmipp/resources/test/EMX/`` [3ce80f0], corpus ``emx/``): a root ``<EMX
version="1.0">`` holds ``<micrograph fileName=".." index="..">`` and ``<particle fileName=".." index="..">``
elements, keyed by their ``fileName`` and ``index`` attributes. Their children carry numbers, possibly
nested (``<pixelSpacing><X unit="A/px">5.6</X>...``, ``<transformationMatrix><t11>..``), with the unit as
a ``unit`` attribute (``nm`` for defocusU, ``kV``, ``A/px``, ``px``...); a particle points to its micrograph
with a child ``<micrograph fileName=".." index=".."/>``.

Representation: one block per kind of top-level element, named by the element plus ``s`` (``micrographs``,
``particles``), one row per element in file order. Columns are named by the element path below the row
element joined with ``.``: ``fileName``, ``index``, ``defocusU``, ``pixelSpacing.X``,
``transformationMatrix.t11``, ``micrograph.fileName``. The last part of a name is an attribute when it is
``fileName`` or ``index`` (EMX's only key attributes), an element otherwise. Element texts must be numbers.
A column is ``int64`` when all rows have an integer, ``float64`` (NaN where absent) when all present values
are numbers, ``str`` (``""`` where absent) otherwise. Units go to ``fields``, under :func:`unit_key`
(``"particles/defocusU@unit"`` -> ``"nm"``); one column has one unit. ``version`` is the root's version.

The parser is ``defusedxml.sax`` with DTDs forbidden: a file with a DOCTYPE, entity declarations (billion
laughs) or external entities (XXE) is refused with a :class:`ParseError`.
"""

from __future__ import annotations

import math
import xml.sax
import xml.sax.handler
import xml.sax.xmlreader
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import defusedxml.sax
import numpy as np
from defusedxml import DefusedXmlException
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = ["FORMAT_IRI", "KEY_ATTRIBUTES", "parse", "read", "to_string", "unit_key", "write"]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_EMX"
KEY_ATTRIBUTES = ("fileName", "index")


def unit_key(block: str, column: str) -> str:
    """The ``fields`` key holding a column's unit: ``unit_key("particles", "defocusU")``."""
    return f"{block}/{column}@unit"


class _Error(Exception):
    """A content error found while parsing, with its line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _Handler(xml.sax.handler.ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.locator: xml.sax.xmlreader.Locator | None = None
        self.version: str | None = None
        self.blocks: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.units: dict[str, tuple[str, int]] = {}
        self.path: list[str] = []
        self.row: dict[str, str] = {}
        self.block = ""
        self.text: list[str] = []
        self.children: list[bool] = []
        self.root = False

    def setDocumentLocator(self, locator: xml.sax.xmlreader.Locator) -> None:
        self.locator = locator

    def line(self) -> int:
        line = self.locator.getLineNumber() if self.locator is not None else None
        return line if line is not None else 0

    def startElement(self, name: str, attrs: xml.sax.xmlreader.AttributesImpl) -> None:
        depth = len(self.path)
        if depth == 0:
            if name != "EMX":
                raise _Error(self.line(), f"the root element is <{name}>, expected <EMX>")
            self.root = True
            self.version = attrs.get("version")
        elif depth == 1:
            self.block = name + "s"
            self.row = {}
            self.blocks.setdefault(self.block, []).append((self.line(), self.row))
            for attribute, value in attrs.items():
                self._set(attribute, value)
        else:
            if self.children:
                self.children[-1] = True
            prefix = ".".join([*self.path[2:], name])
            for attribute, value in attrs.items():
                if attribute == "unit":
                    self._unit(prefix, value)
                else:
                    self._set(f"{prefix}.{attribute}", value)
        self.path.append(name)
        self.text = []
        self.children.append(False)

    def characters(self, content: str) -> None:
        self.text.append(content)

    def endElement(self, name: str) -> None:
        had_children = self.children.pop()
        text = "".join(self.text).strip()
        self.text = []
        if len(self.path) > 2 and not had_children and text:
            column = ".".join(self.path[2:])
            try:
                float(text)
            except ValueError:
                raise _Error(self.line(), f"element {column}: {text!r} is not a number") from None
            self._set(column, text)
        self.path.pop()

    def _set(self, column: str, value: str) -> None:
        if column in self.row:
            raise _Error(self.line(), f"{self.block}: {column} is given twice in one element")
        if column.rsplit(".", 1)[-1] == "index":
            try:
                int(value)
            except ValueError:
                raise _Error(self.line(), f"attribute {column}: {value!r} is not an integer index") from None
        self.row[column] = value

    def _unit(self, column: str, unit: str) -> None:
        key = unit_key(self.block, column)
        known = self.units.get(key)
        if known is not None and known[0] != unit:
            raise _Error(
                self.line(), f"element {column}: unit {unit!r}, but line {known[1]} gives {known[0]!r} for it"
            )
        self.units[key] = (unit, self.line())


def read(path: Path) -> RawDocument:
    """Read an EMX file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse an EMX document (DTDs, entities and external references are refused)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    handler = _Handler()
    try:
        defusedxml.sax.parseString(raw, handler, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise ParseError(
            f"{source}: line {handler.line()}: refused: {type(error).__name__} ({error}); EMX files have no "
            "DTD or entities"
        ) from None
    except xml.sax.SAXParseException as error:
        raise ParseError(
            f"{source}: line {error.getLineNumber()}: not well-formed XML: {error.getMessage()}"
        ) from None
    except _Error as error:
        raise ParseError(f"{source}: line {error.line}: {error}") from None
    if not handler.root:
        raise ParseError(f"{source}: line 1: no <EMX> root element")
    blocks = {name: _block(name, rows) for name, rows in handler.blocks.items()}
    fields = {key: unit for key, (unit, _) in handler.units.items()}
    return RawDocument(FORMAT_IRI, blocks, fields=fields, version=handler.version)


def _block(name: str, rows: list[tuple[int, dict[str, str]]]) -> RawBlock:
    order: dict[str, None] = {}
    for _, row in rows:
        order.update(dict.fromkeys(row))
    columns: dict[str, Column] = {}
    for column in order:
        values = [row.get(column) for _, row in rows]
        present = [value for value in values if value is not None]
        if len(present) == len(values):
            columns[column] = infer_column(present)
            continue
        try:
            columns[column] = np.array(
                [math.nan if v is None else float(v) for v in values], dtype=np.float64
            )
        except ValueError:
            columns[column] = np.array(["" if v is None else v for v in values], dtype=str)
    return RawBlock(name, columns, lines=np.array([line for line, _ in rows], dtype=np.int64))


def to_string(document: RawDocument) -> str:
    """The XML text of an EMX 1.0 file."""
    out = [
        "<?xml version='1.0' encoding='utf-8'?>\n",
        f"<EMX version={quoteattr(document.version or '1.0')}>\n",
    ]
    for name, block in document.blocks.items():
        if not name.endswith("s") or len(name) < 2 or not _is_xml_name(name[:-1]):
            raise ConversionError(
                f"block {name!r}: EMX blocks are named by their element plus 's' (particles)"
            )
        out.extend(_block_xml(document, name[:-1], block))
    out.append("</EMX>\n")
    return "".join(out)


def write(document: RawDocument, path: Path) -> None:
    """Write an EMX file, atomically."""
    atomic_write_bytes(path, to_string(document).encode("utf-8"))


class _Element:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.attributes: dict[str, str] = {}
        self.text: str | None = None
        self.children: dict[str, _Element] = {}

    def child(self, tag: str) -> _Element:
        return self.children.setdefault(tag, _Element(tag))

    def xml(self, indent: str) -> list[str]:
        attributes = "".join(f" {key}={quoteattr(value)}" for key, value in self.attributes.items())
        if self.text is not None:
            return [f"{indent}<{self.tag}{attributes}>{escape(self.text)}</{self.tag}>\n"]
        if not self.children:
            return [f"{indent}<{self.tag}{attributes}/>\n"]
        lines = [f"{indent}<{self.tag}{attributes}>\n"]
        for child in self.children.values():
            lines.extend(child.xml(indent + "  "))
        return [*lines, f"{indent}</{self.tag}>\n"]


def _block_xml(document: RawDocument, tag: str, block: RawBlock) -> list[str]:
    parsed = {column: _split(column) for column in block.columns}
    values = {column: block.columns[column].tolist() for column in block.columns}
    lines: list[str] = []
    for row in range(block.n_rows):
        element = _Element(tag)
        for column, (parents, last, is_attribute) in parsed.items():
            value = values[column][row]
            if value == "" or (isinstance(value, float) and math.isnan(value)):
                continue
            node = element
            for part in parents:
                node = node.child(part)
            if is_attribute:
                node.attributes[last] = str(value)
                continue
            if isinstance(value, str):
                raise ConversionError(
                    f"block {block.name!r}, {block.where(row)}, column {column!r}: EMX element values are "
                    "numbers"
                )
            leaf = node.child(last)
            if leaf.children:
                raise ConversionError(
                    f"block {block.name!r}, column {column!r}: element {last} also has child elements"
                )
            leaf.text = repr(float(value)) if isinstance(value, float) else str(value)
            unit = document.fields.get(unit_key(block.name, column))
            if unit:
                leaf.attributes["unit"] = unit
        lines.extend(element.xml("  "))
    return lines


def _split(column: str) -> tuple[list[str], str, bool]:
    parts = column.split(".")
    if not all(_is_xml_name(part) for part in parts):
        raise ConversionError(f"column {column!r} is not an EMX element path (names joined with '.')")
    return parts[:-1], parts[-1], parts[-1] in KEY_ATTRIBUTES


def _is_xml_name(name: str) -> bool:
    return (
        bool(name) and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c in "_-" for c in name)
    )
