"""Which STAR reader and writer the tests force: native kernels, pandas and arrow, or the exact tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from scipion_kg.converters import star, star_native


@contextmanager
def reader_path(fast: bool, native: bool = True) -> Iterator[None]:
    """Force every loop through a fast reader (the native kernels, or pandas cut in two when ``native`` is
    False or the kernels are not built) or every loop through the exact Python tokenizer."""
    saved = star._FAST_READ_MIN_BYTES, star._SPLIT_READ_MIN_BYTES, star_native.read_loop
    star._FAST_READ_MIN_BYTES, star._SPLIT_READ_MIN_BYTES = (0, 0) if fast else (1 << 62, 1 << 62)
    if not native:
        star_native.read_loop = lambda *arguments: None
    try:
        yield
    finally:
        star._FAST_READ_MIN_BYTES, star._SPLIT_READ_MIN_BYTES, star_native.read_loop = saved


@contextmanager
def python_writer() -> Iterator[None]:
    """Write every loop with the arrow-based writer, as an install without the native kernels does."""
    saved = star_native.format_loop
    star_native.format_loop = lambda columns: None
    try:
        yield
    finally:
        star_native.format_loop = saved
