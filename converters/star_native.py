"""Large STAR loops through the native kernels of ``scipion_kg._star_native`` (C++, called through ctypes).

Tokenising 20 million values, parsing them and formatting them back is most of what a STAR round trip
costs; pandas' tokenizer holds the GIL and arrow's float formatting takes ~0.2 s per million values. The
kernels do the same work ~5x faster, in two threads (ctypes releases the GIL). Each function here returns
``None`` whenever anything falls outside what the kernels handle exactly (a blank line, a wrong number of
values, invalid UTF-8, a value that needs quotes, a non-ASCII string); the caller then takes its exact
path, which also words the error. Without the compiled library (a source tree never built) every function
returns ``None``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from scipion_kg.converters.parallel import LARGE_TABLE_ROWS, in_two_threads
from scipion_kg.converters.raw import Column, infer_column

__all__ = ["ALIGNED_ROWS", "ValueRun", "available", "format_loop", "read_loop", "scan_values"]

_FLOAT64, _INT64, _ASCII = 0, 1, 2  # the kernels' column kinds
_SLOT = 32  # bytes the kernels reserve per formatted number

ALIGNED_ROWS = 4_096
"""Rows of a loop whose columns are aligned together when written (each block to its own widest values):
aligning a whole loop would format every number twice, once to measure it; a block's formatted numbers
stay in cache until they are laid out."""
_WRITE_PIECES = 16  # pieces of rows a large loop is formatted (and written) in, whole blocks each
_POINTER = ctypes.c_void_p
_I32, _I64 = ctypes.c_int32, ctypes.c_int64


@cache
def _library() -> Any:
    spec = importlib.util.find_spec("scipion_kg._star_native")
    if spec is None or spec.origin is None:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "skg_scan_values": (_I64, [_POINTER, _I64, _I64, _I64, _POINTER]),
        "skg_tokenize": (_I64, [_POINTER, _I64, _I64, _I32, _I64, _I64, _POINTER, _POINTER]),
        "skg_parse_int64": (_I32, [_POINTER, _POINTER, _POINTER, _I64, _POINTER]),
        "skg_parse_float64": (_I32, [_POINTER, _POINTER, _POINTER, _I64, _POINTER]),
        "skg_max_code_points": (_I64, [_POINTER, _POINTER, _POINTER, _I64]),
        "skg_fill_utf32": (None, [_POINTER, _POINTER, _POINTER, _I64, _I64, _POINTER]),
        "skg_ascii_width": (_I64, [_POINTER, _I64, _I64]),
        "skg_format_rows": (_I64, [_I32, _POINTER, _POINTER, _POINTER, _I64, _I64, _I64, _POINTER]),
    }
    for name, (result, arguments) in signatures.items():
        function = getattr(library, name)
        function.restype, function.argtypes = result, arguments
    return library


def available() -> bool:
    """Whether the compiled kernels are installed."""
    return _library() is not None


def _address(array: npt.NDArray[Any]) -> int:
    return int(array.ctypes.data)


# --- reading -----------------------------------------------------------------------------------------


class ValueRun(NamedTuple):
    """Where a run of loop value lines ends, and a line break near its middle to cut it at."""

    end: int
    """Offset of the line break before the line that ends the run, or the length of the text."""
    breaks: int
    """Line breaks between the run's start and its end."""
    middle: int
    """Offset of the first line break at or after the middle asked for (-1 if none before the end)."""
    breaks_before_middle: int


def scan_values(raw: bytes, start: int, split_at: int) -> ValueRun | None:
    """The run of value lines that starts at ``raw[start]``, ended as ``star``'s region pattern ends it
    (a line starting, after blanks, with _, #, ;, data_ or loop_); one pass instead of a regex search and
    two line counts. ``None`` without the kernels."""
    library = _library()
    if library is None:
        return None
    buffer = np.frombuffer(raw, dtype=np.uint8)
    found = np.zeros(3, dtype=np.int64)
    end = library.skg_scan_values(_address(buffer), start, len(raw), split_at, _address(found))
    return ValueRun(int(end), int(found[0]), int(found[1]), int(found[2]))


def read_loop(
    raw: bytes,
    start: int,
    stop: int,
    n_lines: int,
    labels: Sequence[str],
    middle: tuple[int, int] | None = None,
) -> dict[str, Column] | None:
    """The columns of the value lines ``raw[start:stop]`` (``n_lines`` lines, none blank), typed as
    ``infer_column`` types them; ``None`` if the kernels cannot read them exactly. ``middle`` is a line
    break inside the run and the number of line breaks before it (from ``scan_values``), where a large
    run is cut in two."""
    library = _library()
    if library is None or not labels or n_lines <= 0:
        return None
    width = len(labels)
    if stop - start >= 1 << 32:
        return None  # token offsets are 32-bit (from the start of the run)
    buffer = np.frombuffer(raw, dtype=np.uint8)
    base = _address(buffer) + start
    starts = np.empty((width, n_lines), dtype=np.uint32)
    lengths = np.empty((width, n_lines), dtype=np.int32)
    # Two pieces cut at a line break, each tokenised into its own rows of the shared arrays.
    pieces = [(start, stop, 0, n_lines)]
    if n_lines >= LARGE_TABLE_ROWS:
        if middle is None or not start < middle[0] < stop:
            cut = raw.find(b"\n", (start + stop) // 2, stop)
            middle = (cut, raw.count(b"\n", start, cut)) if cut > start else None
        if middle is not None:
            cut, first_lines = middle[0], middle[1] + 1
            pieces = [(start, cut, 0, first_lines), (cut + 1, stop, first_lines, n_lines - first_lines)]

    def tokenize(index: int) -> bool:
        piece_start, piece_stop, first_row, rows = pieces[index]
        found = library.skg_tokenize(
            base,
            piece_start - start,
            piece_stop - start,
            width,
            rows,
            n_lines,
            _address(starts[0, first_row:]),
            _address(lengths[0, first_row:]),
        )
        return bool(found == rows)

    if not all(in_two_threads(tokenize, range(len(pieces)), n_lines)):
        return None

    def column(index: int) -> Column | None:
        arguments = (base, _address(starts[index]), _address(lengths[index]), n_lines)
        integers = np.empty(n_lines, dtype=np.int64)
        if library.skg_parse_int64(*arguments, _address(integers)) == 0:
            return integers
        floats = np.empty(n_lines, dtype=np.float64)
        if library.skg_parse_float64(*arguments, _address(floats)) == 0:
            return floats
        chars = library.skg_max_code_points(*arguments)
        if chars < 0:
            return None  # invalid UTF-8: the exact path says where
        text = np.empty(n_lines, dtype=f"<U{max(chars, 1)}")
        library.skg_fill_utf32(*arguments, max(chars, 1), _address(text))
        # Spellings numpy reads as numbers but the kernels do not ("+1", "1_000") are typed here.
        return infer_column(text)

    typed = in_two_threads(column, range(width), n_lines)
    columns = [values for values in typed if values is not None]
    if len(columns) < width:
        return None
    return dict(zip(labels, columns, strict=True))


# --- writing -----------------------------------------------------------------------------------------


def format_loop(columns: Sequence[Column]) -> Iterator[memoryview] | None:
    """The value lines of a loop as ``star`` writes them: in blocks of ALIGNED_ROWS rows, each column
    right-aligned to its widest value in the block, one blank between columns. Large tables are formatted
    in the background, block by block, while the caller writes the finished ones. ``None`` if a column
    needs the exact path (quotes, non-ASCII text, bytes or objects, unsigned values beyond int64). Every
    check is made before this returns: consuming the pieces cannot fail."""
    library = _library()
    if library is None or not columns:
        return None
    rows = len(columns[0])
    if rows == 0 or any(len(values) != rows for values in columns):
        return None

    def prepare(index: int) -> tuple[int, npt.NDArray[Any], int] | None:
        """(kind, contiguous values, code points per value) of a column."""
        values = columns[index]
        kind = values.dtype.kind
        if kind == "f":
            return _FLOAT64, np.ascontiguousarray(values, dtype=np.float64), 0
        if kind in "biu":
            if kind == "u" and values.size and int(values.max()) > np.iinfo(np.int64).max:
                return None
            return _INT64, np.ascontiguousarray(values, dtype=np.int64), 0
        if kind == "U" and values.dtype.itemsize:
            strings = np.ascontiguousarray(values)
            chars = strings.dtype.itemsize // 4
            needs_exact_path = library.skg_ascii_width(_address(strings), rows, chars) < 0
            return None if needs_exact_path else (_ASCII, strings, chars)
        return None

    measured = in_two_threads(prepare, range(len(columns)), rows)
    prepared = [column for column in measured if column is not None]
    if len(prepared) < len(columns):
        return None
    count = len(prepared)
    kinds = np.array([kind for kind, _, _ in prepared], dtype=np.int32)
    values = (ctypes.c_void_p * count)(*[_address(array) for _, array, _ in prepared])
    chars = np.array([points for _, _, points in prepared], dtype=np.int64)
    # Room for the widest possible row: a number takes at most _SLOT bytes, a string its code points.
    row_bound = int(sum(_SLOT if kind != _ASCII else points for kind, _, points in prepared)) + count

    # The kernels see raw addresses: the arrays behind them (some are contiguous copies made above) must
    # live until the last background block is formatted, so the function holds them (a default value).
    arrays = [array for _, array, _ in prepared]

    def format_rows(first: int, stop: int, _alive: list[npt.NDArray[Any]] = arrays) -> memoryview:
        out = np.empty((stop - first) * row_bound, dtype=np.uint8)  # pages past the text stay untouched
        size = library.skg_format_rows(
            count, _address(kinds), values, _address(chars), first, stop, ALIGNED_ROWS, _address(out)
        )
        return out.data[:size]

    if rows < LARGE_TABLE_ROWS:
        return iter([format_rows(0, rows)])
    # Pieces of whole blocks formatted by two threads while the caller writes the finished ones: writing
    # a large file costs the kernel about as much as formatting it.
    blocks = -(-rows // ALIGNED_ROWS)
    cuts = [min(rows, ALIGNED_ROWS * (blocks * piece // _WRITE_PIECES)) for piece in range(_WRITE_PIECES + 1)]
    pieces = [(first, stop) for first, stop in itertools.pairwise(cuts) if stop > first]
    pool = ThreadPoolExecutor(max_workers=2)
    futures = [pool.submit(format_rows, first, stop) for first, stop in pieces]
    pool.shutdown(wait=False)  # the queued blocks still run; the threads end after the last
    return (future.result() for future in futures)
