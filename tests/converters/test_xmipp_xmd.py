"""Xmipp metadata (.xmd) read and write: the real corpus files, Xmipp's layout, round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipion_kg.converters import star, xmipp_xmd
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ParseError

# Read by eye from the files: header comments, blocks as (name, is_loop, rows, labels, line of the first
# row) and (block, label, row, value) samples.
CASES: dict[str, dict[str, Any]] = {
    "xmipp_pythoninterface_test.xmd": {
        "comments": ["CAREFUL if re3d is last label this does not work"],
        "blocks": [("noname", True, 3, 6, 11)],
        "values": [
            ("noname", "image", 0, "000001@pythoninterface/proj_ctf_1.stk"),
            ("noname", "CTFModel", 0, "CTFs/10.ctfparam"),
            ("noname", "CTF_Defocus_U", 0, -100.0),
            ("noname", "count", 0, 10),
            # A vector value: quoted with ', a tab inside kept.
            ("noname", "classificationData", 0, " 1.000000\t 2.000000     3.000000 "),
            ("noname", "ref3d", 0, -1),
            ("noname", "CTF_Defocus_U", 2, -300.0),
            ("noname", "classificationData", 2, " 1.000000\t 8.000000    27.000000 "),
            ("noname", "ref3d", 2, -3),
        ],
    },
    "xmipp_ref_c1_exp_sampling.xmd": {
        "comments": [""],
        "blocks": [
            ("extra", False, 1, 2, 4),
            ("neighbors", True, 0, 0, None),
            ("projectionDirections", True, 22, 7, 17),
        ],
        "values": [
            ("extra", "sampling_rate", 0, 0.0523599),
            ("extra", "neighborhoodRadius", 0, 0.996195),
            ("projectionDirections", "neighbor", 0, 619),
            ("projectionDirections", "angleRot", 0, 26.136053),
            ("projectionDirections", "X", 0, 0.785014),
            ("projectionDirections", "angleRot", 19, -2.600026),
            ("projectionDirections", "neighbor", 21, 496),
            ("projectionDirections", "angleTilt", 21, 36.348986),
            ("projectionDirections", "Z", 21, 0.805422),
        ],
    },
}
# Rows of 10 values under 9 labels: Xmipp reads the first 9 of each line and ignores the rest
# (xmippCore MetaDataVec::_parseObjects); a strict reader refuses the file.
INVALID = {
    "xmipp_experimental_images.xmd": "line 14: expected 9 values (one per label of the loop of block "
    "data_noname), found 10",
}


def corpus(shared_data: Path) -> Path:
    return shared_data / "formats" / "xmipp_xmd"


def assert_same(left: RawDocument, right: RawDocument) -> None:
    assert (left.version, left.fields, list(left.blocks)) == (right.version, right.fields, list(right.blocks))
    for name, block in left.blocks.items():
        other = right.blocks[name]
        assert (block.is_loop, list(block.columns)) == (other.is_loop, list(other.columns)), name
        for label, values in block.columns.items():
            again = other.columns[label]
            if len(values):
                assert values.dtype.kind == again.dtype.kind, (name, label)
            if values.dtype.kind == "f":
                np.testing.assert_allclose(
                    again.astype(float), values.astype(float), rtol=1e-12, equal_nan=True
                )
            else:
                assert values.tolist() == again.tolist(), (name, label)


def test_every_corpus_file_has_a_case(shared_data: Path) -> None:
    assert sorted(path.name for path in corpus(shared_data).glob("*.xmd")) == sorted([*CASES, *INVALID])


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_file(shared_data: Path, name: str) -> None:
    case = CASES[name]
    document = xmipp_xmd.read(corpus(shared_data) / name)
    assert document.format_iri == xmipp_xmd.FORMAT_IRI
    assert document.version is None  # "# XMIPP_STAR_1 *" names the format, it is not a version
    assert document.fields == {f"comment_{i}": text for i, text in enumerate(case["comments"], start=1)}
    assert [
        (block.name, block.is_loop, block.n_rows, len(block.columns), block.line_of(0)) for block in document
    ] == case["blocks"]
    for block_name, label, row, expected in case["values"]:
        value = document.block(block_name).columns[label][row]
        if isinstance(expected, float):
            assert isinstance(value, np.floating)
            assert value == pytest.approx(expected, rel=1e-12), label
        elif isinstance(expected, int):
            assert isinstance(value, np.integer)
            assert value == expected, label
        else:
            assert isinstance(value, np.str_)
            assert value == expected, label


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_real_file_is_refused(shared_data: Path, name: str) -> None:
    path = corpus(shared_data) / name
    with pytest.raises(ParseError) as error:
        xmipp_xmd.read(path)
    assert str(error.value) == f"{path}: {INVALID[name]}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_file_round_trips(shared_data: Path, name: str, tmp_path: Path) -> None:
    document = xmipp_xmd.read(corpus(shared_data) / name)
    text = xmipp_xmd.to_string(document)
    assert_same(document, xmipp_xmd.parse(text))
    xmipp_xmd.write(document, tmp_path / name)
    assert (tmp_path / name).read_text() == text
    assert_same(document, xmipp_xmd.read(tmp_path / name))


def test_xmipp_layout(shared_data: Path) -> None:
    text = xmipp_xmd.to_string(xmipp_xmd.read(corpus(shared_data) / "xmipp_pythoninterface_test.xmd"))
    lines = text.split("\n")
    assert lines[:6] == [
        "# XMIPP_STAR_1 *",
        "# CAREFUL if re3d is last label this does not work",
        "data_noname",
        "loop_",
        " _image",
        " _CTFModel",
    ]
    assert "version" not in text and "#1" not in text
    # Vector values keep Xmipp's single quotes.
    assert lines[10].split("'")[1] == " 1.000000\t 2.000000     3.000000 "


def test_key_value_and_empty_loop_layout(shared_data: Path) -> None:
    text = xmipp_xmd.to_string(xmipp_xmd.read(corpus(shared_data) / "xmipp_ref_c1_exp_sampling.xmd"))
    assert text.startswith(
        "# XMIPP_STAR_1 *\n#\ndata_extra\n _sampling_rate       0.0523599\n _neighborhoodRadius  0.996195\n"
        "data_neighbors\nloop_\ndata_projectionDirections\nloop_\n _neighbor\n"
    )


def test_marker_is_written_even_when_the_source_had_none() -> None:
    document = xmipp_xmd.parse("data_a\nloop_\n _angleRot\n 1.5\n")
    assert document.fields == {} and document.version is None
    text = xmipp_xmd.to_string(document)
    assert text == "# XMIPP_STAR_1 *\ndata_a\nloop_\n _angleRot\n1.5\n"
    assert_same(document, xmipp_xmd.parse(text))


def test_relion_reader_keeps_the_marker_as_a_comment(shared_data: Path) -> None:
    document = star.read(corpus(shared_data) / "xmipp_ref_c1_exp_sampling.xmd")
    assert document.fields == {"comment_1": "XMIPP_STAR_1 *", "comment_2": ""}


@st.composite
def tables(draw: st.DrawFn) -> RawDocument:
    n_rows = draw(st.integers(1, 20))
    angles = draw(st.lists(st.floats(-360, 360), min_size=n_rows, max_size=n_rows))
    refs = draw(st.lists(st.integers(-(2**31), 2**31), min_size=n_rows, max_size=n_rows))
    images = draw(
        st.lists(
            st.from_regex(r"[0-9]{6}@[a-z_/]{1,12}\.stk", fullmatch=True), min_size=n_rows, max_size=n_rows
        )
    )
    vectors = [
        " ".join(str(value) for value in draw(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=4)))
        for _ in range(n_rows)
    ]
    columns = {
        "image": np.array(images),
        "angleRot": np.array(angles, dtype=np.float64),
        "ref": np.array(refs, dtype=np.int64),
        "classificationData": np.array(vectors),
    }
    return RawDocument(
        xmipp_xmd.FORMAT_IRI, {"noname": RawBlock("noname", columns)}, fields={"comment_1": ""}
    )


@settings(max_examples=100, deadline=None)
@given(document=tables())
def test_random_tables_round_trip(document: RawDocument) -> None:
    assert_same(document, xmipp_xmd.parse(xmipp_xmd.to_string(document)))
