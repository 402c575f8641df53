"""TOM/AV3 motive lists (.em): bytes checked against the EM header layout independently, round trips, errors.

There is no real .em motive list in the corpus: the files are written by the module and their bytes are
checked with struct/numpy against the layout (TOM tom_emread.m; teamtomo/emfile specs.py).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipion_kg.converters import tom_motl
from scipion_kg.converters.raw import RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

# Three particles: row i of the matrix holds particle i's 20 values.
MATRIX = np.array(
    [
        [0.41, 0, 0, 1, 7, 2, 0.5, 101.0, 202.0, 33.0, 0.25, -1.5, 2.0, 0, 0, 0, 12.5, -40.0, 95.0, 1],
        [0.38, 0, 0, 2, 7, 2, -0.1, 150.0, 60.0, 41.0, -0.75, 0.5, 0.0, 0, 0, 0, -170.0, 33.0, 10.0, 2],
        [0.52, 0, 0, 3, 8, 1, 0.0, 12.0, 14.0, 16.0, 0.0, 0.0, -3.25, 0, 0, 0, 0.0, 180.0, 45.5, 1],
    ]
)


def assert_close(actual: Any, expected: Any, **options: Any) -> None:
    """np.testing.assert_allclose on float64 views (raw columns are typed as generic arrays)."""
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), **options
    )


def motl_document(**fields: str) -> RawDocument:
    columns = {name: MATRIX[:, i].copy() for i, name in enumerate(tom_motl.COLUMN_NAMES)}
    return RawDocument(
        tom_motl.FORMAT_IRI, {"particles": RawBlock("particles", columns)}, fields=dict(fields)
    )


def test_names_are_cryocat_motl_columns() -> None:
    assert len(tom_motl.COLUMN_NAMES) == 20
    assert tom_motl.COLUMN_NAMES[:7] == (
        "score",
        "geom1",
        "geom2",
        "subtomo_id",
        "tomo_id",
        "object_id",
        "subtomo_mean",
    )
    assert tom_motl.COLUMN_NAMES[7:13] == ("x", "y", "z", "shift_x", "shift_y", "shift_z")
    assert tom_motl.COLUMN_NAMES[16:] == ("phi", "psi", "theta", "class")


def test_written_bytes_follow_the_em_layout(tmp_path: Path) -> None:
    path = tmp_path / "motl_1.em"
    tom_motl.write(motl_document(comment="made by a test"), path)
    data = path.read_bytes()
    assert len(data) == 512 + 3 * 20 * 4
    machine, version, unused, data_type, nx, ny, nz = struct.unpack("<4b3i", data[:16])
    assert (machine, version, unused, data_type) == (6, 0, 0, 5)  # PC little-endian, float32
    assert (nx, ny, nz) == (20, 3, 1)
    assert data[16:96].rstrip(b"\0") == b"made by a test"
    assert struct.unpack("<40i", data[96:256]) == (0,) * 40
    assert data[256:512] == b"\0" * 256
    values = np.frombuffer(data, dtype="<f4", offset=512).reshape(3, 20)  # x (the 20 values) fastest
    np.testing.assert_array_equal(values, MATRIX.astype(np.float32))
    assert values[1, 7] == 150.0  # x of particle 2, row 8 of the motive list
    assert values[2, 18] == 45.5  # theta of particle 3, row 19


def test_read_back(tmp_path: Path) -> None:
    path = tmp_path / "motl_1.em"
    tom_motl.write(motl_document(), path)
    document = tom_motl.read(path)
    assert document.format_iri == tom_motl.FORMAT_IRI
    assert document.source == path
    assert document.fields == {"machine": "6", "data_type": "5"}
    block = document.block(tom_motl.BLOCK)
    assert list(block.columns) == list(tom_motl.COLUMN_NAMES)
    assert block.n_rows == 3
    assert block.columns["x"].dtype == np.float64
    np.testing.assert_array_equal(block.columns["subtomo_id"], [1, 2, 3])
    np.testing.assert_array_equal(block.columns["phi"], [12.5, -170.0, 0.0])
    np.testing.assert_array_equal(block.columns["psi"], [-40.0, 33.0, 180.0])
    assert_close(block.columns["score"], [0.41, 0.38, 0.52], rtol=1e-6)  # float32 precision
    assert tom_motl.to_bytes(document) == path.read_bytes()


@pytest.mark.parametrize(
    ("machine", "data_type", "order", "code"),
    [("5", "5", ">", "f4"), ("3", "9", ">", "f8"), ("6", "9", "<", "f8")],
    ids=["mac-float32", "sgi-float64", "pc-float64"],
)
def test_other_byte_orders_and_types(machine: str, data_type: str, order: str, code: str) -> None:
    data = tom_motl.to_bytes(motl_document(machine=machine, data_type=data_type))
    assert struct.unpack(order + "4b3i", data[:16]) == (int(machine), 0, 0, int(data_type), 20, 3, 1)
    assert_close(np.frombuffer(data, dtype=order + code, offset=512).reshape(3, 20), MATRIX, rtol=1e-6)
    again = tom_motl.parse(data)
    assert again.fields == {"machine": machine, "data_type": data_type}
    assert_close(again.block("particles").columns["theta"], MATRIX[:, 18], rtol=1e-6)


def test_header_fields_survive() -> None:
    emdata = " ".join(str(v) for v in [300, 2700, *range(38)])
    document = motl_document(
        machine="6", data_type="5", comment="AV3 motive list", emdata=emdata, user_data="tester  20240101"
    )
    again = tom_motl.parse(tom_motl.to_bytes(document))
    assert again.fields == document.fields


def test_extra_rows_and_missing_columns() -> None:
    columns = {"x": np.array([1.0, 2.0]), "col_22": np.array([5.0, 6.0]), "class": np.array([3.0, 4.0])}
    document = RawDocument(tom_motl.FORMAT_IRI, {"particles": RawBlock("particles", columns)})
    data = tom_motl.to_bytes(document)
    assert struct.unpack("<3i", data[4:16]) == (22, 2, 1)
    block = tom_motl.parse(data).block("particles")
    assert list(block.columns)[-2:] == ["col_21", "col_22"]
    np.testing.assert_array_equal(block.columns["col_22"], [5.0, 6.0])
    np.testing.assert_array_equal(block.columns["score"], [0.0, 0.0])
    np.testing.assert_array_equal(block.columns["class"], [3.0, 4.0])


def test_truncated_files() -> None:
    data = tom_motl.to_bytes(motl_document())
    with pytest.raises(ParseError, match=r"m\.em: truncated: 300 bytes, shorter than the 512-byte EM header"):
        tom_motl.parse(data[:300], source="m.em")
    with pytest.raises(ParseError, match=r"m\.em: truncated: .* row 3 \(particle 3\) is incomplete"):
        tom_motl.parse(data[:-10], source="m.em")
    with pytest.raises(ParseError, match=r"m\.em: 4 bytes after the 3 x 20 values"):
        tom_motl.parse(data + b"\0" * 4, source="m.em")


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, struct.pack("<b", 1), r"byte 0 \(machine code\) is 1"),
        (3, struct.pack("<b", 8), r"byte 3 \(data type\) is 8"),
        (12, struct.pack("<i", 2), r"dimensions 20 x 3 x 2"),
    ],
    ids=["vax-machine", "complex-data", "three-d"],
)
def test_not_a_motive_list(offset: int, value: bytes, message: str) -> None:
    data = bytearray(tom_motl.to_bytes(motl_document()))
    data[offset : offset + len(value)] = value
    with pytest.raises(ParseError, match=rf"m\.em: {message}"):
        tom_motl.parse(bytes(data), source="m.em")


def test_text_input_and_bad_writer_input() -> None:
    with pytest.raises(ParseError, match="binary"):
        tom_motl.parse("not bytes", source="m.em")
    block = RawBlock("particles", {"x": np.array(["a"])})
    with pytest.raises(ConversionError, match="column 'x': a motive list holds numbers only"):
        tom_motl.to_bytes(RawDocument(tom_motl.FORMAT_IRI, {"particles": block}))
    block = RawBlock("particles", {"rlnAngleRot": np.array([1.0])})
    with pytest.raises(ConversionError, match="'rlnAngleRot' is not a motive-list row"):
        tom_motl.to_bytes(RawDocument(tom_motl.FORMAT_IRI, {"particles": block}))
