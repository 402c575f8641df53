"""CTFFIND output .txt read (and to_string) on the real corpus file and on CTFFIND 5's longer rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters import ctffind

from scipion_kg.errors import ParseError

LABELS = [
    "micrograph number",
    "defocus 1 [Angstroms]",
    "defocus 2",
    "azimuth of astigmatism",
    "additional phase shift [radians]",
    "cross correlation",
    "spacing (in Angstroms) up to which CTF rings were fit successfully",
]


@pytest.fixture
def txt_path(shared_data: Path) -> Path:
    return shared_data / "formats" / "ctffind" / "cryocat_TS_017_ctffind4.txt"


def test_header_fields_and_version(txt_path: Path) -> None:
    document = ctffind.read(txt_path)
    assert document.format_iri == ctffind.FORMAT_IRI
    assert document.version == "4.1.8"
    assert document.fields == {
        "CTFFind version": "4.1.8",
        "run on": "2019-02-25 11:33:34",
        "Input file": "031.mrc",
        "Number of micrographs": "41",
        "Pixel size": "1.327",
        "Pixel size unit": "Angstroms",
        "acceleration voltage": "300.0",
        "acceleration voltage unit": "keV",
        "spherical aberration": "2.70",
        "spherical aberration unit": "mm",
        "amplitude contrast": "0.07",
        "Box size": "512",
        "Box size unit": "pixels",
        "min. res.": "30.0",
        "min. res. unit": "Angstroms",
        "max. res.": "5.0",
        "max. res. unit": "Angstroms",
        "min. def.": "10000.0",
        "min. def. unit": "um",
        "max. def.": "75000.0",
        "max. def. unit": "um",
    }


def test_rows(txt_path: Path) -> None:
    block = ctffind.read(txt_path).block(ctffind.BLOCK)
    assert list(block.columns) == LABELS
    # The header announces 41 micrographs but the file has 60 rows: rows 42-60 repeat rows 2-19.
    assert block.n_rows == 60
    assert [block.columns[label][0] for label in LABELS] == [
        1.0,
        14477.870117,
        13500.001953,
        75.000012,
        0.0,
        0.001071,
        12.144508,
    ]
    assert [block.columns[label][40] for label in LABELS] == [
        41.0,
        19806.958984,
        19740.335938,
        -70.902534,
        0.0,
        0.004225,
        12.570632,
    ]
    assert (
        block.columns["defocus 1 [Angstroms]"][41]
        == block.columns["defocus 1 [Angstroms]"][1]
        == 18332.730469
    )
    assert block.columns["micrograph number"].dtype == np.float64
    assert block.line_of(0) == 6
    assert block.line_of(59) == 65


def test_round_trip_is_byte_identical(txt_path: Path, tmp_path: Path) -> None:
    document = ctffind.read(txt_path)
    assert ctffind.to_string(document) == txt_path.read_text()
    target = tmp_path / "out.txt"
    ctffind.write(document, target)
    again = ctffind.read(target)
    assert again.fields == document.fields
    for label in LABELS:
        np.testing.assert_array_equal(
            again.block(ctffind.BLOCK).columns[label], document.block(ctffind.BLOCK).columns[label]
        )


# CTFFIND 5's header (its tenth column label has no " - ").
CTFFIND5 = (
    "# Output from CTFFind version 5.0.2, run on 2025-02-13 21:14:21\n"
    "# Input file: /data/micrograph_1.mrc ; Number of micrographs: 1\n"
    "# Pixel size: 0.930 Angstroms ; acceleration voltage: 300.0 keV ; spherical aberration: 2.70 mm ; "
    "amplitude contrast: 0.07\n"
    "# Box size: 512 pixels ; min. res.: 30.0 Angstroms ; max. res.: 3.5 Angstroms ; min. def.: 0.0 um; "
    "max. def. 50000.0 um\n"
    "# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; "
    "#4 - azimuth of astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; "
    "#7 - spacing (in Angstroms) up to which CTF rings were fit successfully; "
    "#8 - Estimated tilt axis angle; #9 - Estimated tilt angle ; "
    "#10 Estimated sample thickness (in Angstroms)\n"
    "1.000000 8984.742188 8709.236328 45.948771 0.000000 0.446317 3.720000 221.912292 12.251187 1619.773438\n"
)


def test_ctffind5_columns() -> None:
    document = ctffind.parse(CTFFIND5, "ctf5.txt")
    block = document.block(ctffind.BLOCK)
    assert list(block.columns)[7:] == [
        "Estimated tilt axis angle",
        "Estimated tilt angle",
        "Estimated sample thickness (in Angstroms)",
    ]
    assert block.columns["Estimated sample thickness (in Angstroms)"][0] == 1619.773438
    assert document.fields["Input file"] == "/data/micrograph_1.mrc"
    again = ctffind.parse(ctffind.to_string(document), "again.txt")
    assert again.fields == document.fields
    assert list(again.block(ctffind.BLOCK).columns) == list(block.columns)


def test_unknown_header_lines_survive_a_round_trip() -> None:
    text = CTFFIND5.replace("# Columns:", "# Extra setting: 12 frames\n# Columns:")
    document = ctffind.parse(text, "extra.txt")
    assert (document.fields["Extra setting"], document.fields["Extra setting unit"]) == ("12", "frames")
    assert ctffind.parse(ctffind.to_string(document)).fields == document.fields


COLUMNS_LINE = "# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# Output from CTFFind version 4.1.8, run on x\n1.0 2.0\n",
            r"c\.txt: line 2: data row before the '# Columns:'",
        ),
        ("# Output from CTFFind version 4.1.8, run on x\n", r"c\.txt: no '# Columns:' header line"),
        (
            COLUMNS_LINE + "1.0 2.0 3.0\n",
            r"c\.txt: line 2: expected 2 values \(as in '# Columns:'\), found 3",
        ),
        (COLUMNS_LINE + "1.0 2.0\n2.0\n", r"c\.txt: line 3: expected 2 values"),
        (
            COLUMNS_LINE + "1.0 -nan(ind)\n",
            r"c\.txt: line 2, column defocus 1 \[Angstroms\]: '-nan\(ind\)' is not",
        ),
        ("# Columns: #1 - a; #3 - b\n", r"c\.txt: line 1, column 2: cannot read '#3 - b'"),
        (
            "# Pixel size: 1.0 A ; Pixel size: 2.0 A\n" + COLUMNS_LINE,
            r"c\.txt: line 1: header field 'Pixel size'",
        ),
        (COLUMNS_LINE + "1.0 2.0\n# late\n", r"c\.txt: line 3: comment line after the data rows"),
    ],
)
def test_parse_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        ctffind.parse(text, "c.txt")


def test_truncated_real_file(txt_path: Path, tmp_path: Path) -> None:
    data = txt_path.read_bytes()
    cut = tmp_path / "cut.txt"
    cut.write_bytes(data[: data.index(b"\n3.000000") - 10])
    with pytest.raises(ParseError, match=rf"{cut}: line 7: expected 7 values"):
        ctffind.read(cut)
