"""Per-row optics values from an optics table with several groups (the .cs layout keeps them per row)."""

from __future__ import annotations

import numpy as np
import pytest
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.engine import resolve_convention
from scipion_kg.converters.mapping import ConversionOptions, from_canonical

from scipion_kg.errors import ConversionError


def particles(groups: list[int]) -> Table:
    n = len(groups)
    return Table(
        kind="particles",
        columns={
            "image_name": np.array(["Extract/job007/stack.mrcs"] * n),
            "image_index": np.arange(1, n + 1),
            "defocus_u": np.full(n, 12000.0),
            "defocus_v": np.full(n, 11000.0),
            "defocus_angle": np.full(n, 30.0),
            "optics_group": np.array(groups, dtype=np.int64),
        },
        related={
            "optics": Table(
                kind="optics",
                columns={
                    "optics_group": np.array([3, 1]),
                    "pixel_size": np.array([1.1, 1.25]),
                    "voltage": np.array([200.0, 300.0]),
                    "spherical_aberration": np.array([2.7, 2.7]),
                    "amplitude_contrast": np.array([0.07, 0.1]),
                    "image_size": np.array([200, 200]),
                },
            )
        },
    )


def test_each_row_gets_its_groups_values() -> None:
    cryosparc = resolve_convention("CryoSPARC")
    document, _ = from_canonical(particles([1, 3, 3, 1]), cryosparc, ConversionOptions())
    columns = next(iter(document.blocks.values())).columns
    assert columns["ctf/accel_kv"].tolist() == [300.0, 200.0, 200.0, 300.0]
    assert columns["ctf/amp_contrast"].tolist() == pytest.approx([0.1, 0.07, 0.07, 0.1])


@pytest.mark.parametrize("undeclared", [2, 7, -1])
def test_a_row_in_an_undeclared_group_is_refused(undeclared: int) -> None:
    message = rf"optics group {undeclared} is used by a row but not declared"
    with pytest.raises(ConversionError, match=message):
        from_canonical(particles([1, undeclared, 3]), resolve_convention("CryoSPARC"), ConversionOptions())
