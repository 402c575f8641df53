"""SerialEM .mdoc read and to_string on the real tilt-series and frame-set files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters import serialem_mdoc as mdoc
from scipion_kg.converters.raw import RawDocument

from scipion_kg.errors import ParseError

FILES = ["mdocfile_tilt_series.mdoc", "mdocfile_frame_set_single.mdoc"]


def _path(shared_data: Path, name: str) -> Path:
    return shared_data / "formats" / "serialem_mdoc" / name


def assert_same(a: RawDocument, b: RawDocument) -> None:
    assert a.fields == b.fields
    assert list(a.blocks) == list(b.blocks)
    for name, block in a.blocks.items():
        other = b.blocks[name]
        assert list(block.columns) == list(other.columns)
        for label, values in block.columns.items():
            assert values.dtype.kind == other.columns[label].dtype.kind, label
            np.testing.assert_array_equal(other.columns[label], values, err_msg=label)


def test_tilt_series(shared_data: Path) -> None:
    document = mdoc.read(_path(shared_data, FILES[0]))
    assert document.format_iri == mdoc.FORMAT_IRI
    assert document.fields == {
        "PixelSpacing": "5.4",
        "ImageFile": "TS_01.mrc",
        "ImageSize": "924 958",
        "DataMode": "1",
        "[T]": "SerialEM: Digitized on EMBL Krios                       30-Nov-15  15:14:20    ",
        "[T]#2": "    Tilt axis angle = 85.3, binning = 4  spot = 8  camera = 2",
    }
    assert list(document.blocks) == ["ZValue"]
    block = document.block("ZValue")
    assert block.n_rows == 41
    assert list(block.columns["ZValue"]) == list(range(41))
    assert list(block.columns["TiltAngle"][:3]) == [0.000999877, 3.00113, -2.99863]
    assert block.columns["TiltAngle"][40] == 60.0006
    assert (block.columns["StagePosition[0]"][0], block.columns["StagePosition[1]"][0]) == (20.7936, 155.287)
    assert (block.columns["ImageShift[0]"][2], block.columns["ImageShift[1]"][2]) == (0.00951526, -0.0952629)
    assert [block.columns[f"MinMaxMean[{i}]"][0] for i in range(3)] == [5, 1403, 623.699]
    assert block.columns["MinMaxMean[2]"][40] == 329.46
    assert block.columns["Magnification"].dtype == np.int64
    assert set(block.columns["Magnification"]) == {105000}
    assert block.columns["Defocus"][40] == -0.567786
    assert block.columns["DateTime"][0] == "30-Nov-15  15:21:38"
    assert block.columns["SubFramePath"][39] == r"D:\DATA\Flo\HGK149_20151130\frames\TS_01_039_-60.0.mrc"
    assert "StagePosition" not in block.columns and "DateTime[0]" not in block.columns
    assert block.line_of(0) == 10
    assert block.line_of(1) == 33


def test_frame_set_with_crlf_and_bare_title(shared_data: Path) -> None:
    document = mdoc.read(_path(shared_data, FILES[1]))
    assert document.fields == {
        "T": "SerialEM: UMass_Krios Camera -> 0:Ceta 1:GIF-K3         08-Oct-21  07:38:24",
        "Voltage": "300",
    }
    block = document.block("FrameSet")
    assert block.n_rows == 1
    assert block.columns["FrameSet"][0] == 0
    assert block.columns["TiltAngle"][0] == 32.984
    assert block.columns["ExposureDose"][0] == 7.65892
    assert block.columns["PixelSpacing"][0] == 1.2827
    assert block.columns["Binning"][0] == 0.5
    assert (block.columns["FrameDosesAndNumber[0]"][0], block.columns["FrameDosesAndNumber[1]"][0]) == (
        0.63824,
        12,
    )
    assert block.columns["FrameDosesAndNumber[1]"].dtype == np.int64
    assert (block.columns["UncroppedSize[0]"][0], block.columns["UncroppedSize[1]"][0]) == (-2880, -2046)
    assert block.columns["SubFramePath"][0].endswith(r"frames\s_mmm_00993_33.0_Oct08_07.39.05.tif")
    assert not any(str(value).endswith("\r") for value in block.columns["DateTime"])
    assert block.line_of(0) == 4


@pytest.mark.parametrize("name", FILES)
def test_round_trip(shared_data: Path, name: str, tmp_path: Path) -> None:
    document = mdoc.read(_path(shared_data, name))
    assert_same(document, mdoc.parse(mdoc.to_string(document), name))
    target = tmp_path / name
    mdoc.write(document, target)
    assert_same(document, mdoc.read(target))


def test_round_trip_text_of_tilt_series_matches_serialem_layout(shared_data: Path) -> None:
    path = _path(shared_data, FILES[0])
    # One difference: in a float column, SerialEM's "57" is written "57.0" so the column reads back as float.
    expected = path.read_text().replace("TiltAngle = 57\n", "TiltAngle = 57.0\n")
    assert expected != path.read_text()
    assert mdoc.to_string(mdoc.read(path)) == expected


MISSING = """PixelSpacing = 1.0

[ZValue = 0]
TiltAngle = 0.0
Magnification = 33000
Note = first

[ZValue = 1]
TiltAngle = 3.0
StagePosition = 1.5 2.5

[MontSection = 0]
PieceCoordinates = 0 0 0

[ZValue = 2]
TiltAngle = -3.0
Magnification = 42000
StagePosition = 3.5 4.5 5.5
"""


def test_missing_keys_and_mixed_sections() -> None:
    document = mdoc.parse(MISSING, "m.mdoc")
    block = document.block("ZValue")
    assert block.n_rows == 3
    magnification = block.columns["Magnification"]
    assert magnification.dtype == np.float64
    assert magnification[0] == 33000 and np.isnan(magnification[1]) and magnification[2] == 42000
    assert list(block.columns["Note"]) == ["first", "", ""]
    # Two numbers in one section, three in another: kept as text.
    assert list(block.columns["StagePosition"]) == ["", "1.5 2.5", "3.5 4.5 5.5"]
    assert list(document.block("MontSection").columns) == [
        "MontSection",
        "PieceCoordinates[0]",
        "PieceCoordinates[1]",
        "PieceCoordinates[2]",
    ]
    text = mdoc.to_string(document)
    assert "Magnification = 33000\n" in text and "Magnification = nan" not in text
    # Sections keep their file order across the two blocks.
    assert text.index("[ZValue = 1]") < text.index("[MontSection = 0]") < text.index("[ZValue = 2]")
    assert_same(document, mdoc.parse(text, "m.mdoc"))


def test_repeated_key_in_a_section_is_kept() -> None:
    document = mdoc.parse("[ZValue = 0]\nNote = a\nNote = b\n", "r.mdoc")
    block = document.block("ZValue")
    assert (block.columns["Note"][0], block.columns["Note#2"][0]) == ("a", "b")
    assert "Note = a\nNote = b\n" in mdoc.to_string(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PixelSpacing = 5.4\n[ZValue = 0\n", r"b\.mdoc: line 2: malformed section line '\[ZValue = 0'"),
        ("[ZValue = zero]\n", r"b\.mdoc: line 1, column ZValue: 'zero' is not an integer"),
        ("[ZValue = 0]\nTiltAngle 3.0\n", r"b\.mdoc: line 2: expected 'Key = Value', found 'TiltAngle 3.0'"),
        ("[ZValue = 0]\n= 3.0\n", r"b\.mdoc: line 2: expected 'Key = Value'"),
        ("[ZValue = 0]\n[T = late title]\n", r"b\.mdoc: line 2: title line inside a section"),
        ("\n\n", r"b\.mdoc: no 'Key = Value' line and no section"),
    ],
)
def test_parse_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        mdoc.parse(text, "b.mdoc")


def test_truncated_real_file(shared_data: Path, tmp_path: Path) -> None:
    data = _path(shared_data, FILES[0]).read_bytes()
    cut = tmp_path / "cut.mdoc"
    cut.write_bytes(data[: data.index(b"[ZValue = 1]") + 5])
    with pytest.raises(ParseError, match=rf"{cut}: line 33: malformed section line '\[ZVal'"):
        mdoc.read(cut)
