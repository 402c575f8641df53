"""cryoSPARC .cs: the real corpus files, byte-identical rewrites, cryoSPARC dtypes for new data, errors."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipion_kg.converters import cryosparc_cs
from scipion_kg.converters.raw import Column, RawBlock, RawDocument

from scipion_kg.errors import ConversionError, ParseError

from .documents import assert_close

# Values read from each file with np.load, and from the corpus README.
CASES: list[tuple[str, int, int, dict[str, Any]]] = [
    (
        "cryodrgn_cryosparc_P12_J24_001_particles.cs",
        2019,
        38,
        {
            "uid": 15494748553812943456,
            "blob/path": "J19/extract/20150917_05196_DNA-TET-25k-DE20_raw.region_000.sum-all_003-072"
            "_particles.mrc",
            "blob/shape[0]": 180,
            "blob/psize_A": 2.95,
            "ctf/type": "ctffind4",
            "ctf/df1_A": 45591.37,
            "ctf/df2_A": 45309.793,
            "ctf/df_angle_rad": -1.3636448,
            "alignments3D/shift[0]": 11.334375,
            "alignments3D/shift[1]": -1.828125,
            "alignments3D/pose[0]": 2.3386633,
            "alignments3D/pose[1]": -0.25595567,
            "alignments3D/pose[2]": -1.2236784,
            "alignments3D/split": 1,
        },
    ),
    (
        "cryodrgn_cryosparc_J2_particles_exported.cs",
        22,
        53,
        {
            "uid": 2714306824294111763,
            "blob/path": ">J1/imported/000090334788266266069_18jam15b_0345_ali_DW.mrcs",
            "blob/shape[1]": 300,
            "blob/psize_A": 1.345,
            "ctf/type": "imported",
            "ctf/df1_A": 16412.178,
            "ctf/df_angle_rad": 0.86163914,
            "alignments2D/shift[0]": 0.0,
            "alignments2D/shift[1]": 12.0,
            "alignments2D/pose": 5.8985004,
            "alignments2D/class": 4,
        },
    ),
    (
        "cryodrgn_empiar_10076_7.cs",
        7,
        34,
        {
            "blob/path": "empiar_10076_7.mrc",
            "blob/idx": 0,
            "blob/psize_A": 1.3099979,
            "ctf/exp_group_id": 23,
            "ctf/accel_kv": 300.0,
            "ctf/cs_mm": 2.7,
            "ctf/amp_contrast": 0.07,
            "ctf/df1_A": 15301.1,
            "ctf/df2_A": 14916.4,
            "ctf/df_angle_rad": 0.092153385,
        },
    ),
    ("cryosparc_tools_4k_dataset_empty.cs", 0, 120, {}),
]


def corpus(shared_data: Path, name: str) -> Path:
    return shared_data / "formats" / "cryosparc_cs" / name


@pytest.mark.parametrize(("name", "rows", "n_columns", "first"), CASES, ids=[case[0] for case in CASES])
def test_real_file_values(
    shared_data: Path, name: str, rows: int, n_columns: int, first: dict[str, Any]
) -> None:
    document = cryosparc_cs.read(corpus(shared_data, name))
    assert document.format_iri == cryosparc_cs.FORMAT_IRI
    assert list(document.blocks) == [cryosparc_cs.BLOCK]
    block = document.block(cryosparc_cs.BLOCK)
    assert block.n_rows == rows
    assert len(block.columns) == n_columns
    assert block.lines is None
    for label, expected in first.items():
        value = block.columns[label][0]
        if isinstance(expected, float):
            assert math.isclose(value, expected, rel_tol=1e-6), label
        else:
            assert value == expected, label


def test_types_follow_the_contract(shared_data: Path) -> None:
    block = cryosparc_cs.read(corpus(shared_data, CASES[0][0])).block(cryosparc_cs.BLOCK)
    assert block.columns["uid"].dtype == np.uint64  # does not fit int64: 15494748553812943456
    assert block.columns["blob/idx"].dtype == np.int64
    assert block.columns["ctf/df1_A"].dtype == np.float64
    assert block.columns["blob/path"].dtype.kind == "U"
    assert list(block.columns["blob/idx"][-1:]) == [124]


def test_empty_file_keeps_the_full_schema(shared_data: Path) -> None:
    block = cryosparc_cs.read(corpus(shared_data, "cryosparc_tools_4k_dataset_empty.cs")).block("particles")
    for label in ("alignments_class_2/pose[2]", "alignments2D/pose", "location/micrograph_shape[1]", "uid"):
        assert label in block.columns
        assert len(block.columns[label]) == 0


def test_pair_with_relion_star(shared_data: Path) -> None:
    # relion_star/cryodrgn_empiar_10076_7.star: rlnDefocusU/V of the 7 particles, rlnDefocusAngle 5.28 deg,
    # rlnDetectorPixelSize 5 um at rlnMagnification 38168.
    block = cryosparc_cs.read(corpus(shared_data, "cryodrgn_empiar_10076_7.cs")).block("particles")
    star_u = [15301.1, 15303.0, 15150.7, 15181.9, 15366.8, 15305.0, 15177.4]
    star_v = [14916.4, 14918.4, 14766.0, 14797.3, 14982.2, 14920.3, 14792.7]
    assert_close(block.columns["ctf/df1_A"], star_u, rtol=1e-6)
    assert_close(block.columns["ctf/df2_A"], star_v, rtol=1e-6)
    assert_close(block.columns["ctf/df_angle_rad"], math.radians(5.28), rtol=1e-6)
    assert_close(block.columns["blob/psize_A"], 1e4 * 5 / 38168, rtol=1e-6)


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_round_trip_is_byte_identical(shared_data: Path, tmp_path: Path, name: str) -> None:
    path = corpus(shared_data, name)
    document = cryosparc_cs.read(path)
    assert cryosparc_cs.to_bytes(document) == path.read_bytes()
    target = tmp_path / name
    cryosparc_cs.write(document, target)
    assert target.read_bytes() == path.read_bytes()
    again = cryosparc_cs.read(target)
    for label, values in document.block("particles").columns.items():
        np.testing.assert_array_equal(again.block("particles").columns[label], values)


def test_changed_values_keep_the_original_dtype(shared_data: Path) -> None:
    path = corpus(shared_data, "cryodrgn_empiar_10076_7.cs")
    document = cryosparc_cs.read(path)
    block = document.block("particles")
    block.columns["ctf/df1_A"] = np.asarray(block.columns["ctf/df1_A"], dtype=np.float64) + 100.0
    block.columns["blob/path"] = np.array(["a/much/longer/path/than/before" * 3] * 7)
    array = np.load(io.BytesIO(cryosparc_cs.to_bytes(document)), allow_pickle=False)
    original = np.load(path, allow_pickle=False)
    assert array.dtype.names == original.dtype.names
    for name in original.dtype.names or ():
        if name != "blob/path":
            assert array.dtype[name] == original.dtype[name], name
    assert array.dtype["blob/path"] == np.dtype("S90")  # widened from |S63, never truncated
    assert_close(array["ctf/df1_A"], original["ctf/df1_A"] + 100.0, rtol=1e-6)


def test_new_document_gets_cryosparc_dtypes() -> None:
    columns = {
        "uid": np.array([3, 2**40], dtype=np.int64),
        "blob/path": np.array(["J1/imported/a.mrcs", "J1/imported/bb.mrcs"]),
        "blob/idx": np.array([0, 1], dtype=np.int64),
        "alignments3D/pose[0]": np.array([0.5, -0.25]),
        "alignments3D/pose[1]": np.array([1.0, 2.0]),
        "alignments3D/pose[2]": np.array([-3.0, 0.125]),
        "ctf/df1_A": np.array([15000.5, 20000.25]),
    }
    document = RawDocument(cryosparc_cs.FORMAT_IRI, {"particles": RawBlock("particles", columns)})
    data = cryosparc_cs.to_bytes(document)
    array = np.load(io.BytesIO(data), allow_pickle=False)
    assert array.dtype == np.dtype(
        [
            ("uid", "<u8"),
            ("blob/path", "S20"),
            ("blob/idx", "<u4"),
            ("alignments3D/pose", "<f4", (3,)),
            ("ctf/df1_A", "<f4"),
        ]
    )
    assert list(array["uid"]) == [3, 2**40]
    assert list(array["blob/path"]) == [b"J1/imported/a.mrcs", b"J1/imported/bb.mrcs"]
    np.testing.assert_array_equal(array["alignments3D/pose"][1], [-0.25, 2.0, 0.125])
    # The header is NumPy's own current layout.
    expected = io.BytesIO()
    np.lib.format.write_array(expected, array)
    assert data == expected.getvalue()
    again = cryosparc_cs.parse(data)
    np.testing.assert_array_equal(again.block("particles").columns["alignments3D/pose[2]"], [-3.0, 0.125])


def test_million_rows_round_trip() -> None:
    columns: dict[str, Column] = {
        "uid": np.arange(1_000_000, dtype=np.uint64),
        "alignments3D/shift[0]": np.linspace(-5, 5, 1_000_000),
        "alignments3D/shift[1]": np.linspace(5, -5, 1_000_000),
    }
    document = RawDocument(cryosparc_cs.FORMAT_IRI, {"particles": RawBlock("particles", columns)})
    data = cryosparc_cs.to_bytes(document)
    again = cryosparc_cs.parse(data)
    assert again.block("particles").n_rows == 1_000_000
    assert cryosparc_cs.to_bytes(again) == data


def _npy(array: np.ndarray[Any, Any], allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def test_truncated_file_names_file_and_row(shared_data: Path) -> None:
    data = corpus(shared_data, "cryodrgn_empiar_10076_7.cs").read_bytes()
    with pytest.raises(
        ParseError, match=r"cut\.cs: truncated: the header announces 7 rows .* row 4 is incomplete"
    ):
        cryosparc_cs.parse(data[: 704 + 3 * 208 + 100], source="cut.cs")
    with pytest.raises(ParseError, match=r"cut\.cs: byte 0: the \.npy header is damaged or truncated"):
        cryosparc_cs.parse(data[:200], source="cut.cs")


def test_object_arrays_are_refused_without_unpickling() -> None:
    array = np.array([(1, "a.mrc")], dtype=[("uid", "<u8"), ("blob/path", "O")])
    with pytest.raises(ParseError, match=r"obj\.cs: .*pickle, which is refused"):
        cryosparc_cs.parse(_npy(array, allow_pickle=True), source="obj.cs")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_npy(np.zeros(3)), r"not a structured \(named-field\) array"),
        (
            _npy(np.zeros((2, 2), dtype=[("uid", "<u8")])),
            r"a \.cs dataset is 1-D, this array has shape \(2, 2\)",
        ),
        (b"uid blob/path\n1 a.mrc\n", r"not a NumPy \.npy file"),
        (_npy(np.zeros(2, dtype=[("uid", "<u8")])) + b"\0" * 8, r"8 bytes after the last of the 2 rows"),
    ],
    ids=["plain-array", "two-dimensional", "text", "trailing-bytes"],
)
def test_not_a_dataset(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=rf"bad\.cs: .*{message}"):
        cryosparc_cs.parse(data, source="bad.cs")


def test_text_is_refused_as_input() -> None:
    with pytest.raises(ParseError, match="binary"):
        cryosparc_cs.parse("\x93NUMPY", source="text.cs")


def test_writer_errors_name_the_column(shared_data: Path) -> None:
    document = cryosparc_cs.read(corpus(shared_data, "cryodrgn_empiar_10076_7.cs"))
    block = document.block("particles")
    block.columns["ctf/df1_A"] = np.array(["abc"] * 7)
    with pytest.raises(
        ConversionError, match=r"column 'ctf/df1_A': text values cannot be stored in a float32"
    ):
        cryosparc_cs.to_bytes(document)
    document = cryosparc_cs.read(corpus(shared_data, "cryodrgn_empiar_10076_7.cs"))
    del document.block("particles").columns["ctf/tetra_A[2]"]
    with pytest.raises(ConversionError, match=r"field 'ctf/tetra_A': column 'ctf/tetra_A\[2\]' is missing"):
        cryosparc_cs.to_bytes(document)
    document = cryosparc_cs.read(corpus(shared_data, "cryodrgn_empiar_10076_7.cs"))
    document.block("particles").columns["blob/idx"] = np.full(7, -1, dtype=np.int64)
    with pytest.raises(ConversionError, match=r"column 'blob/idx': values -1..-1 do not fit a uint32 field"):
        cryosparc_cs.to_bytes(document)
