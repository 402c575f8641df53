"""SPIDER document files: the real corpus files, SPIDER's documented sample, round trips, errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipion_kg.converters import spider_doc
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

from .documents import assert_close, assert_same_documents

APSH_NAMES = ["PSI", "THE", "PHI", "REF#", "EXP#", "CUM.ROT", "CUM.SX", "CUM.SY", "NPROJ", "DIFF", "CCROT",
              "ROT", "SX", "SY", "MIR-CC"]  # fmt: skip
CTF_NAMES = ["Micrograph", "Defocus", "Astig.Ang", "Astig", "Defocus1", "Defocus2", "MRC-Ang", "MRC-CC"]

# (file, title, register names, rows, {0-based row: {column: value}}), read from the files by eye.
CASES: list[tuple[str, str, list[str], int, dict[int, dict[str, Any]]]] = [
    (
        "spider_ang_doc.dat",
        "tst/tst   01-APR-2013 AT 14:07   ang_doc.dat",
        ["PSI", "THETA", "PHI"],
        10,
        {
            0: {"key": 1, "nreg": 3, "PSI": 0.0, "THETA": 30.0, "PHI": 150.0},
            7: {"key": 8, "THETA": 2.99398, "PHI": 62.5943},
            9: {"key": 10, "THETA": 36.6683, "PHI": 95.0273},
        },
    ),
    (
        "spider_apsh_ali_doc.dat",
        "spi/dat   10-FEB-2014 AT 10:26:20   apsh_ali_doc.dat",
        APSH_NAMES,
        5,
        {
            0: {
                "key": 1,
                "nreg": 15,
                "THE": 90.0,
                "PHI": 81.8,
                "REF#": 78.0,
                "CUM.ROT": 354.93,
                "CUM.SX": 4.43,
            },
            3: {"key": 4, "THE": 240.0, "CCROT": 1417.2, "SX": -3.69, "SY": -6.03, "MIR-CC": -1.0},
        },
    ),
    (
        "spider_ctffind_def.dat",
        "spi/dat   09-APR-2013 AT 13:52:34   ctffind_def.dat",
        CTF_NAMES,
        3,
        {
            0: {"key": 6, "nreg": 8, "Micrograph": 6.0, "Defocus": 35001.0, "Astig.Ang": 3.19125},
            1: {"Astig": 1261.77, "Defocus1": 9349.64, "Defocus2": 10611.4, "MRC-Ang": 80.5561},
            2: {"MRC-CC": 0.171353},
        },
    ),
]


def corpus(shared_data: Path, name: str) -> Path:
    return shared_data / "formats" / "spider_doc" / name


def assert_same(left: RawDocument, right: RawDocument) -> None:
    assert_same_documents(left, right, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize(("name", "title", "names", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_real_file_values(
    shared_data: Path, name: str, title: str, names: list[str], rows: int, expected: dict[int, dict[str, Any]]
) -> None:
    document = spider_doc.read(corpus(shared_data, name))
    assert document.format_iri == spider_doc.FORMAT_IRI
    assert document.fields == {"title": title}
    block = document.block(spider_doc.BLOCK)
    assert list(block.columns) == ["key", "nreg", *names]
    assert block.n_rows == rows
    assert block.columns["key"].dtype == np.int64
    for row, values in expected.items():
        for label, value in values.items():
            assert block.columns[label][row] == pytest.approx(value, rel=1e-9), (row, label)


def test_line_numbers(shared_data: Path) -> None:
    block = spider_doc.read(corpus(shared_data, "spider_ctffind_def.dat")).block("doc")
    assert list(block.lines if block.lines is not None else []) == [6, 7, 8]


def test_apsh_comment_keys(shared_data: Path) -> None:
    document = spider_doc.read(corpus(shared_data, "spider_apsh_ali_doc.dat"))
    block = document.block(spider_doc.COMMENT_KEYS_BLOCK)
    names = ["%BIG-ANGDIF", "AVG-ANGDIF", "AVG-CCROT", "%WORSE", "AVG-WORSE", "AVG-BETTER"]
    assert list(block.columns) == ["key", "nreg", *names]
    assert (block.n_rows, block.columns["key"][0], block.columns["nreg"][0]) == (1, 2, 6)
    assert block.columns["AVG-CCROT"][0] == 1429.10
    assert block.line_of(0) == 12


def test_ctffind_pair_inside_each_row(shared_data: Path) -> None:
    # README: SPIDER (defocus, astigmatism angle, astigmatism) and CTFFIND (DF1, DF2, ANGAST) in one row.
    block = spider_doc.read(corpus(shared_data, "spider_ctffind_def.dat")).block("doc")
    c = {label: np.asarray(values, dtype=np.float64) for label, values in block.columns.items()}
    assert_close(c["Defocus1"], c["Defocus"] - c["Astig"] / 2, atol=0.1)
    assert_close(c["Defocus2"], c["Defocus"] + c["Astig"] / 2, atol=0.1)
    assert_close(c["MRC-Ang"], c["Astig.Ang"] + 45, atol=1e-3)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_round_trip(shared_data: Path, tmp_path: Path, name: str) -> None:
    document = spider_doc.read(corpus(shared_data, name))
    assert_same(document, spider_doc.parse(spider_doc.to_string(document)))
    target = tmp_path / name
    spider_doc.write(document, target)
    assert_same(document, spider_doc.read(target))


# The sample of spider-em/SPIDER docs/docfile.html: old fixed format (key 999999 touches its count 6),
# variable register counts, a comment key and free comments.
SAMPLE = """\
 ;tst/tst   16-JUN-1999 AT 13:03:18   jnkdoc001.tst
    9 1  11.000
   99 2  11.000      12.000
  999 3  11.000      12.000      13.000
 9999 4  11.000      12.000      13.000      14.000
99999 5  11.000      12.000      13.000      14.000      15.000
9999996  11.000      12.000      13.000      14.000      15.000      16.000
 ; /COMMENT KEY -88 CONTAINS -88
 ;-88 2 -88.000     -88.000
 ;  KEY 5556 HAS 7 REGISTERS
 5556 7  5554.0      6.0000      13.000      14.000      15.000      16.000      16.000
 ;  KEY 987654 HAS 11 REGISTERS
   987654 11    11.0 12.0 13.000  14.000 15.000 16.000 17.000 -1.76E-13 -19.0 10.0E2 21.2
"""


def test_documented_sample() -> None:
    document = spider_doc.parse(SAMPLE, source="jnkdoc001.tst")
    assert document.fields == {
        "title": "tst/tst   16-JUN-1999 AT 13:03:18   jnkdoc001.tst",
        "comment_1": " /COMMENT KEY -88 CONTAINS -88",
        "comment_2": "  KEY 5556 HAS 7 REGISTERS",
        "comment_3": "  KEY 987654 HAS 11 REGISTERS",
    }
    block = document.block("doc")
    assert list(block.columns) == ["key", "nreg", *[f"col_{i}" for i in range(1, 12)]]
    assert list(block.columns["key"]) == [9, 99, 999, 9999, 99999, 999999, 5556, 987654]
    assert list(block.columns["nreg"]) == [1, 2, 3, 4, 5, 6, 7, 11]
    assert block.columns["col_6"][5] == 16.0
    assert math.isnan(block.columns["col_2"][0])
    assert block.columns["col_8"][7] == -1.76e-13
    assert block.columns["col_10"][7] == 1000.0
    keys = document.block("comment_keys")
    assert (keys.columns["key"][0], keys.columns["col_2"][0]) == (-88, -88.0)
    again = spider_doc.parse(spider_doc.to_string(document))
    assert_same(document, again)
    assert list(again.block("doc").columns["nreg"]) == [1, 2, 3, 4, 5, 6, 7, 11]


def test_new_document_without_key_columns() -> None:
    columns = {"PSI": np.array([10.0, 20.5]), "THE": np.array([30.0, 40.0]), "PHI": np.array([0.0, 359.5])}
    document = RawDocument(spider_doc.FORMAT_IRI, {"doc": RawBlock("doc", columns)})
    text = spider_doc.to_string(document)
    assert text.splitlines()[2].split() == ["2", "3", "20.5", "40.0", "359.5"]
    block = spider_doc.parse(text).block("doc")
    assert list(block.columns) == ["key", "nreg", "PSI", "THE", "PHI"]
    assert list(block.columns["key"]) == [1, 2]


def test_truncated_line_names_file_and_line() -> None:
    text = " ;doc/dat   01-APR-2013 AT 14:07   x.dat\n    1 3   0.0   30.0   150.0\n    2 3   0.0   18.45\n"
    with pytest.raises(ParseError, match=r"x\.dat: line 3: key 2 declares 3 registers but the line has 2"):
        spider_doc.parse(text, source="x.dat")


def test_non_numeric_register_names_line_and_register() -> None:
    with pytest.raises(ParseError, match=r"x\.dat: line 2: register 2: '3O\.0' is not a number"):
        spider_doc.parse("    1 2   1.0   2.0\n    2 2   1.0   3O.0\n", source="x.dat")
    with pytest.raises(ParseError, match=r"x\.dat: line 1: expected 'key nreg value \.\.\.'"):
        spider_doc.parse("PSI THE PHI\n", source="x.dat")


def test_writer_errors() -> None:
    block = RawBlock("doc", {"PSI": np.array(["a"])})
    with pytest.raises(ConversionError, match="column 'PSI': SPIDER registers are numbers"):
        spider_doc.to_string(RawDocument(spider_doc.FORMAT_IRI, {"doc": block}))
    block = RawBlock("doc", {"nreg": np.array([3]), "PSI": np.array([1.0])})
    with pytest.raises(ConversionError, match="row 1: nreg is 3 but there are 1 registers"):
        spider_doc.to_string(RawDocument(spider_doc.FORMAT_IRI, {"doc": block}))
    with pytest.raises(ConversionError, match="not \\['other'\\]"):
        spider_doc.to_string(RawDocument(spider_doc.FORMAT_IRI, {"other": RawBlock("other", {})}))
