"""FSC of half maps: a simulation with a known spectral signal-to-noise ratio, EMDB's FSC XML, errors."""

from __future__ import annotations

import math
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
import pytest

from scipion_kg.deposition.fsc import (
    FSCCurve,
    fsc_of_arrays,
    half_map_fsc,
    plot_fsc_png,
    read_fsc_xml,
    write_fsc_xml,
)
from scipion_kg.errors import DepositionError, ParseError

THRESHOLD = 0.143


def _shells(box: int) -> npt.NDArray[np.float64]:
    """Distance (in shells) of each voxel of an unshifted box x box x box DFT from the origin."""
    k = np.fft.fftfreq(box) * box
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    return np.asarray(np.rint(np.sqrt(kx**2 + ky**2 + kz**2)))


def _coloured(rng: np.random.Generator, amplitude: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """White Gaussian noise filtered to the spectral amplitude ``amplitude`` (power = amplitude²)."""
    white = rng.standard_normal(amplitude.shape)
    return np.asarray(np.fft.ifftn(np.fft.fftn(white) * amplitude).real)


def _snr(shell: npt.NDArray[np.float64], peak: float, decay: float) -> npt.NDArray[np.float64]:
    return np.asarray(peak * np.exp(-shell / decay))


@pytest.mark.parametrize(
    ("box", "pixel", "peak", "decay", "seed"),
    [(64, 1.0, 10.0, 5.0, 1), (96, 1.3, 30.0, 6.0, 2), (64, 0.8, 100.0, 3.0, 3)],
)
def test_resolution_of_simulated_half_maps_is_the_analytic_one(
    box: int, pixel: float, peak: float, decay: float, seed: int
) -> None:
    """Signal power S(k) and noise power N(k) = 1 per shell: the expected FSC is S / (S + N), with
    S / N = peak · exp(-k / decay), which crosses 0.143 at k* = decay · ln(peak (1 - 0.143) / 0.143)."""
    rng = np.random.default_rng(seed)
    shells = _shells(box)
    signal = _coloured(rng, np.sqrt(_snr(shells, peak, decay)))
    half1 = signal + _coloured(rng, np.ones(shells.shape))
    half2 = signal + _coloured(rng, np.ones(shells.shape))

    curve = fsc_of_arrays(half1, half2, pixel)

    crossing_shell = decay * math.log(peak * (1 - THRESHOLD) / THRESHOLD)
    assert 0.2 * box / 2 < crossing_shell < 0.8 * box / 2  # mid-range, as the simulation intends
    analytic_resolution = box * pixel / crossing_shell
    computed_shell = box * pixel / curve.resolution(THRESHOLD)
    assert abs(computed_shell - crossing_shell) <= 1.0, (curve.resolution(), analytic_resolution)

    # Shell by shell the curve follows S / (S + N), and shell k sits at k / (box · pixel).
    k = np.arange(box // 2 + 1, dtype=np.float64)
    assert curve.box == box and curve.pixel_size == pixel
    np.testing.assert_allclose(curve.spatial_frequency, k / (box * pixel))
    expected = _snr(k, peak, decay) / (1 + _snr(k, peak, decay))
    assert np.abs(curve.correlation[3:] - expected[3:]).max() < 0.12


def test_identical_maps_reach_nyquist() -> None:
    volume = np.random.default_rng(0).standard_normal((32, 32, 32))
    curve = fsc_of_arrays(volume, volume.copy(), 1.7)
    np.testing.assert_allclose(curve.correlation[1:], 1.0)
    assert curve.resolution() == pytest.approx(2 * 1.7)


def test_crossing_is_interpolated_between_bracketing_shells() -> None:
    curve = FSCCurve(np.array([0.0, 0.1, 0.2, 0.3]), np.array([1.0, 0.5, 0.1, 0.0]), 1.6, 6)
    # Between 0.1 (FSC 0.5) and 0.2 (FSC 0.1): 0.1 + 0.1 · (0.5 - 0.143) / (0.5 - 0.1) = 0.18925 1/Å.
    assert curve.resolution() == pytest.approx(1 / 0.18925)
    assert curve.resolution(0.5) == pytest.approx(1 / 0.1)


def test_curve_starting_below_the_threshold_is_refused() -> None:
    rng = np.random.default_rng(4)
    curve = fsc_of_arrays(rng.standard_normal((32,) * 3), rng.standard_normal((32,) * 3), 1.0)
    with pytest.raises(DepositionError, match=r"already below the 0\.143 threshold"):
        curve.resolution()


def _write_mrc(path: Path, data: npt.NDArray[np.float64], voxel: float) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data.astype(np.float32))
        mrc.voxel_size = voxel
    return path


def test_half_map_fsc_reads_box_and_pixel_size_from_the_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    signal = rng.standard_normal((48,) * 3)
    half1 = signal + 0.5 * rng.standard_normal(signal.shape)
    half2 = signal + 0.5 * rng.standard_normal(signal.shape)
    curve = half_map_fsc(
        _write_mrc(tmp_path / "h1.mrc", half1, 1.25), _write_mrc(tmp_path / "h2.mrc", half2, 1.25)
    )
    direct = fsc_of_arrays(half1.astype(np.float32), half2.astype(np.float32), 1.25)
    assert curve.box == 48
    assert curve.pixel_size == pytest.approx(1.25)
    np.testing.assert_allclose(curve.correlation, direct.correlation, atol=1e-6)
    # White signal and noise with S/N = 4 in every shell: FSC = 4 / 5 everywhere, so never below 0.143.
    assert curve.correlation[1:].mean() == pytest.approx(0.8, abs=0.02)
    assert curve.resolution() == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("shape2", "voxel2", "words"),
    [((40, 40, 40), 1.0, "box"), ((32, 32, 32), 1.1, "voxel size")],
)
def test_mismatched_half_maps_are_refused_naming_both(
    tmp_path: Path, shape2: tuple[int, int, int], voxel2: float, words: str
) -> None:
    first = _write_mrc(tmp_path / "half_a.mrc", np.zeros((32, 32, 32)), 1.0)
    second = _write_mrc(tmp_path / "half_b.mrc", np.zeros(shape2), voxel2)
    with pytest.raises(DepositionError) as raised:
        half_map_fsc(first, second)
    message = str(raised.value)
    assert str(first) in message and str(second) in message and words in message


def test_unreadable_half_map_is_refused_naming_both(tmp_path: Path) -> None:
    good = _write_mrc(tmp_path / "good.mrc", np.zeros((8, 8, 8)), 1.0)
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DepositionError) as raised:
        half_map_fsc(good, bad)
    assert str(bad) in str(raised.value) and str(good) in str(raised.value)


def test_fsc_xml_round_trip_in_emdb_layout(tmp_path: Path) -> None:
    box, pixel = 40, 1.1
    k = np.arange(box // 2 + 1)
    curve = FSCCurve(k / (box * pixel), np.cos(np.linspace(0, 2.0, len(k))), pixel, box)
    path = tmp_path / "fsc.xml"
    write_fsc_xml(curve, path, "half-map FSC")

    root = ElementTree.parse(path).getroot()
    assert (root.tag, root.attrib) == (
        "fsc",
        {"title": "half-map FSC", "xaxis": "Resolution (A-1)", "yaxis": "Correlation Coefficient"},
    )
    assert [[child.tag for child in c] for c in root] == [["x", "y"]] * len(k)
    assert float(root[5].findtext("x") or "nan") == pytest.approx(5 / (box * pixel), rel=1e-7)

    back = read_fsc_xml(path)
    np.testing.assert_allclose(back.spatial_frequency, curve.spatial_frequency, rtol=1e-7)
    np.testing.assert_allclose(back.correlation, curve.correlation, atol=1e-6)
    assert back.box == box
    assert back.pixel_size == pytest.approx(pixel)
    assert back.resolution() == pytest.approx(curve.resolution(), rel=1e-5)
    write_fsc_xml(curve, tmp_path / "again.xml", "half-map FSC")
    assert (tmp_path / "again.xml").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<fsc><coordinate><x>0.1</x>", "not well-formed"),
        ("<curve/>", "<curve>"),
        ("<fsc><coordinate><x>0</x><y>1</y></coordinate></fsc>", "2 or more"),
        (
            "<fsc><coordinate><x>0</x><y>1</y></coordinate><coordinate><x>a</x><y>1</y></coordinate></fsc>",
            "<coordinate> number 2 has no numeric <x>",
        ),
        (
            "<fsc><coordinate><x>0.2</x><y>1</y></coordinate><coordinate><x>0.1</x><y>1</y></coordinate></fsc>",
            "increase",
        ),
        (
            '<!DOCTYPE fsc [<!ENTITY e "x">]><fsc>&e;</fsc>',
            "not well-formed",
        ),
    ],
)
def test_bad_fsc_xml_is_a_parse_error_naming_file_and_element(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad_fsc.xml"
    path.write_text(text)
    with pytest.raises(ParseError) as raised:
        read_fsc_xml(path)
    assert str(path) in str(raised.value) and words in str(raised.value)


def test_plot_is_a_png(tmp_path: Path) -> None:
    k = np.arange(33)
    curve = FSCCurve(k / 64.0, 1 / (1 + np.exp((k - 20) / 2.0)), 1.0, 64)
    path = tmp_path / "fsc.png"
    plot_fsc_png(curve, path, "FSC")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (600, 400)
