"""AreTomo .aln read and write on the real corpus file, and its relation to the IMOD .xf derived from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipion_kg.converters import aretomo_aln, imod
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

GLOBAL = ["SEC", "ROT", "GMAG", "TX", "TY", "SMEAN", "SFIT", "SCALE", "BASE", "TILT"]


@pytest.fixture
def aln_path(shared_data: Path) -> Path:
    return shared_data / "formats" / "aretomo_aln" / "alnfile_test_data_no_local.aln"


def test_real_file_values(aln_path: Path) -> None:
    document = aretomo_aln.read(aln_path)
    assert document.format_iri == aretomo_aln.FORMAT_IRI
    assert document.fields == {
        "title": "AreTomo Alignment / Priims bprmMn",
        "RawSize": "4096 4096 61",
        "NumPatches": "0",
        "AlphaOffset": "-7.00",
        "BetaOffset": "0.00",
        "Thickness": "2050",
    }
    assert list(document.blocks) == ["global"]
    block = document.block("global")
    assert list(block.columns) == GLOBAL
    assert block.n_rows == 61
    assert block.columns["SEC"].dtype == np.int64
    assert list(block.columns["SEC"]) == list(range(1, 62))
    first = {label: block.columns[label][0] for label in GLOBAL}
    assert first == {
        "SEC": 1,
        "ROT": -95.404,
        "GMAG": 1.0,
        "TX": 9.22,
        "TY": 103.933,
        "SMEAN": 1.0,
        "SFIT": 1.0,
        "SCALE": 1.0,
        "BASE": 0.0,
        "TILT": -63.2,
    }
    # Section 33 is the reference view (zero shift); the last view has the largest shift.
    assert (block.columns["TX"][32], block.columns["TY"][32], block.columns["TILT"][32]) == (0.0, 0.0, 0.79)
    assert (block.columns["TX"][60], block.columns["TY"][60], block.columns["TILT"][60]) == (
        -633.32,
        -527.601,
        56.79,
    )
    assert block.line_of(0) == 8


def test_round_trip_is_byte_identical(aln_path: Path, tmp_path: Path) -> None:
    document = aretomo_aln.read(aln_path)
    text = aretomo_aln.to_string(document)
    assert text == aln_path.read_text()
    target = tmp_path / "out.aln"
    aretomo_aln.write(document, target)
    again = aretomo_aln.read(target)
    assert again.fields == document.fields
    for label in GLOBAL:
        np.testing.assert_array_equal(
            again.block("global").columns[label], document.block("global").columns[label]
        )


def test_aln_and_derived_xf_agree_on_every_view(aln_path: Path) -> None:
    # README of aretomo_aln/: A = [[cos ROT, -sin ROT], [sin ROT, cos ROT]], (DX, DY) = -A (TX, TY).
    aln = aretomo_aln.read(aln_path).block("global")
    xf = imod.read(aln_path.with_name("alnfile_global_no_local.xf")).block("views")
    column = {label: np.asarray(values, dtype=np.float64) for label, values in xf.columns.items()}
    assert aln.n_rows == xf.n_rows == 61
    angle = np.radians(aln.columns["ROT"])
    a11, a12, a21, a22 = np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)
    tx, ty = aln.columns["TX"], aln.columns["TY"]
    # The .xf prints A with 7 decimals and the shifts with 4.
    for label, expected in zip(("A11", "A12", "A21", "A22"), (a11, a12, a21, a22), strict=True):
        np.testing.assert_allclose(column[label], expected, atol=1e-7, rtol=0, err_msg=label)
    np.testing.assert_allclose(column["DX"], -(a11 * tx + a12 * ty), atol=1e-4, rtol=0)
    np.testing.assert_allclose(column["DY"], -(a21 * tx + a22 * ty), atol=1e-4, rtol=0)
    assert (xf.columns["DX"][0], xf.columns["DY"][0]) == (-102.6027, 18.9672)


# Layout of teamtomo/alnfile tests/test_data_with_local.aln (AreTomo3 output with dark frames and patches),
# shortened to two views and two patches.
WITH_LOCAL = """# AreTomo Alignment / Priims bprmMn
# RawSize = 4096 4096 51
# NumPatches = 2
# DarkFrame =     0    0   -68.00
# DarkFrame =     1    1   -66.00
# AlphaOffset =    12.30
# BetaOffset =     0.00
# Thickness = 1910
# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
    0    84.4445    1.00000     13.382     21.802     1.00     1.00     1.00     0.00    -27.71
    1    84.4445    1.00000      1.680     -5.046     1.00     1.00     1.00     0.00    -25.70
# Local Alignment
   0   0 -1537.16  -1363.14     -6.93    -36.22   1.0
   0   1  -579.03  -1414.46     -2.53    -21.76   1.0
   1   0 -1539.49  -1386.98     -5.54    -33.76   1.0
   1   1  -581.18  -1436.53     -2.40    -20.75   0.0
"""


def test_dark_frames_and_local_alignment() -> None:
    document = aretomo_aln.parse(WITH_LOCAL, "local.aln")
    assert list(document.blocks) == ["dark_frames", "global", "local"]
    dark = document.block("dark_frames")
    assert list(dark.columns) == ["dark_idx", "sec_idx", "tilt"]
    assert list(dark.columns["tilt"]) == [-68.0, -66.0]
    local = document.block("local")
    assert list(local.columns) == list(aretomo_aln.LOCAL_COLUMNS)
    assert local.n_rows == 4
    assert local.columns["center_x"][1] == -579.03
    assert local.columns["is_reliable"][3] == 0.0
    assert "DarkFrame" not in document.fields
    assert aretomo_aln.to_string(document) == WITH_LOCAL


def test_writer_widens_decimals_when_values_need_them() -> None:
    columns = {label: np.array([1.0]) for label in GLOBAL}
    columns["SEC"] = np.array([1])
    columns["TX"] = np.array([9.22051])
    document = RawDocument(aretomo_aln.FORMAT_IRI, {"global": RawBlock("global", columns)})
    text = aretomo_aln.to_string(document)
    assert text.splitlines()[0] == "# AreTomo Alignment / Priims bprmMn"
    assert aretomo_aln.parse(text).block("global").columns["TX"][0] == 9.22051


# Numbers as an .aln holds them: at most 6 decimals.
DECIMALS = st.builds(
    lambda units, digits: units / 10**digits, st.integers(-(10**8), 10**8), st.integers(0, 6)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99999), *[DECIMALS] * 9), min_size=1, max_size=6))
def test_global_table_round_trip_is_exact_for_printed_numbers(rows: list[tuple[float, ...]]) -> None:
    columns = {label: np.array([row[i] for row in rows]) for i, label in enumerate(GLOBAL)}
    text = aretomo_aln.to_string(RawDocument(aretomo_aln.FORMAT_IRI, {"global": RawBlock("global", columns)}))
    back = aretomo_aln.parse(text, "h.aln").block("global")
    for label in GLOBAL:
        np.testing.assert_array_equal(np.asarray(back.columns[label], dtype=np.float64), columns[label])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# AreTomo Alignment\n# RawSize = 1 1 1\n", r"a\.aln: no '# SEC ROT GMAG TX TY \.\.\.' header line"),
        (
            "# AreTomo Alignment\n    1   -95.4\n",
            r"a\.aln: line 2: data before the '# SEC ROT \.\.\.' header",
        ),
        (
            "# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT\n 1 -95.4 1.0 9.2 103.9 1.0 1.0 1.0 0.0\n",
            r"a\.aln: line 2: expected 10 values \(SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT\), found 9",
        ),
        (
            "# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT\n 1 -95.4 1.0 9.2 nan? 1.0 1.0 1.0 0.0 5\n",
            r"a\.aln: line 2, column TY: 'nan\?' is not a number",
        ),
        (
            "# AreTomo\n# Thickness = 1\n# Thickness = 2\n",
            r"a\.aln: line 3: header field Thickness given twice",
        ),
        ("# AreTomo\n# DarkFrame =  0 0\n", r"a\.aln: line 2: expected 3 values \(dark_idx sec_idx tilt\)"),
        ("# SEC ROT\n 1 2\n# Note\n", r"a\.aln: line 3: unexpected comment '# Note' inside a table"),
    ],
)
def test_parse_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        aretomo_aln.parse(text, "a.aln")


def test_truncated_real_file(aln_path: Path, tmp_path: Path) -> None:
    data = aln_path.read_bytes()
    cut = tmp_path / "cut.aln"
    cut.write_bytes(data[: data.index(b"\n    2 ") + 30])
    with pytest.raises(ParseError, match=rf"{cut}: line 9: expected 10 values"):
        aretomo_aln.read(cut)


def test_to_string_needs_the_global_block() -> None:
    with pytest.raises(ConversionError, match="no block 'global'"):
        aretomo_aln.to_string(RawDocument(aretomo_aln.FORMAT_IRI))
