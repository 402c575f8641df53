"""Set files exchanged between steps: RELION 3.1 STAR tables written and read through the converters.

Steps hand each other sets as the STAR files RELION itself reads (micrographs, coordinates, particles
with a ``data_optics`` block), with file names relative to the project root as RELION expects, so the
built-in and RELION backends are interchangeable and every intermediate file is readable by users.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.engine import read_table, resolve_convention, write_document
from scipion_kg.converters.mapping import from_canonical

__all__ = ["optics_table", "read_star", "write_star"]

# Picked coordinates travel as a particles table without images (micrograph, x, y, score), with the
# micrographs' pixel size in its optics block.
_CONVENTIONS = {"micrographs": "RELION31Micrographs", "particles": "RELION31"}


def optics_table(
    *,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
    micrograph_pixel_size: float | None = None,
    pixel_size: float | None = None,
    image_size: int | None = None,
    name: str = "opticsGroup1",
) -> Table:
    """A one-group optics table (RELION 3.1 ``data_optics``)."""
    columns: dict[str, np.ndarray] = {
        "optics_group": np.array([1]),
        "optics_group_name": np.array([name]),
        "voltage": np.array([float(voltage)]),
        "spherical_aberration": np.array([float(spherical_aberration)]),
        "amplitude_contrast": np.array([float(amplitude_contrast)]),
    }
    if micrograph_pixel_size is not None:
        columns["micrograph_pixel_size"] = np.array([float(micrograph_pixel_size)])
    if pixel_size is not None:
        columns["pixel_size"] = np.array([float(pixel_size)])
    if image_size is not None:
        columns["image_size"] = np.array([int(image_size)])
        columns["image_dimensionality"] = np.array([2])
    return Table("optics", columns)


def write_star(path: Path, table: Table) -> None:
    """Write ``table`` as the RELION 3.1 STAR file of its kind, atomically."""
    convention = resolve_convention(_CONVENTIONS[table.kind], table.kind)
    document, _ = from_canonical(table, convention)
    document.source = path
    write_document(document, path)


def read_star(path: Path, kind: str) -> Table:
    """The canonical table of a RELION 3.1 STAR file of ``kind``."""
    table, _ = read_table(path, _CONVENTIONS[kind])
    return table
