"""The syntax level of a metadata file: its tables by the file's own labels, before any convention.

Every format module in this package turns a file into a :class:`RawDocument` and back, and knows nothing
of Euler conventions, units or signs: those are declared in the ontology's conventions module and applied
by :mod:`scipion_kg.converters.mapping`. Column values are 1-D numpy arrays: ``int64`` when every value of
the column is an integer literal, ``float64`` when every value is a number, ``str`` (numpy ``<U``)
otherwise. Row order is file order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scipion_kg.errors import ParseError

__all__ = ["Column", "RawBlock", "RawDocument", "decode_text", "infer_column", "read_with"]

Column = npt.NDArray[np.generic]


@dataclass
class RawBlock:
    """One table of a file (a STAR data block, a .cs array, the rows of a doc file)."""

    name: str
    columns: dict[str, Column] = field(default_factory=dict)
    # 1-based line of each row in the source text, for error messages; None for binary files.
    lines: npt.NDArray[np.int64] | None = None
    # False for key-value blocks (a STAR block without loop_, an mdoc header): one row, written as pairs.
    is_loop: bool = True

    def __post_init__(self) -> None:
        lengths = {len(values) for values in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"block {self.name!r}: columns of different lengths {sorted(lengths)}")

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def line_of(self, row: int) -> int | None:
        """The source line of a row (0-based index), when known."""
        return int(self.lines[row]) if self.lines is not None and 0 <= row < len(self.lines) else None

    def where(self, row: int) -> str:
        """``line N`` when the row's line is known, else ``row N`` (1-based)."""
        line = self.line_of(row)
        return f"line {line}" if line is not None else f"row {row + 1}"


@dataclass
class RawDocument:
    """A parsed metadata file: its blocks in file order and file-level fields."""

    format_iri: str
    blocks: dict[str, RawBlock] = field(default_factory=dict)
    # File-level key/value pairs outside any table (mdoc globals, .aln header, CTFFIND header values).
    fields: dict[str, str] = field(default_factory=dict)
    # The dialect's version marker when the file carries one ("30001" for RELION's "# version 30001").
    version: str | None = None
    source: Path | None = None

    def __iter__(self) -> Iterator[RawBlock]:
        return iter(self.blocks.values())

    def block(self, name: str) -> RawBlock:
        try:
            return self.blocks[name]
        except KeyError:
            where = self.source or "the document"
            raise KeyError(
                f"{where}: no block {name!r} (blocks: {', '.join(self.blocks) or 'none'})"
            ) from None


def infer_column(tokens: list[str] | npt.NDArray[np.str_]) -> Column:
    """Type a column of text tokens: int64 if all are integers, float64 if all are numbers, else str."""
    text = np.asarray(tokens, dtype=str)
    if text.size == 0:
        return text
    try:
        as_int = text.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    else:
        # "1.0" would have failed above; "+1" and " 1" are fine as integers.
        return as_int
    try:
        return text.astype(np.float64)
    except ValueError:
        return text


def decode_text(data: str | bytes, source: str) -> str:
    """UTF-8 text of a file's bytes; bytes that are not UTF-8 give a ParseError naming the line."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ParseError(f"{source}: line {line}: bytes that are not UTF-8 text ({error.reason})") from None


def read_with(parse: Callable[[bytes, str], RawDocument], path: Path) -> RawDocument:
    """``parse`` applied to the bytes of ``path``; an unreadable file is a ParseError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ParseError(f"{path}: cannot read the file: {error.strerror or error}") from None
    document = parse(data, str(path))
    document.source = path
    return document
