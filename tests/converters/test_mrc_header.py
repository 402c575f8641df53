"""MRC header reading on the three corpus maps, checked against the raw header bytes and mrcfile."""

from __future__ import annotations

import gzip
import itertools
import struct
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
from scipion_kg.converters import mrc_header

from scipion_kg.errors import ParseError

# MRC2014 main header: words 1-56, then ten 80-character labels.
HEADER = struct.Struct("<10i6f3i3f2i8x4si84x3f4s4sfi800s")
WORDS = [
    "NX", "NY", "NZ", "MODE", "NXSTART", "NYSTART", "NZSTART", "MX", "MY", "MZ",
    "CELLA_X", "CELLA_Y", "CELLA_Z", "CELLB_ALPHA", "CELLB_BETA", "CELLB_GAMMA",
    "MAPC", "MAPR", "MAPS", "DMIN", "DMAX", "DMEAN", "ISPG", "NSYMBT", "EXTTYP", "NVERSION",
    "ORIGIN_X", "ORIGIN_Y", "ORIGIN_Z", "MAP", "MACHST", "RMS", "NLABL", "LABELS",
]  # fmt: skip

# Numbers from docs/conventions.md §3 and the files' headers.
# fmt: off
MAPS: dict[str, dict[str, Any]] = {
    "mrcfile_EMD-3001.map": {
        "header": {"NX": 73, "NY": 43, "NZ": 25, "MAPC": 3, "MAPR": 1, "MAPS": 2, "NXSTART": 0,
                   "NYSTART": -21, "NZSTART": -12, "MX": 40, "MY": 12, "MZ": 72, "ISPG": 4, "NSYMBT": 160,
                   "NVERSION": 0,
                   "CELLA_X": 17.93, "CELLA_Y": 4.71, "CELLA_Z": 33.03, "CELLB_BETA": 94.326, "NLABL": 1,
                   "LABEL_1": "::::EMDATABANK.org::::EMD-3001::::", "MAP": "MAP ", "MACHST": "44410000"},
        "axis_order": "ZXY", "orthogonal": False, "kind": "volume", "items": 1,
        "voxel": (0.44825, 0.3925, 0.45875), "start_xyz": (-21, -12, 0), "first": (-9.41325, -4.71, 0.0),
    },
    "mrcfile_EMD-3197.map": {
        "header": {"NX": 20, "NY": 20, "NZ": 20, "NXSTART": -2, "NYSTART": 0, "NZSTART": 0, "MX": 20,
                   "MAPC": 1, "MAPR": 2, "MAPS": 3, "ISPG": 1, "NSYMBT": 0, "CELLA_X": 228.0, "NLABL": 1},
        "axis_order": "XYZ", "orthogonal": True, "kind": "volume", "items": 1,
        "voxel": (11.4, 11.4, 11.4), "start_xyz": (-2, 0, 0), "first": (-22.8, 0.0, 0.0),
    },
    "xmipp_smallStack.mrcs": {
        "header": {"NX": 64, "NY": 64, "NZ": 4, "MX": 64, "MY": 64, "MZ": 1, "ISPG": 0, "CELLA_Z": 1.0,
                   "NLABL": 10, "LABEL_10": "", "DMIN": 0.0, "DMAX": 0.0, "RMS": 0.0},
        "axis_order": "XYZ", "orthogonal": True, "kind": "image_stack", "items": 4,
        "voxel": (1.0, 1.0, 1.0), "start_xyz": (0, 0, 0), "first": (0.0, 0.0, 0.0),
    },
}
# fmt: on


def _path(shared_data: Path, name: str) -> Path:
    return shared_data / "formats" / "mrc" / name


@pytest.mark.parametrize("name", list(MAPS))
def test_header_values(shared_data: Path, name: str) -> None:
    expected = MAPS[name]
    document = mrc_header.read(_path(shared_data, name))
    assert document.format_iri == mrc_header.FORMAT_IRI
    header = document.block("header")
    assert not header.is_loop and header.n_rows == 1
    for label, value in expected["header"].items():
        assert header.columns[label][0] == value, label
    grid = document.block("grid")
    assert grid.columns["axis_order"][0] == expected["axis_order"]
    assert grid.columns["is_orthogonal"][0] == int(expected["orthogonal"])
    assert grid.columns["kind"][0] == expected["kind"]
    assert grid.columns["n_items"][0] == expected["items"]
    triples = zip(expected["voxel"], expected["start_xyz"], expected["first"], strict=True)
    for axis, (voxel, start, first) in zip("xyz", triples, strict=True):
        assert grid.columns[f"voxel_size_{axis}"][0] == pytest.approx(voxel, rel=1e-12)
        assert grid.columns[f"start_{axis}"][0] == start
        assert grid.columns[f"first_voxel_{axis}"][0] == pytest.approx(first, abs=1e-9)
    assert document.version is None  # NVERSION 0 in all three (pre-MRC2014 writers)


@pytest.mark.parametrize("name", list(MAPS))
def test_header_matches_raw_bytes(shared_data: Path, name: str) -> None:
    path = _path(shared_data, name)
    raw = dict(zip(WORDS, HEADER.unpack(path.read_bytes()[: HEADER.size]), strict=True))
    header = mrc_header.read(path).block("header").columns
    for label in WORDS[:-1]:
        value = raw[label]
        if isinstance(value, bytes):
            if label == "MACHST":
                assert header[label][0] == value.hex()
            else:
                assert header[label][0] == value.decode("latin-1").rstrip("\x00"), label
        elif isinstance(value, float):
            assert np.float32(header[label][0]) == np.float32(value), label
        else:
            assert header[label][0] == value, label
    labels = [raw["LABELS"][i * 80 : (i + 1) * 80].decode("latin-1").rstrip(" \x00") for i in range(10)]
    for index in range(raw["NLABL"]):
        assert header[f"LABEL_{index + 1}"][0] == labels[index]


@pytest.mark.parametrize("name", list(MAPS))
def test_grid_agrees_with_mrcfile(shared_data: Path, name: str) -> None:
    path = _path(shared_data, name)
    grid = mrc_header.voxel_grid(path)
    with mrcfile.open(path) as mrc:  # mrcfile's is_* methods look at the data's shape
        size = mrc.voxel_size
        assert np.allclose(grid.voxel_size, (size.x, size.y, size.z), rtol=1e-6)
        assert (grid.kind == "image_stack") == mrc.is_image_stack()
        assert (grid.kind == "volume") == mrc.is_volume()
        assert (grid.kind == "volume_stack") == mrc.is_volume_stack()
    assert grid.is_orthogonal == MAPS[name]["orthogonal"]


def test_emd_3001_permuted_axes_on_the_data(shared_data: Path) -> None:
    path = _path(shared_data, "mrcfile_EMD-3001.map")
    grid = mrc_header.voxel_grid(path)
    assert grid.zyx_axes() == (2, 0, 1)
    with mrcfile.open(path) as mrc:
        data = np.asarray(mrc.data)
    assert data.shape == (25, 43, 73)  # sections (Y), rows (X), columns (Z)
    zyx = grid.to_zyx(data)
    assert zyx.shape == (73, 25, 43)
    # data[section=y][row=x][column=z] is the voxel at (x, y, z).
    for x, y, z in [(0, 0, 0), (5, 7, 11), (42, 24, 72), (17, 3, 40)]:
        assert zyx[z, y, x] == data[y, x, z]


@pytest.mark.parametrize("axis_map", list(itertools.permutations((1, 2, 3))))
def test_axis_permutation_sends_every_storage_order_to_zyx(axis_map: tuple[int, int, int]) -> None:
    mapc, mapr, maps = axis_map
    sizes = {1: 2, 2: 3, 3: 4}  # points along X, Y, Z
    # Fill data[s][r][c] with the code 100x + 10y + z of the crystallographic point it holds.
    data = np.zeros((sizes[maps], sizes[mapr], sizes[mapc]), dtype=int)
    for s, r, c in itertools.product(*(range(n) for n in data.shape)):
        point = {maps: s, mapr: r, mapc: c}
        data[s, r, c] = 100 * point[1] + 10 * point[2] + point[3]
    zyx = np.transpose(data, mrc_header.axis_permutation(mapc, mapr, maps))
    assert zyx.shape == (4, 3, 2)
    for z, y, x in itertools.product(range(4), range(3), range(2)):
        assert zyx[z, y, x] == 100 * x + 10 * y + z
    with pytest.raises(ValueError, match="not a permutation"):
        mrc_header.axis_permutation(1, 1, 3)


def test_parse_from_bytes_and_gzip(shared_data: Path, tmp_path: Path) -> None:
    path = _path(shared_data, "mrcfile_EMD-3197.map")
    data = path.read_bytes()
    from_file = mrc_header.read(path).block("header").columns
    for document in (mrc_header.parse(data, path.name), mrc_header.parse(gzip.compress(data), "x.map.gz")):
        assert {k: v[0] for k, v in document.block("header").columns.items()} == {
            k: v[0] for k, v in from_file.items()
        }
    zipped = tmp_path / "EMD-3197.map.gz"
    zipped.write_bytes(gzip.compress(data))
    assert mrc_header.voxel_grid(zipped).start == (-2, 0, 0)


def _corrupt(tmp_path: Path, source: Path, offset: int, value: bytes) -> Path:
    data = bytearray(source.read_bytes())
    data[offset : offset + len(value)] = value
    target = tmp_path / "corrupt.map"
    target.write_bytes(bytes(data))
    return target


def test_truncated_files_name_the_file(shared_data: Path, tmp_path: Path) -> None:
    data = _path(shared_data, "mrcfile_EMD-3197.map").read_bytes()
    cut = tmp_path / "cut.map"
    cut.write_bytes(data[:-100])
    with pytest.raises(ParseError, match=rf"{cut}: truncated: the header describes 33024 bytes .* has 32924"):
        mrc_header.read(cut)
    with pytest.warns(RuntimeWarning, match="truncated"):
        assert mrc_header.read(cut, permissive=True).block("header").columns["NX"][0] == 20
    stub = tmp_path / "stub.map"
    stub.write_bytes(data[:500])
    with pytest.raises(ParseError, match=rf"{stub}: not a readable MRC header"):
        mrc_header.read(stub)
    with pytest.raises(ParseError, match=r"x\.map: not a readable MRC header"):
        mrc_header.parse(data[:1000], "x.map")


def test_corrupt_headers(shared_data: Path, tmp_path: Path) -> None:
    source = _path(shared_data, "mrcfile_EMD-3197.map")
    bad_id = _corrupt(tmp_path, source, 208, b"XYZ ")
    with pytest.raises(ParseError, match=rf"{bad_id}: not a readable MRC header: Map ID string not found"):
        mrc_header.read(bad_id)
    with pytest.warns(RuntimeWarning, match="Map ID"):
        assert mrc_header.read(bad_id, permissive=True).block("header").columns["MAP"][0] == "XYZ "
    bad_axes = _corrupt(tmp_path, source, 64, struct.pack("<3i", 1, 1, 3))
    with pytest.raises(
        ParseError, match=r"corrupt\.map: header words 17-19 \(MAPC, MAPR, MAPS\): \(1, 1, 3\)"
    ):
        mrc_header.read(bad_axes)
    with pytest.warns(RuntimeWarning, match="MAPC"):
        assert mrc_header.read(bad_axes, permissive=True).block("grid").columns["axis_order"][0] == ""
    bad_mode = _corrupt(tmp_path, source, 12, struct.pack("<i", 7))
    with pytest.raises(ParseError, match=r"corrupt\.map: header word 4 \(MODE\): 7 is not an MRC mode"):
        mrc_header.read(bad_mode)
    with pytest.raises(ParseError, match="binary"):
        mrc_header.parse("MAP ", "text.map")
