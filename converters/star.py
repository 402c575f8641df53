"""STAR files as RELION writes them (RELION <=3.0, 3.1, 4 and 5; single particle and tomography), read fast.

Syntax (Hall 1991, J Chem Inf Comput Sci 31:326, as restricted by RELION): a file is a series of
``data_<name>`` blocks (the name may be empty); a block holds either one ``loop_`` table (``_label`` lines,
then one row of values per line) or ``_label value`` pairs. ``#`` starts a comment when it begins a token.
A value holding blanks is quoted with ``"`` or ``'``; a quote closes only when a blank or the end of the line
follows it, and ``""`` is the empty string. Multi-line ``;`` text fields are not supported (RELION does not
support them either).

RELION's own writer (3dem/relion ``src/metadata_table.cpp`` [73f0a3c], ``MetaDataTable::write``) puts a
``# version 50001`` line (``30001`` for 3.1/4.0) before every block, numbers the loop labels
(``_rlnImageName #3``), ends each table with a blank line and never writes an empty table; its reader
(``readStarLoop``) takes the ``#N`` as a comment, so the index is optional. ``escapeStringForSTAR`` in
``src/strings.cpp`` writes an empty string as ``""`` and quotes strings that hold blanks or start with a
quote; ``nextTokenInSTAR`` closes a quote only before a blank. Files written by older RELION, by pyem,
Warp and Dynamo omit the version line and sometimes the ``#N``.

Representation: one :class:`~scipion_kg.converters.raw.RawBlock` per data block keyed by its name (a file
repeating a block name is refused); a ``loop_`` block has ``is_loop`` True and one column per label, in
file order, typed by :func:`~scipion_kg.converters.raw.infer_column`; a key-value block has ``is_loop``
False and one row. ``RawDocument.version`` is the text after ``# version`` (the first one); comment lines
before the first block are ``fields["comment_1"]``, ``fields["comment_2"]`` ... (text after ``#``), written
back at the top. Other comments are not kept.

The writer follows RELION's layout (blank lines around ``# version``, ``data_`` and ``loop_`` lines,
numbered labels, ``""`` for empty strings, ``"`` quotes, ``'`` when the value holds ``"`` before a blank)
but writes numbers in their shortest exact form (a float always with a ``.`` or an exponent, so it reads
back as a float; RELION's ``%12.6f`` would lose digits), right-aligns each column to its widest value
within each block of ``star_native.ALIGNED_ROWS`` (4,096) rows and ends rows without a trailing blank. A
value holding a line break cannot be written.

Speed: a loop of 256 KiB or more goes first to the native kernels of :mod:`star_native` (C++: one pass
finds and counts its value lines, two threads tokenise it and type its columns as :func:`infer_column`
does). Without them (an install without a compiler), or when they refuse a loop, a loop without quotes,
comments, lone carriage returns, vertical tabs, form feeds or NUL is tokenised and typed by pandas' C
parser, in two threads for large loops (a column read as numbers in one half and words in the other is
read again as words); any doubt (booleans, a malformed row, blank lines inside the loop) sends the loop
to the exact Python tokenizer, whose columns are typed by :func:`infer_column`. Writing goes through the
kernels too (each number formatted once, blocks of rows formatted in two threads while the first are
written) or else through pyarrow kernels; both write the same bytes. A 1,000,000-row, 21-column RELION
3.1 particles table (248 MB) reads in 0.6-1.7 s and writes in 0.3-1 s on two cores with the kernels
(the spread is the machine's: first touches of fresh memory).
"""

from __future__ import annotations

import importlib
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipion_kg.converters import star_native
from scipion_kg.converters.raw import Column, RawBlock, RawDocument, infer_column, read_with

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ConversionError, ParseError

__all__ = [
    "FORMAT_IRI",
    "RELION",
    "StarDialect",
    "format_star",
    "format_star_chunks",
    "parse",
    "parse_star",
    "read",
    "to_chunks",
    "to_string",
    "write",
]

FORMAT_IRI = "https://w3id.org/scipion-kg/ontology#Format_RELIONStar"


@dataclass(frozen=True)
class StarDialect:
    """How one program's STAR files look: what is written, and what is skipped on reading."""

    format_iri: str
    # A first line that names the dialect, skipped on reading and always written ("# XMIPP_STAR_1 *").
    marker: str | None = None
    # Write "_label #N" in loops, as RELION does.
    number_labels: bool = True
    # Write "# version V" before every block when the document has a version, as RELION does.
    version_lines: bool = True
    # Put before every label line (Xmipp writes " _angleRot").
    indent: str = ""
    # Blank lines around version, data_ and loop_ lines, as RELION writes; Xmipp writes none.
    blank_lines: bool = True
    # The quote tried first for values that need one.
    quote: str = '"'


RELION = StarDialect(FORMAT_IRI)

# Loops smaller than this are read by the Python tokenizer (pandas' fixed cost is ~1 ms per call).
_FAST_READ_MIN_BYTES = 1 << 18
# Runs larger than this are read in two threads.
_SPLIT_READ_MIN_BYTES = 1 << 23

_WHITESPACE = " \t\r\n\v\f"
_VERSION = re.compile(r"#\s*version\s+(\S+)\s*$")
# A line that ends a run of loop values: a label, a comment, a text field, or a new loop or block.
_REGION_END = re.compile(rb"\n[ \t\r\v\f]*(?:[_#;]|data_|loop_)")
_TOKEN = re.compile(
    r"""[ \t\r\n\v\f]*(?:(\#.*)|'((?:[^']|'(?=[^ \t\r\n\v\f]))*)'(?=[ \t\r\n\v\f]|$)"""
    r"""|"((?:[^"]|"(?=[^ \t\r\n\v\f]))*)"(?=[ \t\r\n\v\f]|$)|([^ \t\r\n\v\f]+))""",
    re.DOTALL,
)
# Values that cannot be written bare: empty, holding a blank, or read back as something else.
_NEEDS_QUOTE = r"""^$|[ \t\r\n\v\f]|^['"_#;]|^(?:data|loop|save|global|stop)_"""
_ODD_BLANKS = re.compile("[\x1c-\x1f]")
_BARE = re.compile(r"[^ \t\r\n\v\f]+")
_NOT_FAST = (b"'", b'"', b"#", b"\v", b"\f", b"\x00")


def read(path: Path) -> RawDocument:
    """Read a RELION STAR file."""
    return read_with(parse, path)


def parse(data: str | bytes, source: str = "<string>") -> RawDocument:
    """Parse the text of a RELION STAR file."""
    return parse_star(data, source, RELION)


def to_string(document: RawDocument) -> str:
    """The STAR text of ``document``, laid out as RELION writes it."""
    return format_star(document, RELION).decode("utf-8")


def to_chunks(document: RawDocument) -> Iterator[bytes | memoryview]:
    """The UTF-8 STAR text of ``document`` as RELION writes it, in pieces (joining 1M rows costs a copy)."""
    return format_star_chunks(document, RELION)


def write(document: RawDocument, path: Path) -> None:
    """Write ``document`` as a RELION STAR file, atomically."""
    atomic_write_bytes(path, format_star_chunks(document, RELION))


# --- reading ---------------------------------------------------------------------------------------------


@dataclass
class _Block:
    name: str
    line: int
    is_loop: bool = False
    labels: list[str] = field(default_factory=list)
    pairs: dict[str, str] = field(default_factory=dict)
    pairs_line: int | None = None
    # Runs of value lines of the loop: (start byte, end byte, first line, number of lines).
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    # A line break near the middle of the first run and the line breaks before it (native scan only).
    middle: tuple[int, int] | None = None


def parse_star(data: str | bytes, source: str, dialect: StarDialect) -> RawDocument:
    """Parse STAR text into a document of ``dialect.format_iri``."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return _Parser(raw, source, dialect).run()


class _Parser:
    def __init__(self, raw: bytes, source: str, dialect: StarDialect) -> None:
        self.raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
        self.source = source
        self.dialect = dialect
        self.blocks: dict[str, RawBlock] = {}
        self.comments: list[str] = []
        self.version: str | None = None
        self.block: _Block | None = None

    def error(self, line: int, message: str) -> ParseError:
        return ParseError(f"{self.source}: line {line}: {message}")

    def run(self) -> RawDocument:
        raw, size = self.raw, len(self.raw)
        pos, line_no = 0, 1
        while pos < size:
            end = raw.find(b"\n", pos)
            if end < 0:
                end = size
            text = self.decode(raw[pos:end], line_no).strip(_WHITESPACE)
            if text and text[0] not in "#_;" and not text.startswith(("data_", "loop_")):
                block = self.block
                if block is None or not block.is_loop:
                    where = "before the first data_ block" if block is None else f"in block data_{block.name}"
                    raise self.error(
                        line_no,
                        f"value {text.split()[0]!r} outside a loop_ ({where}); a key-value pair "
                        "is written '_label value' on one line",
                    )
                if not block.labels:
                    raise self.error(line_no, f"loop_ of block data_{block.name} has values but no _labels")
                region_end, breaks, middle = self.value_run(pos)
                stop = region_end
                while stop > pos and raw[stop - 1] in b" \t\r\n\v\f":
                    stop -= 1
                block.regions.append((pos, stop, line_no, breaks + 1 - raw.count(b"\n", stop, region_end)))
                if len(block.regions) == 1:
                    block.middle = middle
                line_no += breaks + (1 if region_end < size else 0)
                pos = region_end + 1
                continue
            self.structure_line(text, line_no)
            pos, line_no = end + 1, line_no + 1
        self.finish_block()
        fields = {f"comment_{i}": comment for i, comment in enumerate(self.comments, start=1)}
        return RawDocument(self.dialect.format_iri, self.blocks, fields=fields, version=self.version)

    def value_run(self, pos: int) -> tuple[int, int, tuple[int, int] | None]:
        """Where the run of value lines starting at ``pos`` ends (the line break before the line that
        ends it, or the end of the text), its line breaks, and a line break near its middle (with the
        line breaks before it) when the kernels found one."""
        raw = self.raw
        if len(raw) - pos >= _FAST_READ_MIN_BYTES:
            run = star_native.scan_values(raw, pos, pos + (len(raw) - pos) // 2)
            if run is not None:
                middle = (run.middle, run.breaks_before_middle) if run.middle >= 0 else None
                return run.end, run.breaks, middle
        match = _REGION_END.search(raw, pos)
        region_end = match.start() if match else len(raw)
        return region_end, raw.count(b"\n", pos, region_end), None

    def decode(self, data: bytes, line: int) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise self.error(line, f"not UTF-8 text ({error.reason} at byte {error.start + 1})") from None

    def structure_line(self, text: str, line: int) -> None:
        """A blank, comment, data_, loop_ or _label line."""
        if not text:
            return
        if text[0] == "#":
            self.comment(text, line)
        elif text.startswith("data_"):
            self.finish_block()
            tokens = self.tokens(text, line)
            if len(tokens) != 1:
                raise self.error(line, f"unexpected {tokens[1]!r} after the block name {tokens[0]!r}")
            name = tokens[0][len("data_") :]
            if name in self.blocks:
                raise self.error(line, f"a second block named data_{name}; block names must be unique")
            self.block = _Block(name, line)
        elif text.startswith("loop_"):
            self.start_loop(text, line)
        elif text[0] == "_":
            self.label_line(text, line)
        else:
            raise self.error(line, "multi-line text fields (';' lines) are not supported")

    def comment(self, text: str, line: int) -> None:
        version = _VERSION.match(text) if self.dialect.version_lines else None
        if version:
            if self.version is None:
                self.version = version.group(1)
        elif self.block is None and not self.blocks:
            marker = self.dialect.marker
            if marker is not None and not self.comments and text[1:].split()[:1] == marker[1:].split()[:1]:
                return
            self.comments.append(text[1:].strip(_WHITESPACE))

    def start_loop(self, text: str, line: int) -> None:
        block = self.block
        if self.tokens(text, line) != ["loop_"]:
            raise self.error(line, f"unexpected text after loop_: {text!r}")
        if block is None:
            raise self.error(line, "loop_ before the first data_ block")
        if block.is_loop or block.pairs:
            raise self.error(
                line,
                f"block data_{block.name} already holds a table; one loop_ or one set of key-value "
                "pairs per block is supported",
            )
        block.is_loop = True

    def label_line(self, text: str, line: int) -> None:
        block = self.block
        tokens = self.tokens(text, line)
        label = tokens[0][1:]
        if block is None:
            raise self.error(line, f"_{label} before the first data_ block")
        if not label:
            raise self.error(line, "a label with no name ('_')")
        if block.is_loop:
            if block.regions:
                raise self.error(
                    line,
                    f"_{label} after the values of the loop of block data_{block.name}; one table per "
                    "block is supported",
                )
            if len(tokens) > 1:
                raise self.error(line, f"loop label _{label} is followed by {tokens[1]!r} on its line")
            if label in block.labels:
                raise self.error(line, f"label _{label} appears twice in the loop of block data_{block.name}")
            block.labels.append(label)
            return
        if len(tokens) != 2:
            found = "no value" if len(tokens) == 1 else f"{len(tokens) - 1} values"
            raise self.error(line, f"_{label} has {found}; a key-value pair is '_label value'")
        if label in block.pairs:
            raise self.error(line, f"label _{label} appears twice in block data_{block.name}")
        if block.pairs_line is None:
            block.pairs_line = line
        block.pairs[label] = tokens[1]

    def tokens(self, text: str, line: int) -> list[str]:
        """The values of one line: quotes removed, a trailing comment dropped."""
        if "'" not in text and '"' not in text and "#" not in text:
            # str.split() also splits at \x1c-\x1f and Unicode blanks, which STAR does not.
            return text.split() if text.isascii() and not _ODD_BLANKS.search(text) else _BARE.findall(text)
        tokens: list[str] = []
        position, size = 0, len(text)
        while position < size:
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                break
            position = match.end()
            comment, single, double, bare = match.groups()
            if comment is not None:
                break
            if bare is not None:
                if bare[0] in "'\"":
                    raise self.error(
                        line,
                        f"unterminated quote: {bare[0]} opens a value at column {match.start(4) + 1} "
                        "and no closing quote followed by a blank ends it",
                    )
                tokens.append(bare)
            else:
                tokens.append(single if single is not None else double)
        return tokens

    def finish_block(self) -> None:
        block, self.block = self.block, None
        if block is None:
            return
        if not block.is_loop:
            columns = {label: infer_column([value]) for label, value in block.pairs.items()}
            lines = np.array([] if block.pairs_line is None else [block.pairs_line], dtype=np.int64)
            self.blocks[block.name] = RawBlock(block.name, columns, lines, is_loop=False)
            return
        fast = None
        if len(block.regions) == 1:
            start, stop, first, n_lines = block.regions[0]
            if stop - start >= _FAST_READ_MIN_BYTES:
                # The native kernels refuse quotes, comments, \v, \f and NUL themselves.
                native = star_native.read_loop(self.raw, start, stop, n_lines, block.labels, block.middle)
                if native is not None:
                    fast = native, np.arange(first, first + n_lines, dtype=np.int64)
            # Quotes and comments need the exact tokenizer; pandas ends a line at a lone \r (not at \r\n)
            # and does not split words at \v, \f or NUL. bytes.find is a memchr, far faster than a regex.
            plain = fast is None and all(self.raw.find(special, start, stop) < 0 for special in _NOT_FAST)
            if plain and self.raw.find(b"\r", start, stop) >= 0:
                plain = self.raw.count(b"\r", start, stop) == self.raw.count(b"\r\n", start, stop)
            if stop - start >= _FAST_READ_MIN_BYTES and plain:
                fast = _read_region_fast(self.raw, start, stop, first, n_lines, block.labels)
        if fast is None:
            fast = self.read_regions(block)
        columns, lines = fast
        self.blocks[block.name] = RawBlock(block.name, columns, lines, is_loop=True)

    def read_regions(self, block: _Block) -> tuple[dict[str, Column], npt.NDArray[np.int64]]:
        """The exact path: every line tokenised in Python, every column typed by infer_column."""
        width = len(block.labels)
        values: list[list[str]] = []
        lines: list[int] = []
        for start, stop, first, _ in block.regions:
            for offset, chunk in enumerate(self.raw[start:stop].split(b"\n")):
                line = first + offset
                tokens = self.tokens(self.decode(chunk, line), line)
                if not tokens:
                    continue
                if len(tokens) != width:
                    raise self.row_error(
                        block, line, width, len(tokens), at_end=stop == len(self.raw.rstrip())
                    )
                values.append(tokens)
                lines.append(line)
        columns = (
            {
                label: infer_column(list(column))
                for label, column in zip(block.labels, zip(*values, strict=True), strict=True)
            }
            if values
            else {label: infer_column([]) for label in block.labels}
        )
        return columns, np.array(lines, dtype=np.int64)

    def row_error(self, block: _Block, line: int, expected: int, found: int, *, at_end: bool) -> ParseError:
        last_line = self.raw.rstrip().count(b"\n") + 1
        hint = ""
        if at_end and line == last_line and found < expected:
            hint = "; the file ends in this row: it looks truncated"
        return self.error(
            line,
            f"expected {expected} values (one per label of the loop of block data_{block.name}), "
            f"found {found}{hint}",
        )


def _pandas() -> Any:
    """pandas, imported on first use (it costs ~0.3 s and small files never need it); None if missing."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        return None


def _read_region_fast(
    raw: bytes, start: int, stop: int, first_line: int, n_lines: int, labels: list[str]
) -> tuple[dict[str, Column], npt.NDArray[np.int64]] | None:
    """A run of value lines through pandas' C tokenizer; None when anything needs the exact path.

    Large runs are cut in two at a line break and read in two threads (the tokenizer releases the GIL).
    """
    if _pandas() is None:
        return None
    pieces = [(start, stop)]
    if stop - start >= _SPLIT_READ_MIN_BYTES:
        middle = raw.find(b"\n", (start + stop) // 2, stop)
        if 0 <= middle < stop - 1:
            pieces = [(start, middle), (middle + 1, stop)]
    text_columns: set[int] = set()
    for _ in range(2):
        count, words = len(pieces), frozenset(text_columns)
        with ThreadPoolExecutor(max_workers=count) as pool:
            parts = list(
                pool.map(
                    _read_piece,
                    [raw] * count,
                    *zip(*pieces, strict=True),
                    [len(labels)] * count,
                    [words] * count,
                )
            )
        if any(part is None for part in parts) or sum(len(part[0]) for part in parts if part) != n_lines:
            return None  # malformed rows, or blank lines inside the run: the exact path numbers the rows
        pieces_columns = [part for part in parts if part is not None]
        mixed = {
            index
            for index in range(len(labels))
            if len({columns[index].dtype.kind for columns in pieces_columns}) > 1
            and any(columns[index].dtype.kind == "U" for columns in pieces_columns)
        }
        if not mixed:
            break
        # Numbers in one piece and words in the other: read that column's text again, whole.
        text_columns |= mixed
    else:
        return None
    columns: dict[str, Column] = {}
    for index, label in enumerate(labels):
        arrays = [piece_columns[index] for piece_columns in pieces_columns]
        merged = np.concatenate(arrays) if len(arrays) > 1 else np.array(arrays[0], copy=True)
        columns[label] = infer_column(merged.astype(str, copy=False)) if merged.dtype.kind == "U" else merged
    return columns, np.arange(first_line, first_line + n_lines, dtype=np.int64)


def _read_piece(
    raw: bytes, start: int, stop: int, width: int, text_columns: frozenset[int]
) -> list[Column] | None:
    """The columns of whole value lines: int64 or float64 where pandas read numbers, else str (untyped)."""
    pandas = _pandas()
    names = [f"c{i}" for i in range(width + 1)]  # one spare column catches rows with too many values
    try:
        frame = pandas.read_csv(
            io.BytesIO(raw[start:stop]),
            sep=r"\s+",
            header=None,
            names=names,
            index_col=False,
            na_filter=False,
            quoting=3,  # csv.QUOTE_NONE: the run holds no quote
            engine="c",
            low_memory=False,
            encoding="utf-8",
            dtype={names[index]: str for index in text_columns},
        )
    except (ValueError, UnicodeDecodeError):  # pandas' ParserError is a ValueError
        return None
    columns: list[Column] = []
    for index, name in enumerate(names):
        series = frame[name]
        if series.dtype == np.bool_:  # pandas read True/False as booleans, losing their spelling
            return None
        if series.dtype == np.int64 or series.dtype == np.float64:
            if index == width:  # the spare column holds numbers: rows with too many values
                return None
            columns.append(series.to_numpy())
            continue
        # Words (or integers beyond int64): an empty cell is a row with too few values.
        empty = series == ""
        if index == width:
            if not empty.all():
                return None
        elif empty.any():
            return None
        else:
            columns.append(series.to_numpy(dtype=str))
    return columns


# --- writing ---------------------------------------------------------------------------------------------


def _pyarrow() -> tuple[Any, Any]:
    return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.compute")


def format_star(document: RawDocument, dialect: StarDialect) -> bytes:
    """The STAR text of ``document`` in ``dialect``, as UTF-8 bytes."""
    return b"".join(format_star_chunks(document, dialect))


def format_star_chunks(document: RawDocument, dialect: StarDialect) -> Iterator[bytes | memoryview]:
    """The STAR text of ``document`` in ``dialect``, as pieces of UTF-8 bytes. Everything is checked before
    this returns (a value STAR cannot hold raises here); large loops are still being formatted while the
    first pieces are consumed."""
    head = [] if dialect.marker is None else [dialect.marker]
    head += [f"# {text}" if text else "#" for text in _header_comments(document)]
    parts: list[Iterable[bytes | memoryview]] = [[("\n".join(head) + "\n").encode("utf-8")]] if head else []
    gap = [""] if dialect.blank_lines else []
    seen: set[str] = set()
    for block in document.blocks.values():
        if block.name in seen:
            raise ConversionError(f"two blocks named data_{block.name}; STAR block names must be unique")
        seen.add(block.name)
        _check_name(block.name, f"block name data_{block.name}")
        lines = list(gap)
        if dialect.version_lines and document.version is not None:
            lines += [f"# version {document.version}", *gap]
        lines += [f"data_{block.name}", *gap]
        if block.is_loop:
            lines.append("loop_")
            for number, label in enumerate(block.columns, start=1):
                _check_name(label, f"label _{label} of block data_{block.name}")
                suffix = f" #{number}" if dialect.number_labels else ""
                lines.append(f"{dialect.indent}_{label}{suffix}")
            parts.append([("\n".join(lines) + "\n").encode("utf-8")])
            if block.columns and block.n_rows:
                parts.append(_loop_rows(block, dialect))
        else:
            lines.extend(_pairs(block, dialect))
            parts.append([("\n".join(lines) + "\n").encode("utf-8")])
    return itertools.chain.from_iterable(parts)


def _header_comments(document: RawDocument) -> list[str]:
    """The ``comment_N`` fields in N order; any other field cannot be written."""
    numbered = []
    for key, value in document.fields.items():
        match = re.fullmatch(r"comment_(\d+)", key)
        if match is None:
            raise ConversionError(
                f"STAR files have no file-level field {key!r} (only comment_N header comments); "
                "move it into a block"
            )
        if "\n" in value or "\r" in value:
            raise ConversionError(f"field {key!r} holds a line break; a STAR comment is one line")
        numbered.append((int(match.group(1)), value))
    return [value for _, value in sorted(numbered)]


def _check_name(name: str, what: str) -> None:
    if any(character in _WHITESPACE for character in name):
        raise ConversionError(f"{what} holds a blank; STAR names are single words")


def _pairs(block: RawBlock, dialect: StarDialect) -> list[str]:
    if block.columns and block.n_rows != 1:
        raise ConversionError(
            f"key-value block data_{block.name} has {block.n_rows} rows; it must have exactly one"
        )
    width = max((len(label) for label in block.columns), default=0)
    lines = []
    for label, values in block.columns.items():
        _check_name(label, f"label _{label} of block data_{block.name}")
        text = _column_text(values, label, block, dialect)
        lines.append(f"{dialect.indent}_{label:<{width}}  {text.to_pylist()[0]}")
    return lines


def _loop_rows(block: RawBlock, dialect: StarDialect) -> Iterable[bytes | memoryview]:
    labels = list(block.columns)
    lengths = {label: len(values) for label, values in block.columns.items()}
    if len(set(lengths.values())) > 1:
        raise ConversionError(f"block data_{block.name}: columns of different lengths {lengths}")
    native = star_native.format_loop(list(block.columns.values()))
    if native is not None:
        return native
    _, compute = _pyarrow()

    def column(index: int) -> tuple[Any, npt.NDArray[np.int64]]:
        """A column's tokens and, per block of ALIGNED_ROWS rows, the length of its longest token."""
        text = _column_text(block.columns[labels[index]], labels[index], block, dialect)
        lengths = compute.utf8_length(text).to_numpy(zero_copy_only=False)
        return text, np.maximum.reduceat(lengths, np.arange(0, block.n_rows, star_native.ALIGNED_ROWS))

    # Arrow's kernels release the GIL: two threads format two columns at once.
    with ThreadPoolExecutor(max_workers=2) as pool:
        texts = list(pool.map(column, range(len(labels))))
    chunks: list[bytes | memoryview] = []
    for number, start in enumerate(range(0, block.n_rows, star_native.ALIGNED_ROWS)):
        # Each block of rows is aligned to its own widest values, as the native kernels align them.
        batch = [
            compute.utf8_lpad(text.slice(start, star_native.ALIGNED_ROWS), width=int(widths[number]))
            for text, widths in texts
        ]
        batch[-1] = compute.binary_join_element_wise(batch[-1], *_texts("\n", ""))
        joined = compute.binary_join_element_wise(*batch, *_texts(" ")) if len(batch) > 1 else batch[0]
        chunks.extend(_string_bytes(joined))
    return chunks


def _texts(*values: str) -> list[Any]:
    """Arrow large_string scalars (a bare Python str would be a string scalar, and kernels need one type)."""
    arrow, _ = _pyarrow()
    return [arrow.scalar(value, type=arrow.large_string()) for value in values]


def _string_bytes(array: Any) -> list[memoryview]:
    """The concatenated values of an arrow large_string array (or of each chunk), without a copy."""
    chunks = array.chunks if hasattr(array, "chunks") else [array]
    views = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        _, offsets, data = chunk.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64, count=len(chunk) + 1, offset=8 * chunk.offset)
        views.append(memoryview(data)[int(bounds[0]) : int(bounds[-1])])
    return views


def _column_text(values: Column, label: str, block: RawBlock, dialect: StarDialect) -> Any:
    """A column as an arrow string array of STAR tokens."""
    arrow, compute = _pyarrow()
    kind = values.dtype.kind
    if kind == "b":
        values, kind = values.astype(np.int64), "i"
    if kind in "iu":
        return compute.cast(arrow.array(values), arrow.large_string())
    if kind == "f":
        # Python's repr, as the native kernels write floats: shortest round trip, "3.0" not "3". Arrow's
        # shortest text is the same between 1e-4 and 1e8 but for the ".0"; elsewhere (and for nan, inf)
        # repr itself writes the few values outside that range.
        floats = values.astype(np.float64, copy=False)
        text = compute.cast(arrow.array(floats), arrow.large_string())
        integral = compute.match_substring_regex(text, r"^-?[0-9]+$")
        text = compute.if_else(integral, compute.binary_join_element_wise(text, *_texts(".0", "")), text)
        magnitude = np.abs(floats)
        with np.errstate(invalid="ignore"):
            outside = ~(((magnitude >= 1e-4) & (magnitude < 1e8)) | (floats == 0))
        if outside.any():
            rows = np.flatnonzero(outside)
            written = arrow.array([repr(float(value)) for value in floats[rows]], type=arrow.large_string())
            text = compute.replace_with_mask(text, arrow.array(outside), written)
        return text
    if kind not in "USO":
        raise ConversionError(
            f"column _{label} of block data_{block.name} has values of type {values.dtype}; "
            "STAR values are integers, floats or strings"
        )
    strings = values if kind == "U" else values.astype(str)
    text = arrow.array(strings, type=arrow.large_string())
    if hasattr(text, "combine_chunks"):  # numpy strings may convert to a chunked array
        text = text.combine_chunks()
    needs_quote = compute.match_substring_regex(text, _NEEDS_QUOTE)
    if compute.any(needs_quote).as_py():
        rows = np.flatnonzero(needs_quote.to_numpy(zero_copy_only=False))
        quoted = [_quote(str(strings[row]), label, block, int(row), dialect) for row in rows]
        text = compute.replace_with_mask(text, needs_quote, arrow.array(quoted, type=arrow.large_string()))
    return text


def _quote(value: str, label: str, block: RawBlock, row: int, dialect: StarDialect) -> str:
    where = f"block data_{block.name}, {block.where(row)}, column _{label}"
    if "\n" in value or "\r" in value:
        raise ConversionError(f"{where}: the value {value!r} holds a line break, which STAR cannot hold")
    for quote in (dialect.quote, "'" if dialect.quote == '"' else '"'):
        # A quote followed by a blank would end the value early.
        if not re.search(f"{quote}[ \\t\\v\\f]", value):
            return f"{quote}{value}{quote}"
    raise ConversionError(f"{where}: the value {value!r} cannot be quoted in STAR (both quotes end it)")
