"""The conversion engine: reader -> canonical table -> writer, composed from the declarations.

The syntax module of each format (``skg:syntaxModule``) reads and writes the file; the declared
convention (conventions.py) maps it to and from the canonical table (mapping.py). There is no code per
pair of packages: any declared convention converts to any other of the same table kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from scipion_kg.errors import ConversionError, FormatError
from scipion_kg.formats import detect_format
from scipion_kg.namespaces import SKG, compact
from scipion_kg.vocabulary import vocabulary

from .canonical import Table
from .conventions import Convention, conventions, select_convention
from .mapping import ConversionOptions, LossReport, from_canonical, to_canonical
from .raw import RawDocument

__all__ = [
    "ConversionResult",
    "convert_file",
    "lookup",
    "read_document",
    "read_table",
    "render_chunks",
    "render_document",
    "resolve_convention",
    "syntax_module",
    "write_document",
]


def syntax_module(format_iri: str) -> ModuleType:
    """The converters module reading and writing ``format_iri`` (declared by skg:syntaxModule)."""
    name = conventions().syntax.get(format_iri)
    if name is None:
        raise ConversionError(f"no reader/writer is declared for {compact(format_iri)} (skg:syntaxModule)")
    return importlib.import_module(f"scipion_kg.converters.{name}")


def _format_iri(value: str) -> str:
    if value.startswith(("http://", "https://")):
        return value
    local = value.split(":", 1)[-1]
    return SKG + (local if local.startswith("Format_") else f"Format_{local}")


def _names(convention: Convention) -> set[str]:
    local = convention.iri.rsplit("#", 1)[-1]
    return {convention.iri, convention.name, local, local.removeprefix("Convention_")}


def lookup(value: str) -> tuple[str, Convention | None]:
    """``(format IRI, convention)`` for a convention name (``RELION31``), or ``(format IRI, None)`` for a
    format name (``RELIONStar``, ``skg:Format_CryoSPARCCS``) whose dialect is then chosen per file."""
    known = conventions().conventions
    for convention in known.values():
        if value in _names(convention):
            return convention.format_iri, convention
    format_iri = _format_iri(value)
    if format_iri not in conventions().syntax:
        names = sorted(c.iri.rsplit("#", 1)[-1].removeprefix("Convention_") for c in known.values())
        formats = sorted(compact(iri) for iri in conventions().syntax)
        raise ConversionError(
            f"unknown format or convention {value!r}; conventions: {', '.join(names)}; "
            f"formats: {', '.join(formats)}"
        )
    return format_iri, None


def resolve_convention(value: str, kind: str | None = None) -> Convention:
    """The convention named ``value``, or the preferred convention of the format named ``value``."""
    format_iri, convention = lookup(value)
    if convention is not None:
        return convention
    candidates = [
        c
        for c in conventions().conventions.values()
        if c.format_iri == format_iri and (kind is None or c.table_kind == kind)
    ]
    if not candidates:
        raise ConversionError(f"{compact(format_iri)} has no declared convention for {kind or 'any'} tables")
    return max(candidates, key=lambda c: (c.priority, c.iri))


def read_document(path: Path, format_iri: str | None = None) -> RawDocument:
    """Parse ``path`` with the syntax module of its (detected or given) format."""
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    if format_iri is None:
        declaration = detect_format(path, vocabulary())
        if declaration is None:
            raise FormatError(f"{path}: the format is not recognised: pass --from")
        format_iri = declaration.iri
    document: RawDocument = syntax_module(format_iri).read(path)
    document.format_iri = format_iri
    document.source = path
    return document


def read_table(
    path: Path, source: str | None = None, options: ConversionOptions | None = None
) -> tuple[Table, Convention]:
    """The canonical table of a file; ``source`` names its format or convention when not detected."""
    format_iri, convention = lookup(source) if source else (None, None)
    document = read_document(path, format_iri)
    convention = convention or select_convention(document)
    return to_canonical(document, convention, options), convention


def render_document(document: RawDocument) -> bytes:
    """The bytes of ``document`` in its format."""
    return b"".join(render_chunks(document))


def render_chunks(document: RawDocument) -> Iterable[bytes | memoryview]:
    """The bytes of ``document`` in its format, in pieces to be written one after another (large tables
    are not joined into one more copy). A document that cannot be written raises here, not while the
    pieces are consumed."""
    module = syntax_module(document.format_iri)
    if hasattr(module, "to_chunks"):
        chunks: Iterable[bytes | memoryview] = module.to_chunks(document)
        return chunks
    if hasattr(module, "to_bytes"):
        data: bytes = module.to_bytes(document)
        return [data]
    text: str = module.to_string(document)
    return [text.encode("utf-8")]


def write_document(document: RawDocument, path: Path) -> None:
    syntax_module(document.format_iri).write(document, path)


@dataclass
class ConversionResult:
    source: Path
    target: Path
    source_convention: Convention
    target_convention: Convention
    rows: int
    loss: LossReport
    reports: dict[str, object] = field(default_factory=dict)


def convert_file(
    source: Path,
    target: Path,
    *,
    source_format: str | None = None,
    target_format: str | None = None,
    options: ConversionOptions | None = None,
) -> tuple[ConversionResult, Table, RawDocument]:
    """Convert ``source`` into ``target`` (formats detected from content and extension when not given)."""
    table, source_convention = read_table(source, source_format, options)
    if target_format is None:
        declaration_iri = _target_format_from_name(target)
        candidates = [
            c
            for c in conventions().conventions.values()
            if c.format_iri == declaration_iri and c.table_kind == table.kind
        ]
        if not candidates:
            raise ConversionError(f"{target}: cannot tell the target format from the name: pass --to")
        target_convention = max(candidates, key=lambda c: c.priority)
    else:
        target_convention = resolve_convention(target_format, table.kind)
    if target_convention.table_kind != table.kind:
        raise ConversionError(
            f"{source} holds {table.kind}; {target_convention.label} holds {target_convention.table_kind}"
        )
    document, loss = from_canonical(table, target_convention, options)
    document.source = target
    result = ConversionResult(source, target, source_convention, target_convention, table.n_rows, loss)
    return result, table, document


def _target_format_from_name(path: Path) -> str:
    name = path.name.lower()
    best: tuple[int, str] | None = None
    for declaration in vocabulary().formats.values():
        if declaration.iri not in conventions().syntax:
            continue
        for extension in declaration.extensions:
            if name.endswith(extension) and (
                best is None or (len(extension), declaration.priority) > (best[0], 0)
            ):
                best = (len(extension), declaration.iri)
    if best is None:
        raise ConversionError(f"{path}: cannot tell the target format from the extension: pass --to")
    return best[1]
