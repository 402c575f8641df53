"""IMOD .xf/.tlt/.rawtlt/.xtilt read and write; align.log, .edf and tilt.com read; on the real corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipion_kg.converters import imod
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

XF = ("A11", "A12", "A21", "A22", "DX", "DY")

# (folder/file, format, rows, column, first row, last row): values read from the files by eye.
TABLES = [
    (
        "imod/etomofiles_TS_001.xf",
        imod.XF_IRI,
        40,
        XF,
        (0.1020875, 0.9947760, -0.9947760, 0.1020875, 2.395, -3.871),
        (0.1004192, 0.9949457, -0.9949457, 0.1004192, -3.070, 0.039),
    ),
    (
        "imod/yaiw_xf_file.xf",
        imod.XF_IRI,
        41,
        XF,
        (0.0858208, 0.9963112, -0.9963112, 0.0858208, 342.263, 2006.328),
        (0.0760996, 0.9971007, -0.9971007, 0.0760996, 127.984, -63.963),
    ),
    (
        "aretomo_aln/alnfile_global_no_local.xf",
        imod.XF_IRI,
        61,
        XF,
        (-0.0941778, 0.9955554, -0.9955554, -0.0941778, -102.6027, 18.9672),
        None,
    ),
    ("imod/etomofiles_TS_001.tlt", imod.TILT_ANGLES_IRI, 40, ("tilt_angle",), (-57.12,), (59.84,)),
    ("imod/etomofiles_TS_001.rawtlt", imod.TILT_ANGLES_IRI, 40, ("tilt_angle",), (-60.0,), (56.99,)),
    ("imod/etomofiles_TS_001.xtilt", imod.XTILT_IRI, 40, ("xtilt_angle",), (-0.01,), (0.0,)),
]
# Written by IMOD itself (or byte-compatible): to_string must give the same bytes back.
IMOD_WRITTEN = ["imod/etomofiles_TS_001.xf", "imod/yaiw_xf_file.xf", "imod/etomofiles_TS_001.tlt"]
IMOD_WRITTEN += ["imod/etomofiles_TS_001.xtilt"]


def _formats(shared_data: Path) -> Path:
    return shared_data / "formats"


def assert_same_document(a: RawDocument, b: RawDocument) -> None:
    assert a.format_iri == b.format_iri
    assert a.fields == b.fields
    assert list(a.blocks) == list(b.blocks)
    for name, block in a.blocks.items():
        other = b.blocks[name]
        assert list(block.columns) == list(other.columns)
        for label, values in block.columns.items():
            assert values.dtype.kind == other.columns[label].dtype.kind, label
            if values.dtype.kind == "f":
                floats = np.asarray(values, dtype=np.float64)
                np.testing.assert_allclose(
                    np.asarray(other.columns[label], dtype=np.float64), floats, rtol=1e-12
                )
            else:
                np.testing.assert_array_equal(other.columns[label], values, err_msg=label)


@pytest.mark.parametrize(("name", "iri", "rows", "labels", "first", "last"), TABLES)
def test_tables_read_real_values(
    shared_data: Path,
    name: str,
    iri: str,
    rows: int,
    labels: tuple[str, ...],
    first: tuple[float, ...],
    last: tuple[float, ...] | None,
) -> None:
    path = _formats(shared_data) / name
    document = imod.read(path)
    assert document.format_iri == iri
    assert document.source == path
    block = document.block("views")
    assert tuple(block.columns) == labels
    assert block.n_rows == rows
    assert [block.columns[label][0] for label in labels] == list(first)
    if last is not None:
        assert [block.columns[label][-1] for label in labels] == list(last)
    assert block.line_of(0) == 1
    assert block.line_of(rows - 1) == rows


@pytest.mark.parametrize("name", [table[0] for table in TABLES])
def test_tables_round_trip(shared_data: Path, name: str, tmp_path: Path) -> None:
    path = _formats(shared_data) / name
    document = imod.read(path)
    text = imod.to_string(document)
    assert_same_document(document, imod.parse(text, path.name))
    target = tmp_path / path.name
    imod.write(document, target)
    assert_same_document(document, imod.read(target))


@pytest.mark.parametrize("name", IMOD_WRITTEN)
def test_imod_layout_is_reproduced_byte_for_byte(shared_data: Path, name: str) -> None:
    path = _formats(shared_data) / name
    assert imod.to_string(imod.read(path)) == path.read_text()


def test_rawtlt_is_written_in_tiltalign_layout(shared_data: Path) -> None:
    # The .rawtlt was written without padding ("-60.00"); IMOD's own layout is f7.2.
    text = imod.to_string(imod.read(_formats(shared_data) / "imod/etomofiles_TS_001.rawtlt"))
    assert text.splitlines()[:2] == [" -60.00", " -57.00"]


def test_xf_from_another_program_keeps_its_extra_decimals(shared_data: Path) -> None:
    # alnfile wrote the shifts with 4 decimals; IMOD's f12.3 would lose one.
    text = imod.to_string(imod.read(_formats(shared_data) / "aretomo_aln/alnfile_global_no_local.xf"))
    assert text.splitlines()[0] == "  -0.0941778   0.9955554  -0.9955554  -0.0941778   -102.6027     18.9672"


def test_xf_writer_widens_decimals_and_separates_wide_numbers() -> None:
    columns = {label: np.array([1.0]) for label in XF}
    columns["DX"] = np.array([1.23456])
    columns["DY"] = np.array([123456789.5])
    document = RawDocument(imod.XF_IRI, {"views": RawBlock("views", columns)})
    text = imod.to_string(document)
    assert text == "   1.0000000   1.0000000   1.0000000   1.0000000     1.23456 123456789.500\n"
    back = imod.parse(text, "x.xf").block("views")
    assert back.columns["DX"][0] == 1.23456
    assert back.columns["DY"][0] == 123456789.5


def _decimal_numbers(most: int) -> st.SearchStrategy[float]:
    """Numbers as a file holds them: at most ``most`` decimals."""
    return st.builds(
        lambda units, digits: units / 10**digits, st.integers(-(10**9), 10**9), st.integers(0, most)
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[_decimal_numbers(9)] * 4, *[_decimal_numbers(6)] * 2), min_size=1, max_size=8))
def test_xf_round_trip_is_exact_for_printed_numbers(rows: list[tuple[float, ...]]) -> None:
    columns = {label: np.array([row[i] for row in rows]) for i, label in enumerate(XF)}
    text = imod.to_string(RawDocument(imod.XF_IRI, {"views": RawBlock("views", columns)}))
    back = imod.parse(text, "h.xf").block("views")
    for label in XF:
        np.testing.assert_array_equal(np.asarray(back.columns[label], dtype=np.float64), columns[label])


def test_integer_angles_stay_integers() -> None:
    document = imod.parse("-60\n0\n60\n", "a.rawtlt")
    assert document.block("views").columns["tilt_angle"].dtype == np.int64
    assert imod.to_string(document) == "    -60\n      0\n     60\n"


def test_format_comes_from_extension_or_argument() -> None:
    assert imod.format_for("TS_01.prexg") == imod.XF_IRI
    assert imod.format_for("align.log") == imod.ALIGN_LOG_IRI
    assert imod.parse(" 1.5\n", "anything", imod.XTILT_IRI).format_iri == imod.XTILT_IRI
    with pytest.raises(ParseError, match=r"notes\.txt: not an IMOD file extension"):
        imod.format_for("notes.txt")


# -- align.log ----------------------------------------------------------------------------------------


def test_align_log_view_table_and_fields(shared_data: Path) -> None:
    path = _formats(shared_data) / "imod/yaiw_align.log"
    document = imod.read(path)
    views = document.block("views")
    assert list(views.columns) == ["view", "rotation", "tilt", "deltilt", "mag", "dmag", "skew", "resid-nm"]
    assert views.n_rows == 40
    assert views.columns["view"][0] == 2 and views.columns["view"][-1] == 41
    assert views.columns["view"].dtype == np.int64
    assert set(views.columns["rotation"]) == {85.2}
    assert views.columns["tilt"][0] == -48.0 and views.columns["tilt"][-1] == 69.0
    assert views.columns["mag"][0] == 1.0
    assert views.columns["resid-nm"][0] == 0.77
    assert views.columns["resid-nm"][list(views.columns["view"]).index(19)] == 1.24
    assert views.line_of(0) == 185
    fields = document.fields
    assert fields["rotation_angle_at_minimum_tilt"] == "85.24"
    assert fields["total_tilt_angle_change"] == "10.02"
    assert fields["incremental_tilt_angle_change"] == "1.00"
    assert fields["beam_tilt_angle"] == "0.15"
    assert fields["x_axis_tilt_needed"] == "-4.46"
    assert fields["unbinned_thickness_needed"] == "1041"
    assert fields["total_unbinned_z_shift"] == "340.6"
    assert (fields["residual_error_mean"], fields["residual_error_sd"]) == ("0.360", "0.457")
    assert fields["residual_error_unit"] == "nm"
    assert fields["residual_error_weighted_mean"] == "0.289"
    assert fields["tiltalign.RotationAngle"] == "85.0"
    assert fields["tiltalign.AngleOffset"] == "9.02"
    assert fields["tiltalign.UnbinnedPixelSize"] == "0.135"
    assert fields["tiltalign.TargetPatchSizeXandY"] == "700,700"
    assert fields["xfproduct.ScaleShifts"] == "1,8"
    assert len([key for key in fields if key.startswith("tiltalign.")]) == 57
    with pytest.raises(ConversionError, match="read-only"):
        imod.to_string(document)


OLD_LOG = """
*** Entries to program tiltalign ***
  RotationAngle = -12.5
  ExcludeList = 1
  ExcludeList = 5
*** End of entries ***

 At minimum tilt, rotation angle is  -12.60

 view   rotation    tilt    deltilt     mag      dmag      skew    mean resid
   1     -12.6     -60.0     -0.20    1.0012    0.0000      0.00      0.42
   2     -12.6     -58.5     -0.18    1.0011    0.0000      0.00      0.40

 Fixed rotation angle is  -12.60

 view     tilt    deltilt     mag      dmag      skew     X-tilt   mean resid
   1     -60.0     -0.20    1.0012    0.0000      0.00      0.00      0.42
"""


def test_align_log_older_header_and_repeated_entries() -> None:
    document = imod.parse(OLD_LOG, "align.log")
    views = document.block("views")
    assert list(views.columns) == ["view", "rotation", "tilt", "deltilt", "mag", "dmag", "skew", "mean resid"]
    assert views.n_rows == 2
    assert views.columns["mean resid"][1] == 0.40
    assert document.fields["tiltalign.ExcludeList"] == "1"
    assert document.fields["tiltalign.ExcludeList#2"] == "5"
    assert document.fields["rotation_angle_at_minimum_tilt"] == "-12.60"
    assert document.fields["fixed_rotation_angle"] == "-12.60"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" view   rotation    tilt\n", r"log\.log: line 1: per-view table has no rows"),
        (" At minimum tilt, rotation angle is  85.24\n", r"log\.log: no per-view table"),
        (" view   rotation    tilt\n   2      85.2\n", r"log\.log: line 2: expected 3 values"),
        (
            " view   rotation    tilt\n   2      85.2  ***\n",
            r"log\.log: line 2, column tilt: '\*\*\*' is not a number",
        ),
        (" Total tilt angle change =  abc\n", r"log\.log: line 1, column total_tilt_angle_change: 'abc'"),
    ],
)
def test_align_log_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        imod.parse(text, "log.log")


# -- .edf and .com ------------------------------------------------------------------------------------


def test_edf_fields(shared_data: Path) -> None:
    document = imod.read(_formats(shared_data) / "imod/etomofiles_TS_001.edf")
    assert document.format_iri == imod.EDF_IRI
    assert len(document.fields) == 109  # 110 lines, the first a timestamp comment
    assert document.fields["Setup.DataSource"] == "CCD"
    assert document.fields["Setup.DatasetName"] == "TS_001"
    assert document.fields["batchruntomo.a.align.AngleOffset"] == "2.85"
    assert document.fields["Setup.AxisA.TiltAngle.RangeMin"] == "-60.0"
    assert document.fields["Setup.A.SizeToOutputInXandY"] == "/"
    assert document.fields["Setup.BackupDirectory"] == ""
    assert document.fields["Setup.Version.Etomo.Created"] == "4.12.17"
    assert imod.parse(imod.to_string(document), "x.edf").fields == document.fields


def test_tilt_com_fields(shared_data: Path) -> None:
    document = imod.read(_formats(shared_data) / "imod/cryocat_TS_017_tilt.com")
    fields = document.fields
    assert document.format_iri == imod.COMMAND_FILE_IRI
    assert fields["tilt"] == "-StandardInput"
    assert fields["tilt.InputProjections"] == "017.ali"
    assert fields["tilt.THICKNESS"] == "1500"
    assert fields["tilt.RADIAL"] == "0.35 0.035"
    assert fields["tilt.FULLIMAGE"] == "4096 4096"
    assert fields["tilt.PERPENDICULAR"] == ""
    assert fields["tilt.TILTFILE"] == "017.tlt"
    assert fields["if"] == "(-e ./savework) ./savework"
    assert len(fields) == 19
    assert imod.parse(imod.to_string(document), "x.com").fields == fields


def test_com_with_two_programs_and_tabs() -> None:
    text = "# comment\n$newstack -StandardInput\nInputFile\ta.st\n$newstack -StandardInput\nInputFile\tb.st\n"
    document = imod.parse(text, "newst.com")
    assert document.fields == {
        "newstack": "-StandardInput",
        "newstack.InputFile": "a.st",
        "newstack#2": "-StandardInput",
        "newstack#2.InputFile": "b.st",
    }
    assert imod.parse(imod.to_string(document), "newst.com").fields == document.fields


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "t.xf",
            "1 0 0 1 0 0\n1 0 0 1 0\n",
            r"t\.xf: line 2: expected 6 values \(A11 A12 A21 A22 DX DY\), found 5",
        ),
        ("t.xf", "1 0 0 1 0 0\n1 0 0 1 abc 0\n", r"t\.xf: line 2, column DX: 'abc' is not a number"),
        ("t.xf", "1 0 0 1 0 0 7\n", r"t\.xf: line 1: expected 6 values"),
        ("t.xf", "", r"t\.xf: no data lines"),
        ("t.tlt", "-60.0\n-57.0 1\n", r"t\.tlt: line 2: expected 1 values \(one angle\), found 2"),
        ("t.rawtlt", "-60.0\n-5x\n", r"t\.rawtlt: line 2, column tilt_angle: '-5x' is not a number"),
        ("t.xtilt", "0.0\n*******\n", r"t\.xtilt: line 2, column xtilt_angle"),
        ("t.edf", "Setup.A=1\nSetup.B\n", r"t\.edf: line 2: expected Key=Value"),
        ("t.com", "THICKNESS 100\n", r"t\.com: line 1: option 'THICKNESS 100' before any \$program"),
        ("t.com", "$\n", r"t\.com: line 1: '\$' without a program name"),
    ],
)
def test_parse_errors_name_file_and_line(name: str, text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        imod.parse(text, name)


def test_truncated_real_file_names_file_and_line(shared_data: Path, tmp_path: Path) -> None:
    source = (_formats(shared_data) / "imod/etomofiles_TS_001.xf").read_bytes()
    truncated = tmp_path / "cut.xf"
    truncated.write_bytes(source[: source.index(b"\n", 200) - 20])
    with pytest.raises(ParseError, match=rf"{truncated}: line 3: expected 6 values"):
        imod.read(truncated)


def test_write_refuses_documents_it_cannot_write() -> None:
    missing = RawDocument(imod.XF_IRI, {"views": RawBlock("views", {"A11": np.array([1.0])})})
    with pytest.raises(ConversionError, match="lacks column"):
        imod.to_string(missing)
    text = RawDocument(imod.TILT_ANGLES_IRI, {"views": RawBlock("views", {"tilt_angle": np.array(["a"])})})
    with pytest.raises(ConversionError, match="text values"):
        imod.to_string(text)
