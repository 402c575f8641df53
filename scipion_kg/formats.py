"""Recognising a file's format from the ontology's format declarations (extension + content checks)."""

from __future__ import annotations

import gzip
import re
import zlib
from functools import cache
from pathlib import Path

from .errors import FormatError
from .vocabulary import FormatDeclaration, Vocabulary

__all__ = ["detect_format", "require_format"]

_HEAD_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


def _suffixes(path: Path) -> set[str]:
    """Every trailing suffix chain of the name, lower case: ``a.mrc.gz`` gives ``.gz`` and ``.mrc.gz``."""
    name = path.name.lower()
    parts = name.split(".")
    return {"." + ".".join(parts[index:]) for index in range(1, len(parts))}


def _read_head(path: Path) -> tuple[bytes, bool]:
    """The first 64 KiB of the file's content, decompressed when it is gzip; and whether it was."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not head.startswith(_GZIP_MAGIC):
        return head, False
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(_HEAD_BYTES), True
    except (OSError, EOFError, zlib.error) as error:
        raise FormatError(f"{path}: starts like a gzip file but does not decompress: {error}") from error


def _content_verdict(declaration: FormatDeclaration, head: bytes, text: str, binary: bool) -> bool | None:
    """True/False when the declaration has a content check, None when it has none."""
    if binary and declaration.is_text and declaration.content_pattern is not None:
        # A text format's pattern must not be searched in binary bytes (it can match by chance).
        return False
    verdicts: list[bool] = []
    if declaration.signature_text is not None:
        offset = declaration.signature_offset or 0
        expected = declaration.signature_text.encode("latin-1")
        verdicts.append(head[offset : offset + len(expected)] == expected)
    if declaration.content_pattern is not None:
        verdicts.append(_compiled(declaration.content_pattern).search(text) is not None)
    return any(verdicts) if verdicts else None


def detect_format(path: Path, vocabulary: Vocabulary) -> FormatDeclaration | None:
    """The best matching declared format of ``path``, or None when nothing matches.

    A declaration matches when its extension matches and its content check (if any) passes, or when its
    content check passes whatever the extension. A passing content check outranks an extension alone;
    ties go to the higher ``skg:formatPriority``. A gzip-compressed file (``model.cif.gz``) is recognised
    by its decompressed content and the name without ``.gz``, as gemmi, mrcfile and RELION read it.
    """
    head, compressed = _read_head(path)
    suffixes = _suffixes(path.with_suffix("") if compressed and path.suffix.lower() == ".gz" else path)
    text = head.decode("latin-1")
    binary = b"\x00" in head
    best: tuple[int, int, str] | None = None
    chosen: FormatDeclaration | None = None
    for declaration in vocabulary.formats.values():
        by_extension = bool(suffixes.intersection(declaration.extensions))
        by_content = _content_verdict(declaration, head, text, binary)
        if by_content is False or not (by_extension or by_content):
            continue
        score = (2 if by_content else 0) + (1 if by_extension else 0)
        key = (score, declaration.priority, declaration.iri)
        if best is None or key > best:
            best, chosen = key, declaration
    return chosen


def require_format(path: Path, vocabulary: Vocabulary) -> FormatDeclaration:
    declaration = detect_format(path, vocabulary)
    if declaration is None:
        raise FormatError(
            f"{path}: the format is not recognised from its extension or content; "
            "pass --format with a format IRI from 'scipion-kg formats'"
        )
    return declaration
