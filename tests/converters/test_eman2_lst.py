"""EMAN2 .lst files, composed per cryoem/eman2 libpyEM/EMAN2.py LSXFile (no real .lst file is in the corpus).

LSXFile layout: '#LSX', a whole-file comment, '# <line length>', then records
'<n>\\t<file>\\t<json>' padded with blanks to the line length; the JSON is json.dumps(sort_keys=True,
separators=(',', ':')) and a Transform is {"__class__":"Transform","matrix":[12 numbers]}.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters import eman2_lst
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

from .documents import assert_same_documents

COMMENT = (
    "# This file is in fast LST format. All lines after the next line have exactly the number of characters"
)
RECORDS = [
    '0\tparticles/ptcls_00.hdf\t{"class":0,"score":-0.912,"xform.projection":{"__class__":"Transform",'
    '"matrix":[0.5,-0.75,0.433,10.0,0.866,0.433,-0.25,-2.5,0.0,0.5,0.866,0.0]}}',
    '1\tparticles/ptcls_00.hdf\t{"class":1,"score":-0.87,"xform.projection":{"__class__":"Transform",'
    '"matrix":[1.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,1.0,0.0]}}',
    '7\tparticles/ptcls_01.hdf\t{"score":-0.5}',
    "2\tparticles/ptcls_01.hdf",
]
LENGTH = 174  # EMAN2 pads to the longest record + 1 (+4 of slack when it rewrites)
LSX = f"#LSX\n{COMMENT}\n# {LENGTH}\n" + "".join(f"{r:<{LENGTH - 1}}\n" for r in RECORDS)


def assert_same(left: RawDocument, right: RawDocument) -> None:
    assert_same_documents(left, right, rtol=1e-9, equal_nan=True, version=True)


def test_lsx_values() -> None:
    assert all(len(line) + 1 == LENGTH for line in LSX.splitlines()[3:])
    document = eman2_lst.parse(LSX, source="sets/all.lst")
    assert document.format_iri == eman2_lst.FORMAT_IRI
    assert document.version == "LSX"
    assert document.fields == {"comment": COMMENT, "integer_columns": "class"}
    block = document.block(eman2_lst.BLOCK)
    assert block.n_rows == 4
    assert list(block.lines if block.lines is not None else []) == [4, 5, 6, 7]
    assert list(block.columns)[:5] == ["idx", "src", "class", "score", "xform.projection/__class__"]
    assert list(block.columns)[-1] == "xform.projection/matrix[11]"
    c = block.columns
    assert list(c["idx"]) == [0, 1, 7, 2]
    assert list(c["src"]) == ["particles/ptcls_00.hdf"] * 2 + ["particles/ptcls_01.hdf"] * 2
    assert c["class"].dtype == np.float64 and c["class"][1] == 1.0 and math.isnan(c["class"][2])
    assert list(c["score"][:3]) == [-0.912, -0.87, -0.5] and math.isnan(c["score"][3])
    assert list(c["xform.projection/__class__"]) == ["Transform", "Transform", "", ""]
    assert (c["xform.projection/matrix[1]"][0], c["xform.projection/matrix[3]"][0]) == (-0.75, 10.0)
    assert c["xform.projection/matrix[10]"][1] == 1.0


def test_lsx_round_trip(tmp_path: Path) -> None:
    document = eman2_lst.parse(LSX)
    text = eman2_lst.to_string(document)
    lines = text.splitlines()
    assert lines[:2] == ["#LSX", COMMENT]
    length = int(lines[2][1:])
    assert all(len(line) + 1 == length for line in lines[3:])
    assert length == max(len(r) for r in RECORDS) + 1
    for written, original in zip(lines[3:], RECORDS, strict=True):
        fields, expected = written.rstrip().split("\t"), original.split("\t")
        assert fields[:2] == expected[:2]
        if len(expected) == 3:
            assert json.loads(fields[2]) == json.loads(expected[2])  # "class" stays an integer
    target = tmp_path / "all.lst"
    eman2_lst.write(document, target)
    assert_same(document, eman2_lst.read(target))


def test_lst_and_legacy_comments() -> None:
    text = (
        "#LST\n# made by hand\n0\tstack.hdf\n"
        "1\tstack.hdf\t-0.5;Transform({'az':10.000,'alt':20.000,'phi':30.000,'tx':1.00,'ty':2.00,'tz':0.00,"
        "'mirror':0,'scale':1.0000,'type':'eman'})\n"
    )
    document = eman2_lst.parse(text)
    assert document.version == "LST"
    assert document.fields == {"comment": "# made by hand"}
    block = document.block("particles")
    assert list(block.columns) == ["idx", "src", "lst_comment"]
    assert block.columns["lst_comment"][1].startswith("-0.5;Transform({'az':10.000")
    assert block.columns["lst_comment"][0] == ""
    again = eman2_lst.to_string(document)
    assert again == text
    assert_same(document, eman2_lst.parse(again))


def test_new_document_is_written_as_lsx() -> None:
    columns = {
        "idx": np.array([0, 1]),
        "src": np.array(["a.hdf", "a.hdf"]),
        "xform.projection/__class__": np.array(["Transform", "Transform"]),
        **{f"xform.projection/matrix[{i}]": np.full(2, float(i)) for i in range(12)},
        "score": np.array([-1.0, -2.5]),
    }
    document = RawDocument(eman2_lst.FORMAT_IRI, {"particles": RawBlock("particles", columns)})
    lines = eman2_lst.to_string(document).splitlines()
    assert lines[0] == "#LSX" and lines[1].startswith("#")
    metadata = json.loads(lines[3].split("\t")[2])
    assert metadata == {
        "xform.projection": {"__class__": "Transform", "matrix": [float(i) for i in range(12)]},
        "score": -1.0,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("#LST2\n0\ta.hdf\n", r"line 1: expected '#LSX' or '#LST', found '#LST2'"),
        ("#LSX\n# comment\n", r"line 3: an #LSX file needs a comment line then a '# <line length>' line"),
        ("#LSX\n# comment\n# x\n", r"line 3: '# x' is not '# <line length>'"),
        ("#LSX\n# c\n# 20\n0\ta.hdf\n1a\ta.hdf\n", r"line 5, column idx: '1a' is not an image number"),
        ('#LSX\n# c\n# 20\n0\ta.hdf\t{"score":-0.5,"class\n', r"line 4, column metadata: not valid JSON"),
        ("#LSX\n# c\n# 20\n0\ta.hdf\t{}\textra\n", r"line 4: 4 tab-separated fields"),
        ("#LSX\n# c\n# 20\n0 a.hdf\n", r"line 4: 1 tab-separated fields"),
    ],
    ids=[
        "magic",
        "truncated-header",
        "line-length",
        "image-number",
        "truncated-json",
        "four-fields",
        "no-tab",
    ],
)
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=rf"all\.lst: {message}"):
        eman2_lst.parse(text, source="all.lst")


def test_writer_errors() -> None:
    block = RawBlock(
        "particles", {"idx": np.array([0]), "src": np.array(["a.hdf"]), "a/b[1]": np.array([1.0])}
    )
    with pytest.raises(ConversionError, match=r"list items \[1\] are not numbered 0..0"):
        eman2_lst.to_string(RawDocument(eman2_lst.FORMAT_IRI, {"particles": block}))
    block = RawBlock("particles", {"src": np.array(["a.hdf"])})
    with pytest.raises(ConversionError, match="'idx' is missing"):
        eman2_lst.to_string(RawDocument(eman2_lst.FORMAT_IRI, {"particles": block}))
