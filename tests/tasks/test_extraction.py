"""Extraction against particles placed at known sub-pixel positions in simulated micrographs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.tasks.builtin.ctf import CTFParameters
from scipion_kg.tasks.builtin.extraction import extract_particles
from scipion_kg.tasks.builtin.fourier import (
    Projector,
    centered_fft2,
    centered_ifft2,
    fourier_shift_images,
    lowpass,
)
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

from .test_picking import PIXEL, blob_volume, place, relion_ctf

FloatArray = npt.NDArray[np.float64]
BOX = 64


def correlation(a: FloatArray, b: FloatArray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def particles(seed: int, n: int, box: int = BOX) -> FloatArray:
    rng = np.random.default_rng(seed)
    volume = blob_volume(rng, blob_sigma=6.0)
    matrices = Rotation.random(n, random_state=seed).as_matrix()
    return np.asarray(Projector(volume).project(matrices, size=box), dtype=np.float64)


def in_box(projection: FloatArray, origin_x: float, origin_y: float) -> FloatArray:
    """The true projection as the extracted box should show it: I(x) = P(x + o), i.e. P moved by -o."""
    return np.asarray(fourier_shift_images(projection, np.array([[-origin_x, -origin_y]]) / PIXEL))


def test_box_shows_the_true_projection_with_its_subpixel_origin() -> None:
    projections = particles(1, 4)
    x = np.array([100.4, 300.7, 150.2, 260.5001])
    y = np.array([120.6, 110.3, 290.45, 280.9])
    micrograph = -place(projections, x, y, 400)  # raw contrast: particles dark
    result = extract_particles(micrograph, x, y, BOX, pixel_size=PIXEL, normalise=False)
    assert result.kept.all() and result.stack.shape == (4, BOX, BOX) and result.stack.dtype == np.float32
    np.testing.assert_array_equal(result.coordinate_x, [100, 301, 150, 261])
    np.testing.assert_array_equal(result.coordinate_y, [121, 110, 290, 281])
    # centre = coordinate - origin / pixel, exactly the true position
    np.testing.assert_allclose(result.coordinate_x - result.origin_x_angstrom / PIXEL, x, atol=1e-9)
    np.testing.assert_allclose(result.coordinate_y - result.origin_y_angstrom / PIXEL, y, atol=1e-9)
    for index in range(4):
        ox, oy = result.origin_x_angstrom[index], result.origin_y_angstrom[index]
        right = correlation(result.stack[index], in_box(projections[index], ox, oy))
        wrong = correlation(result.stack[index], in_box(projections[index], -ox, -oy))
        assert right > 0.999
        assert right - wrong > 0.005  # a sign error in the origin moves the particle by up to 1 px


def test_invert_contrast_flips_the_sign() -> None:
    projections = particles(2, 1)
    micrograph = -place(projections, np.array([100.0]), np.array([100.0]), 200)
    white = extract_particles(micrograph, [100.0], [100.0], BOX, pixel_size=PIXEL, normalise=False)
    dark = extract_particles(
        micrograph, [100.0], [100.0], BOX, pixel_size=PIXEL, normalise=False, invert_contrast=False
    )
    np.testing.assert_allclose(white.stack, -dark.stack)
    assert correlation(white.stack[0], projections[0]) > 0.999
    assert correlation(dark.stack[0], projections[0]) < -0.999


def test_normalisation_uses_the_background_statistics() -> None:
    rng = np.random.default_rng(3)
    projections = particles(3, 3, box=96)  # bg radius 36 px = 101 Å, outside the 75 Å particle
    x, y = np.array([80.3, 230.0, 150.8]), np.array([90.0, 100.6, 230.2])
    size, sigma = 330, 0.7
    rows, cols = np.mgrid[:size, :size]
    ramp = 50.0 + 0.05 * cols - 0.03 * rows  # carbon gradient, removed by the plane fit
    micrograph = ramp - place(projections, x, y, size) + rng.normal(0.0, sigma, (size, size))
    result = extract_particles(micrograph, x, y, 96, pixel_size=PIXEL)
    grid = np.arange(96) - 96 // 2
    background = (grid[:, None] ** 2 + grid[None, :] ** 2) > (0.375 * 96) ** 2
    for index in range(3):
        image = result.stack[index].astype(np.float64)
        assert abs(image[background].mean()) < 1e-5 and abs(image[background].std() - 1.0) < 1e-5
        # The particle in units of the noise: a regression of the box on P / sigma has slope ~1.
        truth = (
            in_box(projections[index], result.origin_x_angstrom[index], result.origin_y_angstrom[index])
            / sigma
        )
        slope = np.polyfit(truth.ravel(), image.ravel(), 1)[0]
        assert slope == pytest.approx(1.0, abs=0.06)
    # Without the plane fit the gradient inflates the background spread, so the particle comes out weaker.
    flat = extract_particles(micrograph, x, y, 96, pixel_size=PIXEL, ramp=False)
    truth = in_box(projections[0], flat.origin_x_angstrom[0], flat.origin_y_angstrom[0]) / sigma
    assert np.polyfit(truth.ravel(), flat.stack[0].astype(np.float64).ravel(), 1)[0] < 0.8


def bandpass(image: FloatArray, high: float, low: float) -> FloatArray:
    """``image`` keeping resolutions between ``high`` and ``low`` Å."""
    return np.asarray(lowpass(image, high, PIXEL, edge=2) - lowpass(image, low, PIXEL, edge=2))


def test_phase_flip_restores_positive_contrast_transfer() -> None:
    # At 2.5 µm underfocus the CTF changes sign four times between 25 and 8 Å: in that band the raw particle
    # barely correlates with its projection, the phase-flipped one does (RELION convention, CTF > 0 at low k).
    projections = particles(4, 2, box=96)
    defocus = (25000.0, 24000.0, 40.0)
    x, y = np.array([120.2, 300.7]), np.array([150.4, 260.3])
    size = 420
    clean = place(projections, x, y, size)
    micrograph = -centered_ifft2(centered_fft2(clean) * relion_ctf(size, PIXEL, defocus))
    ctf = CTFParameters(defocus_u=defocus[0], defocus_v=defocus[1], defocus_angle=defocus[2])
    flipped = extract_particles(micrograph, x, y, 96, pixel_size=PIXEL, ctf=ctf, normalise=False)
    plain = extract_particles(micrograph, x, y, 96, pixel_size=PIXEL, normalise=False)
    for index in range(2):
        truth = in_box(projections[index], flipped.origin_x_angstrom[index], flipped.origin_y_angstrom[index])
        truth = bandpass(truth, 8.0, 25.0)
        with_flip = correlation(bandpass(flipped.stack[index].astype(np.float64), 8.0, 25.0), truth)
        without = correlation(bandpass(plain.stack[index].astype(np.float64), 8.0, 25.0), truth)
        print(
            f"particle {index}: 8-25 Å correlation with the true projection {with_flip:.2f} flipped, "
            f"{without:.2f} not"
        )
        assert with_flip > 0.6 and with_flip > without + 0.4


def test_rescaling_downsamples_in_fourier_space() -> None:
    projections = particles(5, 2)
    x, y = np.array([100.3, 180.6]), np.array([90.8, 170.1])
    micrograph = -place(projections, x, y, 280)
    result = extract_particles(micrograph, x, y, BOX, pixel_size=PIXEL, rescale_box=32, normalise=False)
    full = extract_particles(micrograph, x, y, BOX, pixel_size=PIXEL, normalise=False)
    assert result.stack.shape == (2, 32, 32)
    assert result.pixel_size == pytest.approx(2 * PIXEL) and result.micrograph_pixel_size == PIXEL
    for index in range(2):
        truth = in_box(projections[index], result.origin_x_angstrom[index], result.origin_y_angstrom[index])
        # Downsampled truth: the central 32 x 32 frequencies, values preserved (mean x 1).
        small = centered_ifft2(centered_fft2(truth)[16:48, 16:48]) / 4.0
        assert correlation(result.stack[index], small) > 0.999
        # Pixel values keep their magnitude: the mean pixel value is unchanged.
        assert result.stack[index].mean() == pytest.approx(full.stack[index].mean(), rel=1e-5)


def test_edge_particles_are_skipped_and_reported() -> None:
    micrograph = np.random.default_rng(6).normal(size=(200, 300))
    x = np.array([31.6, 32.0, 150.0, 268.5, 267.4, 100.0])
    y = np.array([100.0, 100.0, 31.4, 100.0, 100.0, 168.0])
    # A 64 px box at X spans X - 32 .. X + 31: X = 32 (31.6 rounds up) fits, 269 (268.5 rounds up) passes
    # column 299 of 300, 267 fits; Y = 31 (31.4 rounds down) starts at row -1; Y = 168 ends at row 199 of 200.
    result = extract_particles(micrograph, x, y, BOX, pixel_size=PIXEL)
    np.testing.assert_array_equal(result.kept, [True, True, False, False, True, True])
    np.testing.assert_array_equal(result.skipped, [2, 3])
    assert len(result.stack) == 4 and len(result.origin_x_angstrom) == 6
    # The kept images are the kept coordinates, in input order.
    full = extract_particles(micrograph, x[result.kept], y[result.kept], BOX, pixel_size=PIXEL)
    np.testing.assert_array_equal(result.stack, full.stack)
    np.testing.assert_array_equal(result.coordinate_x[result.kept], full.coordinate_x)
    with pytest.raises(
        ProcessingError, match=r"2 particle box\(es\) of 64 px reach outside micrograph m\.mrc"
    ):
        extract_particles(micrograph, x, y, BOX, pixel_size=PIXEL, on_edge="error", micrograph_name="m.mrc")


def test_box_larger_than_the_micrograph_is_refused() -> None:
    with pytest.raises(
        ProcessingError, match=r"box size 300 px is larger than micrograph mic_003\.mrc \(256 x 200 px\)"
    ):
        extract_particles(
            np.zeros((200, 256)), [100.0], [100.0], 300, pixel_size=1.0, micrograph_name="mic_003.mrc"
        )
    with pytest.raises(ProcessingError, match="bg_radius_px"):
        extract_particles(np.zeros((200, 256)), [100.0], [100.0], 64, pixel_size=1.0, bg_radius_px=60.0)
