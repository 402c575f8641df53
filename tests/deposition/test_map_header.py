"""Map geometry and em_map rows: real EMDB headers read by a second library, known statistics, the
dictionary's enumerations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest
from gemmi import cif

from scipion_kg.deposition.map_header import (
    DATA_TYPES,
    MAP_TYPES,
    MapGeometry,
    em_map_row,
    map_geometry,
    map_statistics,
    same_frame,
)
from scipion_kg.errors import DepositionError

# (file, size in bytes, MAPC/MAPR/MAPS, space group) as the corpus README states them.
REAL_MAPS = [
    ("mrcfile_EMD-3001.map", 315084, (3, 1, 2), 4),
    ("mrcfile_EMD-3197.map", 33024, (1, 2, 3), 1),
]


@pytest.fixture
def em_map_dictionary(shared_data: Path) -> dict[str, tuple[str, list[str]]]:
    """_em_map item -> (mandatory code, enumeration) from the shared PDBx dictionary (read in ~0.05 s)."""
    path = shared_data / "emdb" / "dictionary" / "mmcif_pdbx_v50_v5.362.dic.gz"
    block = cif.read(str(path)).sole_block()
    items: dict[str, tuple[str, list[str]]] = {}
    for item in block:
        frame = item.frame
        if frame is not None and frame.name.startswith("_em_map."):
            enumeration = [cif.as_string(v) for v in frame.find_values("_item_enumeration.value")]
            items[frame.name.split(".", 1)[1]] = (frame.find_value("_item.mandatory_code") or "", enumeration)
    return items


@pytest.mark.parametrize(("name", "size_bytes", "axes", "space_group"), REAL_MAPS)
def test_em_map_row_matches_gemmi_and_the_readme(
    shared_data: Path, name: str, size_bytes: int, axes: tuple[int, int, int], space_group: int
) -> None:
    path = shared_data / "formats" / "mrc" / name
    row = em_map_row(path, "primary map", file_name="emd_0000.map", contour_level=0.05)
    ccp4 = gemmi.read_ccp4_map(str(path))

    assert (row["dimensions_col"], row["dimensions_row"], row["dimensions_sec"]) == tuple(
        ccp4.header_i32(word) for word in (1, 2, 3)
    )
    assert (row["origin_col"], row["origin_row"], row["origin_sec"]) == tuple(
        ccp4.header_i32(word) for word in (5, 6, 7)
    )
    sampling = [ccp4.header_i32(word) for word in (8, 9, 10)]
    assert [row["spacing_x"], row["spacing_y"], row["spacing_z"]] == sampling
    cell = [ccp4.header_float(word) for word in range(11, 17)]
    written = [row[f"cell_{name}"] for name in ("a", "b", "c", "alpha", "beta", "gamma")]
    assert written == pytest.approx(cell, rel=1e-6)
    pixel = [row["pixel_spacing_x"], row["pixel_spacing_y"], row["pixel_spacing_z"]]
    assert pixel == pytest.approx([c / m for c, m in zip(cell[:3], sampling, strict=True)], rel=1e-6)
    letters = {1: "X", 2: "Y", 3: "Z"}
    assert tuple(ccp4.header_i32(word) for word in (17, 18, 19)) == axes
    assert (row["axis_order_fast"], row["axis_order_medium"], row["axis_order_slow"]) == tuple(
        letters[a] for a in axes
    )
    assert row["symmetry_space_group"] == space_group == ccp4.header_i32(23)
    assert row["size_kb"] == size_bytes // 1000 == path.stat().st_size // 1000

    data = np.asarray(ccp4.grid.array, dtype=np.float64)
    assert row["statistics_minimum"] == pytest.approx(data.min(), rel=1e-6)
    assert row["statistics_maximum"] == pytest.approx(data.max(), rel=1e-6)
    assert row["statistics_average"] == pytest.approx(data.mean(), rel=1e-5)
    assert row["statistics_std"] == pytest.approx(data.std(), rel=1e-5)
    # The header's own RMS (word 55) is the population standard deviation EMDB reports.
    assert row["statistics_std"] == pytest.approx(ccp4.header_float(55), rel=1e-5)

    assert row["type"] == "primary map"
    assert row["format"] == "CCP4"
    assert row["partition"] == 1
    assert row["endian_type"] == "little"
    assert row["data_type"] == "Image stored as floating point number (4 bytes)"
    assert row["file"] == "emd_0000.map"
    assert (row["contour_level"], row["contour_level_source"]) == (0.05, "author")


def test_emd_3001_geometry_keeps_the_permuted_axes(shared_data: Path) -> None:
    path = shared_data / "formats" / "mrc" / "mrcfile_EMD-3001.map"
    geometry = map_geometry(path)
    ccp4 = gemmi.read_ccp4_map(str(path))
    assert geometry.shape == (73, 43, 25) == tuple(ccp4.header_i32(w) for w in (1, 2, 3))
    assert geometry.nstart == tuple(ccp4.header_i32(w) for w in (5, 6, 7))
    assert geometry.nstart != (0, 0, 0)
    assert geometry.axis_order == (3, 1, 2)
    assert geometry.voxel_size == pytest.approx(
        [ccp4.header_float(11 + i) / ccp4.header_i32(8 + i) for i in range(3)], rel=1e-6
    )
    assert geometry.mode == 2


def test_em_map_row_has_every_mandatory_item(
    shared_data: Path, em_map_dictionary: dict[str, tuple[str, list[str]]]
) -> None:
    row = em_map_row(shared_data / "formats" / "mrc" / "mrcfile_EMD-3197.map", "half map", file_name="h.map")
    mandatory = {item for item, (code, _) in em_map_dictionary.items() if code == "yes"}
    assert mandatory - set(row) == {"id", "entry_id"}  # keys, set by whoever adds the row
    assert set(row) <= set(em_map_dictionary)
    for item, value in row.items():
        allowed = em_map_dictionary[item][1]
        if allowed:
            assert value in allowed, item


@pytest.mark.parametrize(
    ("constant", "item"),
    [(MAP_TYPES, "type"), (tuple(DATA_TYPES.values()), "data_type")],
)
def test_enumerations_are_the_dictionary_s(
    em_map_dictionary: dict[str, tuple[str, list[str]]], constant: tuple[str, ...], item: str
) -> None:
    assert sorted(constant) == sorted(em_map_dictionary[item][1])


def _write_map(
    path: Path,
    data: np.ndarray,
    voxel: float = 1.0,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
        mrc.header.origin = origin
    return path


def test_statistics_of_a_ramp_are_the_analytic_ones(tmp_path: Path) -> None:
    # 40 sections: more than one chunk of sections is combined.
    count = 40 * 6 * 5
    ramp = np.arange(count, dtype=np.float32).reshape(40, 6, 5)
    statistics = map_statistics(_write_map(tmp_path / "ramp.mrc", ramp))
    assert statistics.minimum == 0
    assert statistics.maximum == count - 1
    assert statistics.average == pytest.approx((count - 1) / 2, rel=1e-12)
    assert statistics.std == pytest.approx(np.sqrt((count**2 - 1) / 12), rel=1e-12)


@pytest.mark.parametrize(
    ("dtype", "data_type", "endian"),
    [
        ("<f4", "Image stored as floating point number (4 bytes)", "little"),
        (">f4", "Image stored as floating point number (4 bytes)", "big"),
        ("<i2", "Image stored as signed integer (2 bytes)", "little"),
        ("i1", "Image stored as signed byte", "little"),
    ],
)
def test_data_type_and_endian_follow_the_file(
    tmp_path: Path, dtype: str, data_type: str, endian: str
) -> None:
    path = _write_map(tmp_path / "m.mrc", np.ones((4, 4, 4), dtype=dtype))
    row = em_map_row(path, "mask", file_name="m.mrc")
    assert (row["data_type"], row["endian_type"]) == (data_type, endian)
    assert "contour_level" not in row


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _write_map(p, np.ones((4, 4, 4), dtype=np.uint16)), ["mode 6", "mode 2"]),
        (lambda p: p.write_text("not a map"), ["not a readable MRC"]),
    ],
)
def test_unusable_maps_are_refused_naming_the_file(
    tmp_path: Path, make: Callable[[Path], object], words: list[str]
) -> None:
    path = tmp_path / "bad.mrc"
    make(path)
    with pytest.raises(DepositionError) as raised:
        em_map_row(path, "primary map", file_name="bad.mrc")
    for word in [str(path), *words]:
        assert word in str(raised.value)


def test_unknown_map_type_is_refused(tmp_path: Path) -> None:
    path = _write_map(tmp_path / "m.mrc", np.ones((4, 4, 4), dtype=np.float32))
    with pytest.raises(DepositionError, match="primary map"):
        em_map_row(path, "sharpened map", file_name="m.mrc")


def test_same_frame_names_each_difference(tmp_path: Path) -> None:
    first = map_geometry(_write_map(tmp_path / "a.mrc", np.zeros((8, 8, 8), dtype=np.float32), 1.2))
    assert same_frame(first, first) == []
    moved = map_geometry(
        _write_map(tmp_path / "b.mrc", np.zeros((8, 8, 8), dtype=np.float32), 1.2, (5.0, 0.0, 0.0))
    )
    assert [d.split()[0] for d in same_frame(first, moved)] == ["origin"]
    other = MapGeometry((10, 8, 8), (1.3, 1.3, 1.3), (0.0, 0.0, 0.0), (1, 0, 0), (3, 1, 2), 2)
    differences = same_frame(first, other)
    assert [d.split()[0] for d in differences] == ["box", "voxel", "start", "axis"]
    assert "1.2 x 1.2 x 1.2 vs 1.3 x 1.3 x 1.3" in differences[1]
    within = MapGeometry(first.shape, (1.2004, 1.2, 1.2), first.origin, first.nstart, first.axis_order, 2)
    assert same_frame(first, within) == []
