"""Property tests: package -> canonical -> package is exact; A -> B -> C equals A -> C."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipion_kg.converters.canonical import Table
from scipion_kg.converters.engine import render_document, resolve_convention, syntax_module
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.converters.mapping import ConversionOptions, from_canonical, to_canonical

PARTICLE_CONVENTIONS = [
    "RELION31",
    "RELION30",
    "Xmipp3",
    "CryoSPARC",
    "Dynamo",
    "FREALIGN",
    "EMX",
    "TOM",
    "EMAN2",
]
OPTIONS = ConversionOptions(
    pixel_size=1.25,
    voltage=300.0,
    spherical_aberration=2.7,
    amplitude_contrast=0.1,
    micrograph_size=(4096, 4096),
)
# Formats storing float32 (.cs, TOM .em) hold about 7 significant digits.
SINGLE_PRECISION = {"CryoSPARC", "TOM"}


@st.composite
def particle_tables(draw: st.DrawFn) -> Table:
    n = draw(st.integers(1, 12))
    angles = draw(
        st.lists(
            st.tuples(st.floats(-179, 179), st.floats(1, 179), st.floats(-179, 179)), min_size=n, max_size=n
        )
    )
    shifts = draw(st.lists(st.tuples(st.floats(-30, 30), st.floats(-30, 30)), min_size=n, max_size=n))
    defocus = draw(
        st.lists(
            st.tuples(st.floats(5000, 40000), st.floats(0, 2000), st.floats(-89, 89)), min_size=n, max_size=n
        )
    )
    pose = np.array(angles)
    return Table(
        kind="particles",
        columns={
            "image_name": np.array([f"Extract/job007/mic_{i % 3}.mrcs" for i in range(n)]),
            "image_index": np.arange(1, n + 1),
            "angle_rot": pose[:, 0],
            "angle_tilt": pose[:, 1],
            "angle_psi": pose[:, 2],
            "origin_x": np.array(shifts)[:, 0],
            "origin_y": np.array(shifts)[:, 1],
            "defocus_u": np.array(defocus)[:, 0],
            "defocus_v": np.array(defocus)[:, 0] - np.array(defocus)[:, 1],
            "defocus_angle": np.array(defocus)[:, 2],
            "optics_group": np.ones(n, dtype=np.int64),
        },
        related={
            "optics": Table(
                kind="optics",
                columns={
                    "optics_group": np.array([1]),
                    "pixel_size": np.array([1.25]),
                    "voltage": np.array([300.0]),
                    "spherical_aberration": np.array([2.7]),
                    "amplitude_contrast": np.array([0.1]),
                    "image_size": np.array([200]),
                },
            )
        },
    )


def through_file(table: Table, name: str, tmp_path: Path) -> Table:
    """``table`` written in convention ``name`` to bytes, parsed back and read with the same convention."""
    convention = resolve_convention(name)
    document, _ = from_canonical(table, convention, OPTIONS)
    data = render_document(document)
    module = syntax_module(convention.format_iri)
    path = tmp_path / f"file-{name}"
    path.write_bytes(data)
    parsed = module.read(path)
    parsed.format_iri, parsed.source = convention.format_iri, path
    return to_canonical(parsed, convention, OPTIONS)


def assert_same(a: Table, b: Table, columns: set[str], single: bool) -> None:
    tolerance = 2e-3 if single else 1e-6
    for column in sorted(columns):
        if column in ("angle_rot", "angle_tilt", "angle_psi", "image_name"):
            continue
        assert np.allclose(
            np.asarray(a.columns[column], dtype=float),
            np.asarray(b.columns[column], dtype=float),
            atol=tolerance,
        ), column
    if {"angle_rot", "angle_tilt", "angle_psi"} <= columns:
        pose = [
            np.column_stack([t.columns[c] for c in ("angle_rot", "angle_tilt", "angle_psi")]) for t in (a, b)
        ]
        assert np.allclose(pivot_matrices(pose[0]), pivot_matrices(pose[1]), atol=1e-5 if single else 1e-9)
    if "image_name" in columns:
        assert list(a.columns["image_name"]) == list(b.columns["image_name"])


@pytest.mark.parametrize("name", PARTICLE_CONVENTIONS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=particle_tables())
def test_package_to_canonical_to_package_is_exact(name: str, table: Table, tmp_path: Path) -> None:
    back = through_file(table, name, tmp_path)
    held = set(back.columns) & set(table.columns)
    assert {"angle_rot", "origin_x"} <= held
    assert_same(table, back, held, name in SINGLE_PRECISION)
    # And once more from the package's own file: the second pass reproduces the first exactly.
    again = through_file(back, name, tmp_path)
    assert_same(back, again, held, name in SINGLE_PRECISION)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=particle_tables())
def test_a_to_b_to_c_equals_a_to_c(table: Table, tmp_path: Path) -> None:
    for a, b, c in itertools.permutations(["RELION31", "CryoSPARC", "Dynamo", "EMX", "FREALIGN"], 3):
        start = through_file(table, a, tmp_path)
        via = through_file(through_file(start, b, tmp_path), c, tmp_path)
        direct = through_file(start, c, tmp_path)
        held = set(via.columns) & set(direct.columns)
        assert_same(via, direct, held, single=bool({a, b, c} & SINGLE_PRECISION))
