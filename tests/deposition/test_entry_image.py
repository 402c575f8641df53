"""Entry image: where a known feature lands, axis order handled, decoded by an independent PNG reader."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
import pytest
from matplotlib import image as matplotlib_image

from scipion_kg.deposition.entry_image import encode_grey_png, write_entry_image
from scipion_kg.errors import DepositionError


def _write(path: Path, data: npt.NDArray[np.float32], axes: tuple[int, int, int] = (1, 2, 3)) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = axes
        mrc.voxel_size = 1.0
    return path


def _read_png(path: Path) -> npt.NDArray[np.float64]:
    return np.asarray(matplotlib_image.imread(path), dtype=np.float64)  # greys in 0..1


def _blob_map() -> npt.NDArray[np.float32]:
    """A 32³ map (z, y, x) with one bright block at high x, high y, and low z."""
    volume = np.zeros((32, 32, 32), dtype=np.float32)
    volume[2:6, 22:30, 20:28] = 1.0
    return volume


def test_projection_shows_the_feature_with_y_up(tmp_path: Path) -> None:
    out = tmp_path / "entry.png"
    write_entry_image(_write(tmp_path / "m.mrc", _blob_map()), out)
    pixels = _read_png(out)
    assert pixels.shape == (500, 500)
    rows, columns = np.nonzero(pixels > 0.5)
    # x 20..28 of 32 -> columns 312..437 of 500; y 22..30 (Y up) -> rows 500 - 468..343.
    assert columns.min() == pytest.approx(20 / 32 * 500, abs=8)
    assert columns.max() == pytest.approx(28 / 32 * 500, abs=8)
    assert rows.min() == pytest.approx(500 - 30 / 32 * 500, abs=8)
    assert rows.max() == pytest.approx(500 - 22 / 32 * 500, abs=8)


def test_central_slice_misses_a_feature_away_from_the_centre(tmp_path: Path) -> None:
    volume = _blob_map()
    volume[16, 2:6, 2:6] = 1.0  # a second block in the central section, at low x and y
    out = tmp_path / "slice.png"
    write_entry_image(_write(tmp_path / "m.mrc", volume), out, kind="slice", size=320)
    pixels = _read_png(out)
    assert pixels.shape == (320, 320)
    rows, columns = np.nonzero(pixels > 0.5)
    assert columns.max() < 6 / 32 * 320 + 6 and rows.min() > 320 - 6 / 32 * 320 - 6


def test_permuted_axis_order_gives_the_same_image(tmp_path: Path) -> None:
    volume = _blob_map()  # (z, y, x)
    # MAPC, MAPR, MAPS = 3, 1, 2: columns run along Z, rows along X, sections along Y -> array (y, x, z).
    permuted = np.ascontiguousarray(np.transpose(volume, (1, 2, 0)))
    write_entry_image(_write(tmp_path / "xyz.mrc", volume), tmp_path / "xyz.png")
    write_entry_image(_write(tmp_path / "zxy.mrc", permuted, (3, 1, 2)), tmp_path / "zxy.png")
    assert (tmp_path / "xyz.png").read_bytes() == (tmp_path / "zxy.png").read_bytes()


def test_real_map_with_permuted_axes_renders(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "emd_3001.png"
    write_entry_image(shared_data / "formats" / "mrc" / "mrcfile_EMD-3001.map", out)
    pixels = _read_png(out)
    assert pixels.shape == (500, 500)
    assert pixels.max() == 1.0 and pixels.min() == 0.0
    write_entry_image(shared_data / "formats" / "mrc" / "mrcfile_EMD-3001.map", tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == out.read_bytes()


def test_png_encoder_round_trips_through_another_decoder(tmp_path: Path) -> None:
    pixels = np.arange(12 * 7, dtype=np.uint8).reshape(7, 12) * 3
    path = tmp_path / "ramp.png"
    path.write_bytes(encode_grey_png(pixels))
    np.testing.assert_array_equal(np.rint(_read_png(path) * 255).astype(np.uint8), pixels)


@pytest.mark.parametrize(
    ("kwargs", "words"), [({"kind": "mip"}, "projection, slice"), ({"size": 4}, "16 to 4096")]
)
def test_bad_options_are_refused(tmp_path: Path, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(DepositionError, match=words):
        write_entry_image(_write(tmp_path / "m.mrc", _blob_map()), tmp_path / "x.png", **kwargs)  # type: ignore[arg-type]


def test_unreadable_map_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.map"
    bad.write_text("no map here")
    with pytest.raises(DepositionError, match=r"bad\.map"):
        write_entry_image(bad, tmp_path / "x.png")
