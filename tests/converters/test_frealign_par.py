"""FREALIGN/cisTEM .par files, composed per the documented layout (no real .par file is in the corpus).

Layout sources: header line as asarnow/pyem pyem/metadata/cistem.py write_fx_par writes it; column widths of
nextpyp/pyp frealign_parfile.py FREALIGNX_PAR_STRING_TEMPLATE (%7d%8.2f%8.2f%8.2f%10.2f%10.2f%8.0f%6d%9.1f
%9.1f%8.2f%8.2f%8.2f%10.0f%11.4f%8.2f%8.2f), MAG written as Fortran F8.0 writes it ("10000.").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters import frealign_par
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

from .documents import assert_same_documents

HEADER = (
    "C           PSI   THETA     PHI       SHX       SHY     MAG  INCLUDE   DF1      DF2  ANGAST  PSHIFT     "
    "OCC      LogP      SIGMA   SCORE  CHANGE"
)
LINES = [
    "      1   15.27  101.64  211.87     -1.52      2.13  10000.     1  19822.2  19462.4   45.04    0.00"
    "  100.00     -3065    13.3711   20.29    0.00",
    "      2  320.51   45.07   98.32      3.10     -0.87  10000.     1  21011.7  20588.0   44.87    0.00"
    "  100.00     -3102    13.1204   18.77    0.00",
    "      3 -172.40  137.90    5.05    -12.66    104.31  10000.     0  15432.0  15101.9  -30.12   90.00"
    "   35.50     -2977    12.9877    7.05   -1.25",
]
TRAILER = "C  Total particles included, overall score, average occ.         2      19.53    100.00"
FREALIGNX = HEADER + "\n" + "\n".join(LINES) + "\n" + TRAILER + "\n"
NAMES = ["C", "PSI", "THETA", "PHI", "SHX", "SHY", "MAG", "INCLUDE", "DF1", "DF2", "ANGAST", "PSHIFT", "OCC",
         "LogP", "SIGMA", "SCORE", "CHANGE"]  # fmt: skip


def assert_same(left: RawDocument, right: RawDocument) -> None:
    assert_same_documents(left, right, rtol=1e-6)


def test_frealignx_values() -> None:
    document = frealign_par.parse(FREALIGNX, source="run_1.par")
    assert document.format_iri == frealign_par.FORMAT_IRI
    block = document.block(frealign_par.BLOCK)
    assert list(block.columns) == NAMES
    assert block.n_rows == 3
    assert list(block.lines if block.lines is not None else []) == [2, 3, 4]
    c = block.columns
    assert c["C"].dtype == np.int64 and list(c["C"]) == [1, 2, 3]
    assert (c["PSI"][2], c["THETA"][2], c["PHI"][2]) == (-172.4, 137.9, 5.05)
    assert (c["SHX"][2], c["SHY"][2]) == (-12.66, 104.31)
    assert c["MAG"].dtype == np.float64 and c["MAG"][0] == 10000.0
    assert list(c["INCLUDE"]) == [1, 1, 0]
    assert (c["DF1"][1], c["DF2"][1], c["ANGAST"][1]) == (21011.7, 20588.0, 44.87)
    assert (c["PSHIFT"][2], c["OCC"][2], c["LogP"][2], c["SIGMA"][2]) == (90.0, 35.5, -2977, 12.9877)
    assert (c["SCORE"][0], c["CHANGE"][2]) == (20.29, -1.25)
    assert document.fields == {"trailer_comments": TRAILER[1:]}


def test_writer_reproduces_the_fixed_width_lines(tmp_path: Path) -> None:
    document = frealign_par.parse(FREALIGNX)
    text = frealign_par.to_string(document)
    lines = text.splitlines()
    assert lines[0].split() == HEADER.split()
    assert lines[1:4] == LINES
    assert lines[4] == TRAILER
    target = tmp_path / "out.par"
    frealign_par.write(document, target)
    assert_same(document, frealign_par.read(target))


def test_frealign9_without_header_gets_frealign_names() -> None:
    # FREALIGN 9: 16 columns, FILM and no PSHIFT.
    line = (
        "      1   15.27  101.64  211.87     -1.52      2.13  10000.     3  19822.2  19462.4   45.04  100.00"
    )
    line += "     -3065    13.3711   20.29    0.00"
    block = frealign_par.parse(line + "\n").block("particles")
    assert list(block.columns) == [
        "C", "PSI", "THETA", "PHI", "SHX", "SHY", "MAG", "FILM", "DF1", "DF2", "ANGAST", "OCC", "LogP",
        "SIGMA", "SCORE", "CHANGE",
    ]  # fmt: skip
    assert (block.columns["FILM"][0], block.columns["OCC"][0]) == (3, 100.0)


def test_pyp_header_with_title_lines() -> None:
    text = (
        "C FREALIGNX parameter file\n"
        "C     1       2       3       4         5         6       7     8        9       10      11      12"
        "      13        14         15      16      17\n"
        "C    NO     PSI   THETA     PHI       SHX       SHY     MAG  FILM      DF1      DF2  ANGAST  PSHIFT"
        "     OCC      LOGP      SIGMA   SCORE  CHANGE\n" + "\n".join(LINES) + "\n"
    )
    document = frealign_par.parse(text)
    block = document.block("particles")
    assert list(block.columns)[:3] == ["NO", "PSI", "THETA"]
    assert "LOGP" in block.columns and "FILM" in block.columns
    assert document.fields["header_comments"].split("\n")[0] == " FREALIGNX parameter file"
    again = frealign_par.parse(frealign_par.to_string(document))
    assert_same(document, again)
    assert frealign_par.to_string(document).splitlines()[2].split()[:3] == ["C", "NO", "PSI"]


def test_more_precision_than_the_layout_is_kept() -> None:
    columns = {
        "C": np.array([1, 2]),
        "PSI": np.array([15.273456, -0.5]),
        "SHX": np.array([1.25, -3.0625]),
        "DF1": np.array([20000.0, 15000.05]),
        "MAG": np.array([10000.0, 10000.0]),
    }
    document = RawDocument(frealign_par.FORMAT_IRI, {"particles": RawBlock("particles", columns)})
    text = frealign_par.to_string(document)
    assert text.splitlines()[1] == "      1 15.273456      1.25  20000.0  10000."
    again = frealign_par.parse(text)
    assert_same(document, again)


def test_truncated_line_names_file_and_line() -> None:
    text = HEADER + "\n" + LINES[0] + "\n" + LINES[1][:60] + "\n"
    with pytest.raises(ParseError, match=r"run\.par: line 3: 7 fields where the header names 17 columns"):
        frealign_par.parse(text, source="run.par")


def test_non_numeric_value_names_line_and_column() -> None:
    text = HEADER + "\n" + LINES[0] + "\n" + LINES[1].replace("21011.7", "21O11.7") + "\n"
    with pytest.raises(ParseError, match=r"run\.par: line 3, column DF1: '21O11\.7' is not a number"):
        frealign_par.parse(text, source="run.par")


def test_header_and_lines_disagree() -> None:
    text = "C  PSI THETA PHI\n      1   15.27  101.64  211.87     -1.52\n"
    with pytest.raises(
        ParseError, match=r"run\.par: line 1: the header names 4 columns but the particle lines"
    ):
        frealign_par.parse(text, source="run.par")
    with pytest.raises(
        ParseError, match=r"run\.par: line 4: a particle line after the closing comment lines"
    ):
        frealign_par.parse(HEADER + "\n" + LINES[0] + "\nC end\n" + LINES[1] + "\n", source="run.par")


def test_writer_refuses_text() -> None:
    block = RawBlock("particles", {"C": np.array([1]), "FILE": np.array(["a.mrc"])})
    with pytest.raises(ConversionError, match=r"column 'FILE': a \.par file holds numbers only"):
        frealign_par.to_string(RawDocument(frealign_par.FORMAT_IRI, {"particles": block}))
