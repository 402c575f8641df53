"""Free-form STAR files of named blocks (RELION's per-movie shifts, ``postprocess.star``, FSC tables),
written and read through the STAR syntax module of the converters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipion_kg.converters.raw import RawBlock, RawDocument
from scipion_kg.converters.star import FORMAT_IRI, read, write

__all__ = ["read_blocks", "write_blocks"]

Values = Mapping[str, npt.ArrayLike | str | float | int]


def write_blocks(path: Path, blocks: Sequence[tuple[str, Values, bool]]) -> None:
    """Write ``(name, columns, is_loop)`` blocks as a RELION 3.1 STAR file, atomically.

    A key-value block (``is_loop`` False) takes one value per label."""
    raw: dict[str, RawBlock] = {}
    for name, columns, is_loop in blocks:
        arrays = {label: np.atleast_1d(np.asarray(values)) for label, values in columns.items()}
        raw[name] = RawBlock(name, arrays, is_loop=is_loop)
    write(RawDocument(FORMAT_IRI, raw, version="30001", source=path), path)


def read_blocks(path: Path) -> dict[str, dict[str, npt.NDArray[np.generic]]]:
    """Every block of a STAR file as label -> column."""
    return {name: dict(block.columns) for name, block in read(path).blocks.items()}
