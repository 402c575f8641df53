"""Built-in CTF estimation against the ground truth of simulated micrographs, and CTFFIND4's conventions.

Every micrograph is made here, deterministically: amorphous ice (a Gaussian random field with a falling
spectrum and a weak bump at 1/3.7 Å) plus a dozen projected Gaussian blobs, filtered by the true CTF
(:func:`ctf_2d`, the shared primitive) with a B-factor envelope, then white shot noise of 4x the signal's
standard deviation, so the Thon rings are faint (pixel SNR 1/16; the fit's cross-correlation is ~0.1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters import ctffind
from scipion_kg.tasks.builtin.ctf import ctf_2d
from scipion_kg.tasks.builtin.ctf_estimation import CTFEstimate, estimate_ctf, plot_ctf_fit
from scipion_kg.tasks.builtin.fourier import centered_fft2, centered_ifft2, frequency_grid_2d

from scipion_kg.errors import ProcessingError

VOLTAGE, CS, Q = 300.0, 2.7, 0.1


def micrograph(
    seed: int,
    size: int,
    pixel: float,
    defocus_u: float,
    defocus_v: float,
    angle: float,
    *,
    phase: float = 0.0,
    noise: float = 4.0,
    amplitude_contrast: float = Q,
    bfactor: float = 60.0,
) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    kx, ky = frequency_grid_2d(size, pixel)
    k = np.hypot(kx, ky)
    ice_envelope = 1.0 / np.sqrt(1.0 + (k / 0.05) ** 2) + 0.3 * np.exp(-(((k - 0.27) / 0.04) ** 2))
    ice = centered_ifft2(centered_fft2(rng.standard_normal((size, size))) * ice_envelope)
    specimen = ice / ice.std()
    # Projected blobs: points (peak 1-3 ice sigmas) blurred by Gaussians of 20, 35 and 60 Å, four each.
    for radius in (20.0, 35.0, 60.0):
        points = np.zeros((size, size))
        where = rng.integers(0, size, (4, 2))
        points[where[:, 0], where[:, 1]] = rng.uniform(1.0, 3.0, 4) * 2.0 * math.pi * (radius / pixel) ** 2
        specimen += centered_ifft2(centered_fft2(points) * np.exp(-2.0 * (math.pi * radius * k) ** 2))
    transfer = ctf_2d(kx, ky, defocus_u, defocus_v, angle, VOLTAGE, CS, amplitude_contrast, phase, bfactor)
    image = centered_ifft2(centered_fft2(specimen) * transfer)
    image /= image.std()
    return (image + noise * rng.standard_normal((size, size)) + 50.0).astype(np.float32)


def angle_difference(a: float, b: float) -> float:
    """Distance between two astigmatism angles, which are defined modulo 180°."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


def check(estimate: CTFEstimate, defocus_u: float, defocus_v: float, angle: float) -> None:
    mean = 0.5 * (defocus_u + defocus_v)
    assert abs(estimate.mean_defocus - mean) < 0.02 * mean
    assert estimate.defocus_u >= estimate.defocus_v
    assert abs(estimate.astigmatism - (defocus_u - defocus_v)) < 300.0
    if defocus_u - defocus_v > 1000.0:
        assert angle_difference(estimate.defocus_angle, angle) < 5.0
    assert 0.0 <= estimate.defocus_angle < 180.0


# (seed, size, pixel, tile, U, V, angle): angles chosen so that a transposed (90 - θ) or mirrored (-θ)
# spectrum would miss by more than 5°; one angle near the 0/180 wrap; one case given V > U order-free.
CASES = [
    (0, 1024, 2.8, 512, 18000.0, 16000.0, 30.0),
    (1, 1024, 2.8, 512, 11000.0, 10500.0, 120.0),
    (2, 1024, 1.9, 512, 24500.0, 22500.0, 172.0),
    (3, 1024, 1.9, 512, 15000.0, 15000.0, 0.0),
    (4, 1024, 1.9, 512, 13000.0, 11700.0, 70.0),
    (5, 512, 2.8, 256, 21000.0, 19500.0, 140.0),
]


@pytest.mark.parametrize(("seed", "size", "pixel", "tile", "u", "v", "angle"), CASES)
def test_defocus_astigmatism_and_angle(
    seed: int, size: int, pixel: float, tile: int, u: float, v: float, angle: float
) -> None:
    image = micrograph(seed, size, pixel, u, v, angle, noise=4.0 if size == 1024 else 3.0)
    estimate = estimate_ctf(image, pixel, VOLTAGE, CS, Q, tile_size=tile)
    check(estimate, u, v, angle)
    assert estimate.phase_shift == 0.0
    assert estimate.cross_correlation > 0.04
    assert estimate.fit_resolution < 12.0


def test_low_noise_defocus_is_unbiased() -> None:
    # A wrong sign of the amplitude-contrast (or phase) term in χ shifts the fit by about +120 Å here,
    # and telling the fitter Q = 0.3 instead of 0.1 by -130 Å; the 2 % tolerance above would not see it.
    image = micrograph(20, 1024, 1.9, 10000.0, 10000.0, 0.0, noise=1.0)
    estimate = estimate_ctf(image, 1.9, VOLTAGE, CS, Q)
    assert abs(estimate.mean_defocus - 10000.0) < 40.0
    assert estimate.astigmatism < 50.0


def test_rectangular_micrograph_keeps_x_and_y() -> None:
    # 640 rows (y) x 1024 columns (x): a swap of the axes would turn 25° into 65°.
    image = micrograph(11, 1024, 2.2, 17000.0, 15000.0, 25.0)[:640]
    estimate = estimate_ctf(image, 2.2, VOLTAGE, CS, Q)
    check(estimate, 17000.0, 15000.0, 25.0)


@pytest.mark.parametrize("phase", [90.0, 60.0])
def test_phase_plate(phase: float) -> None:
    # 60° also checks the sign of the phase shift in χ: a wrong sign would return 120°.
    image = micrograph(7, 1024, 1.9, 16000.0, 14500.0, 50.0, phase=phase)
    estimate = estimate_ctf(image, 1.9, VOLTAGE, CS, Q, find_phase_shift=True)
    assert angle_difference(estimate.phase_shift, phase) < 15.0
    check(estimate, 16000.0, 14500.0, 50.0)


def test_background_model_survives_gradients_thickness_and_hot_pixels() -> None:
    image = micrograph(8, 1024, 1.9, 16000.0, 14500.0, 30.0).astype(np.float64)
    rows, columns = np.mgrid[0:1024, 0:1024]
    image += 0.01 * columns + 0.005 * rows  # illumination ramp of ~15 noise sigmas
    image += 20.0 * np.exp(-((columns - 300) ** 2 + (rows - 700) ** 2) / (2 * 150.0**2))  # thicker ice
    hot = np.random.default_rng(8).integers(0, 1024, (30, 2))
    image[hot[:, 0], hot[:, 1]] += 60.0
    check(estimate_ctf(image, 1.9, VOLTAGE, CS, Q), 16000.0, 14500.0, 30.0)


def test_white_noise_has_no_thon_rings() -> None:
    # Documented behaviour: no error, a cross-correlation near 0 and no rings detected.
    for seed, pixel in ((0, 1.9), (1, 2.8)):
        noise = np.random.default_rng(seed).standard_normal((1024, 1024)).astype(np.float32)
        estimate = estimate_ctf(noise, pixel, VOLTAGE, CS, Q)
        assert estimate.cross_correlation < 0.03
        assert estimate.fit_resolution > 20.0


def test_coloured_noise_background_is_not_fitted_as_rings() -> None:
    # Regression: with a plain box-convolution background, a steep spectrum left a bump at min_resolution
    # that was fitted as rings "detected up to 18 Å" (cross-correlation 0.03-0.04).
    rng = np.random.default_rng(3)
    kx, ky = frequency_grid_2d(1024, 1.9)
    coloured = centered_ifft2(centered_fft2(rng.standard_normal((1024, 1024))) / (0.01 + np.hypot(kx, ky)))
    columns = np.arange(1024)[None, :]
    image = coloured / coloured.std() + 0.3 * rng.standard_normal((1024, 1024)) + 0.01 * columns
    estimate = estimate_ctf(image, 1.9, VOLTAGE, CS, Q)
    assert estimate.cross_correlation < 0.03
    assert estimate.fit_resolution > 20.0


def test_astigmatism_restraint_pulls_towards_round_rings() -> None:
    image = micrograph(9, 1024, 2.8, 19000.0, 17000.0, 100.0)
    free = estimate_ctf(image, 2.8, VOLTAGE, CS, Q)
    restrained = estimate_ctf(image, 2.8, VOLTAGE, CS, Q, astigmatism_restraint=100.0)
    check(free, 19000.0, 17000.0, 100.0)
    assert restrained.astigmatism < 300.0  # a round compromise between the U and V rings
    assert abs(restrained.mean_defocus - 18000.0) < 0.05 * 18000.0


def test_max_resolution_finer_than_nyquist_is_clipped() -> None:
    image = micrograph(10, 512, 2.8, 14000.0, 13000.0, 60.0, noise=3.0)
    clipped = estimate_ctf(image, 2.8, VOLTAGE, CS, Q, tile_size=256, max_resolution=2.0)
    at_nyquist = estimate_ctf(image, 2.8, VOLTAGE, CS, Q, tile_size=256, max_resolution=5.6)
    assert clipped.defocus_u == at_nyquist.defocus_u and clipped.defocus_angle == at_nyquist.defocus_angle
    assert clipped.radial is not None
    assert clipped.radial.frequency.max() <= 1.0 / 5.6 + 1e-12
    check(clipped, 14000.0, 13000.0, 60.0)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.full((256, 256), np.nan), {}, "NaN"),
        (np.full((256, 256), 7.0), {}, "constant"),
        (np.zeros((4, 256, 256)), {}, "2D micrograph"),
        (np.random.default_rng(0).random((300, 400)), {"tile_size": 512}, "tile_size 512 px is larger"),
        (np.random.default_rng(0).random((256, 256)), {"tile_size": 128, "min_resolution": 2.0}, "Nyquist"),
        (np.random.default_rng(0).random((256, 256)), {"tile_size": 128, "min_defocus": 6e4}, "min_defocus"),
        (
            np.random.default_rng(0).random((256, 256)),
            {"tile_size": 128, "astigmatism_restraint": 0},
            "restraint",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(
    image: npt.NDArray[np.float64], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ProcessingError, match=message):
        estimate_ctf(image, 1.0, VOLTAGE, CS, Q, **kwargs)  # type: ignore[arg-type]


def test_outputs_progress_and_plot_are_deterministic(tmp_path: Path) -> None:
    image = micrograph(12, 1024, 2.8, 20000.0, 19000.0, 10.0)
    calls: list[tuple[int, int]] = []
    first = estimate_ctf(image, 2.8, VOLTAGE, CS, Q, progress=lambda done, total: calls.append((done, total)))
    second = estimate_ctf(image, 2.8, VOLTAGE, CS, Q)
    assert calls[-1][0] == calls[-1][1] and [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert first.diagnostic is not None and second.diagnostic is not None and first.radial is not None
    assert first.diagnostic.shape == (512, 512) and first.diagnostic.dtype == np.float32
    assert np.array_equal(first.diagnostic, second.diagnostic)
    # Right half of the diagnostic is the fitted CTF²: it matches ctf_2d on the tile's grid.
    kx, ky = frequency_grid_2d(512, 2.8)
    model = ctf_2d(kx, ky, first.defocus_u, first.defocus_v, first.defocus_angle, VOLTAGE, CS, Q) ** 2
    right = (slice(300, 400), slice(300, 400))
    assert np.corrcoef(first.diagnostic[right].ravel(), model[right].ravel())[0, 1] > 0.99
    frequency, observed, fitted, correlation, threshold = first.radial
    assert frequency.shape == observed.shape == fitted.shape == correlation.shape == threshold.shape
    parameters = first.to_parameters()
    assert (parameters.defocus_u, parameters.defocus_angle) == (first.defocus_u, first.defocus_angle)
    plot_ctf_fit(first, tmp_path / "a.png")
    plot_ctf_fit(second, tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == (tmp_path / "b.png").read_bytes()
    assert b"tIME" not in data and b"Software" not in data
    with pytest.raises(ProcessingError, match="no diagnostic"):
        plot_ctf_fit(
            CTFEstimate.from_ctffind(
                1.0,
                1.0,
                0.0,
                0.0,
                0.0,
                5.0,
                pixel_size=1.0,
                voltage=300.0,
                spherical_aberration=2.7,
                amplitude_contrast=0.1,
            ),
            tmp_path / "c.png",
        )


# -- CTFFIND4's own output (real file of the shared corpus) ----------------------------------------------


@pytest.fixture
def ctffind_rows(shared_data: Path) -> tuple[dict[str, str], dict[str, npt.NDArray[np.float64]]]:
    document = ctffind.read(shared_data / "formats" / "ctffind" / "cryocat_TS_017_ctffind4.txt")
    block = document.block(ctffind.BLOCK)
    columns = {label: np.asarray(values, dtype=np.float64) for label, values in block.columns.items()}
    return document.fields, columns


def _estimates(fields: dict[str, str], columns: dict[str, npt.NDArray[np.float64]]) -> list[CTFEstimate]:
    values = list(columns.values())
    return [
        CTFEstimate.from_ctffind(
            *(float(column[row]) for column in values[1:7]),
            pixel_size=float(fields["Pixel size"]),
            voltage=float(fields["acceleration voltage"]),
            spherical_aberration=float(fields["spherical aberration"]),
            amplitude_contrast=float(fields["amplitude contrast"]),
        )
        for row in range(len(values[0]))
    ]


def test_ctffind_output_conventions(
    ctffind_rows: tuple[dict[str, str], dict[str, npt.NDArray[np.float64]]],
) -> None:
    fields, columns = ctffind_rows
    defocus_1, defocus_2, azimuth = (columns[label] for label in list(columns)[1:4])
    # CTFFIND's own conventions, as this file shows them: defocus 1 >= defocus 2, azimuth in (-90, 90].
    assert np.all(defocus_1 >= defocus_2) and np.all((azimuth > -90.0) & (azimuth <= 90.0))
    estimates = _estimates(fields, columns)
    assert len(estimates) == len(defocus_1) == 60  # the header says 41 micrographs; the file has 60 rows
    second = estimates[1]  # row 2: 18332.730469 17896.296875 -84.116628 0 0.006649 14.622980
    assert (second.defocus_u, second.defocus_v) == (18332.730469, 17896.296875)
    assert second.defocus_angle == pytest.approx(95.883372)
    assert (second.phase_shift, second.cross_correlation, second.fit_resolution) == (0.0, 0.006649, 14.62298)
    assert all(0.0 <= e.defocus_angle < 180.0 and e.defocus_u >= e.defocus_v for e in estimates)
    swapped = CTFEstimate.from_ctffind(
        1.0e4,
        1.2e4,
        30.0,
        math.pi / 2,
        0.1,
        6.0,
        pixel_size=1.0,
        voltage=300.0,
        spherical_aberration=2.7,
        amplitude_contrast=0.07,
    )
    assert (swapped.defocus_u, swapped.defocus_v, swapped.defocus_angle, swapped.phase_shift) == (
        1.2e4,
        1.0e4,
        120.0,
        90.0,
    )


def test_recovers_ctffind_row_from_a_micrograph_simulated_with_it(
    ctffind_rows: tuple[dict[str, str], dict[str, npt.NDArray[np.float64]]],
) -> None:
    """The micrograph (031.mrc of cryoCAT's TS_017) is not in the corpus; simulate one with CTFFIND's
    answer for row 1 (14477.9 / 13500.0 Å at 75°, Q 0.07, 1.327 Å/px) and search with CTFFIND's own
    settings from the header: our fit must agree with CTFFIND's numbers."""
    fields, columns = ctffind_rows
    truth = _estimates(fields, columns)[0]
    pixel = float(fields["Pixel size"])
    image = micrograph(
        13,
        1024,
        pixel,
        truth.defocus_u,
        truth.defocus_v,
        truth.defocus_angle,
        amplitude_contrast=truth.amplitude_contrast,
    )
    estimate = estimate_ctf(
        image,
        pixel,
        truth.voltage,
        truth.spherical_aberration,
        truth.amplitude_contrast,
        tile_size=int(fields["Box size"]),
        min_resolution=float(fields["min. res."]),
        max_resolution=float(fields["max. res."]),
        min_defocus=float(fields["min. def."]),
        max_defocus=float(fields["max. def."]),
    )
    check(estimate, truth.defocus_u, truth.defocus_v, truth.defocus_angle)
