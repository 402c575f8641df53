"""Dynamo tables and table maps: the real corpus files, round trips, positional writing, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipion_kg.converters import dynamo_tbl
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

from .documents import assert_same_documents

# (file, rows, columns, {0-based row: {column: value}}), values read from the files and their READMEs.
CASES: list[tuple[str, int, int, dict[int, dict[str, Any]]]] = [
    (
        "dynamo2m_example.tbl",
        4934,
        35,
        {
            # README pair with dynamo2m tests/test_dynamo2warp.py: tag 52.
            1: {"tag": 52, "dx": 4.1156, "tdrot": 112.7, "tilt": 8.4212, "narot": -65.676, "x": 532.5},
            3: {"tag": 62, "daxis": 1.2074e-06, "tomo": 1, "ymintilt": -60, "npar": 1, "ref": 1, "sref": 0},
            4933: {"tag": 63500, "dz": -5.9309, "tomo": 106, "reg": 60, "z": 207.5},
        },
    ),
    (
        "dynamotable_t_double.tbl",
        300,
        35,
        {
            # teamtomo/dynamotable README prints this table: tags 1..300, sref 5 4 4 4 2 ... 2 3.
            0: {"tag": 1, "aligned": 1, "averaged": 0, "dx": 2.5178, "cc2": 0.30415, "tomo": 1, "sref": 5},
            4: {"tag": 5, "dx": 1.0589, "sref": 2},
            298: {"tag": 299, "dx": 0.003773, "tomo": 2, "reg": 149, "sref": 2},
            299: {"tag": 300, "dx": -0.23129, "class": 2, "x": 239.47, "sref": 3},
        },
    ),
    (
        "cryocat_b4_dynamo.tbl",
        1343,
        26,
        {
            0: {"tag": 1, "dx": 1.0651, "tdrot": 144.13, "tilt": -79.159, "narot": -180.0, "cc": 0.1593},
            1: {"tomo": 2, "reg": 2, "class": 1, "x": 476, "y": 512, "z": 218, "ymintilt": -50.01},
            1342: {"tag": 1934, "tomo": 289, "reg": 73, "x": 738, "y": 87, "z": 193},
        },
    ),
]


def corpus(shared_data: Path, name: str) -> Path:
    return shared_data / "formats" / "dynamo_tbl" / name


def assert_same(left: RawDocument, right: RawDocument) -> None:
    assert_same_documents(left, right, rtol=1e-6)


@pytest.mark.parametrize(("name", "rows", "width", "expected"), CASES, ids=[case[0] for case in CASES])
def test_real_file_values(
    shared_data: Path, name: str, rows: int, width: int, expected: dict[int, dict[str, Any]]
) -> None:
    document = dynamo_tbl.read(corpus(shared_data, name))
    assert document.format_iri == dynamo_tbl.FORMAT_IRI
    block = document.block(dynamo_tbl.BLOCK)
    assert block.n_rows == rows
    assert list(block.columns) == [dynamo_tbl.column_name(i) for i in range(1, width + 1)]
    assert block.columns["tag"].dtype == np.int64
    assert block.columns["tdrot"].dtype == np.float64
    for row, values in expected.items():
        assert block.line_of(row) == row + 1
        for label, value in values.items():
            assert block.columns[label][row] == pytest.approx(value, rel=1e-9), (row, label)


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_round_trip(shared_data: Path, tmp_path: Path, name: str) -> None:
    document = dynamo_tbl.read(corpus(shared_data, name))
    assert_same(document, dynamo_tbl.parse(dynamo_tbl.to_string(document)))
    target = tmp_path / name
    dynamo_tbl.write(document, target)
    assert_same(document, dynamo_tbl.read(target))


def test_written_lines_keep_dynamo_numbers(shared_data: Path) -> None:
    document = dynamo_tbl.read(corpus(shared_data, "dynamotable_t_double.tbl"))
    first = dynamo_tbl.to_string(document).splitlines()[0]
    assert (
        first.split() == corpus(shared_data, "dynamotable_t_double.tbl").read_text().splitlines()[0].split()
    )


def test_column_names_follow_dthelp() -> None:
    assert dynamo_tbl.column_name(7) == "tdrot"
    assert dynamo_tbl.column_name(20) == "tomo"
    assert dynamo_tbl.column_name(33) == "col_33"
    assert dynamo_tbl.column_name(41) == "eig1"
    assert dynamo_tbl.column_name(43) == "col_43"
    assert dynamo_tbl.column_position("narot") == 9
    assert dynamo_tbl.column_position("col_38") == 38
    with pytest.raises(ConversionError, match="'rlnAngleRot' is not a Dynamo table column"):
        dynamo_tbl.column_position("rlnAngleRot")


def test_new_table_places_columns_by_position() -> None:
    columns = {
        "tag": np.array([1, 2]),
        "x": np.array([10.5, 20.0]),
        "z": np.array([30.0, 40.25]),
        "tdrot": np.array([-90.0, 45.5]),
    }
    document = RawDocument(dynamo_tbl.FORMAT_IRI, {"particles": RawBlock("particles", columns)})
    lines = dynamo_tbl.to_string(document).splitlines()
    first = lines[0].split()
    assert len(first) == 26
    assert (first[0], first[6], first[23], first[24], first[25]) == ("1", "-90.0", "10.5", "0", "30.0")
    again = dynamo_tbl.parse("\n".join(lines)).block("particles")
    assert again.columns["z"][1] == 40.25
    assert again.columns["y"].dtype == np.int64 and list(again.columns["y"]) == [0, 0]


def test_table_map(shared_data: Path, tmp_path: Path) -> None:
    path = corpus(shared_data, "dynamo2m_example.doc")
    document = dynamo_tbl.read_table_map(path)
    assert document.format_iri == dynamo_tbl.MAP_FORMAT_IRI
    block = document.block(dynamo_tbl.MAP_BLOCK)
    assert block.n_rows == 54
    assert list(block.columns["index"][:5]) == [1, 2, 3, 4, 6]  # tomogram 5 is not in the map
    assert block.columns["index"][-1] == 106
    prefix = "/media/aburt/Dibona/WM5984_180924_DCheR_minicells/frames/reconstruction/"
    assert block.columns["path"][0] == prefix + "tomo_ts01.mrc_15.00Apx.mrc"
    assert block.columns["path"][-1] == prefix + "tomo_ts99.mrc_15.00Apx.mrc"
    target = tmp_path / "map.doc"
    dynamo_tbl.write_table_map(document, target)
    assert_same(document, dynamo_tbl.read_table_map(target))
    # Every tomogram of the table is in its map.
    table = dynamo_tbl.read(corpus(shared_data, "dynamo2m_example.tbl")).block("particles")
    assert set(table.columns["tomo"].tolist()) <= set(block.columns["index"].tolist())


def test_truncated_table_names_file_and_line() -> None:
    text = "1 1 0 2.5 -3.5 2.1 175.66 90.681\n2 1 0 3.2 1.4 0.3 -118.64\n"
    with pytest.raises(
        ParseError, match=r"t\.tbl: line 2: 7 columns where the table's first row \(line 1\) has 8"
    ):
        dynamo_tbl.parse(text, source="t.tbl")


def test_non_numeric_value_names_line_and_column() -> None:
    text = "1 1 0 2.5\n\n2 1 0 abc\n"
    with pytest.raises(ParseError, match=r"t\.tbl: line 3, column 4 \(dx\): 'abc' is not a number"):
        dynamo_tbl.parse(text, source="t.tbl")


def test_table_map_errors() -> None:
    with pytest.raises(
        ParseError, match=r"m\.doc: line 2, column index: 'x' is not an integer tomogram index"
    ):
        dynamo_tbl.parse_table_map("1 a.mrc\nx b.mrc\n", source="m.doc")
    with pytest.raises(ParseError, match=r"m\.doc: line 1: expected 'index path', found only '7'"):
        dynamo_tbl.parse_table_map("7\n", source="m.doc")


def test_writer_refuses_text_and_unknown_columns() -> None:
    block = RawBlock("particles", {"tag": np.array([1]), "name": np.array(["a"])})
    with pytest.raises(ConversionError, match="'name' is not a Dynamo table column"):
        dynamo_tbl.to_string(RawDocument(dynamo_tbl.FORMAT_IRI, {"particles": block}))
    block = RawBlock("particles", {"tag": np.array(["a"])})
    with pytest.raises(ConversionError, match="column 'tag': a Dynamo table holds numbers only"):
        dynamo_tbl.to_string(RawDocument(dynamo_tbl.FORMAT_IRI, {"particles": block}))
