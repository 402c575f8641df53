"""Motion correction against simulated movies with a known drift (and, when installed, against RELION's own
implementation on the same movie)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters import star
from scipion_kg.tasks.builtin.fourier import fourier_shift_images
from scipion_kg.tasks.builtin.motion import (
    MotionResult,
    correct_motion,
    critical_exposure,
    dose_weights,
    plot_drift,
)
from scipy import ndimage

from scipion_kg.errors import ProcessingError

FloatArray = npt.NDArray[np.float64]

PIXEL_SIZE = 1.0  # Å, so 1 e⁻/px/frame = 1 e⁻/Å²/frame
CONTRAST = 0.15  # relative modulation of the beam intensity by the specimen


# ----------------------------------------------------------------------------------------------------------
# Simulation helpers


def synthetic_specimen(shape: tuple[int, int], seed: int) -> FloatArray:
    """A textured, band-limited specimen of unit std: low-passed noise plus sparse Gaussian blobs."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    k2 = kx**2 + ky**2

    def gaussian_lowpass(image: FloatArray, sigma_px: float) -> FloatArray:
        spectrum = np.fft.fft2(image) * np.exp(-2.0 * (np.pi * sigma_px) ** 2 * k2)
        return np.asarray(np.fft.ifft2(spectrum).real)

    texture = gaussian_lowpass(rng.standard_normal(shape), 2.0)
    spikes = np.zeros(shape)
    n_blobs = shape[0] * shape[1] // 400
    spikes[rng.integers(0, shape[0], n_blobs), rng.integers(0, shape[1], n_blobs)] = rng.uniform(
        0.5, 1.5, n_blobs
    )
    blobs = gaussian_lowpass(spikes, 3.0)
    specimen = 0.5 * texture / texture.std() + blobs / blobs.std()
    return np.asarray(specimen / specimen.std(), dtype=np.float64)


def random_trajectory(n_frames: int, drift_px: float, rng: np.random.Generator) -> FloatArray:
    """A smooth, decelerating, slightly curved path from 0 whose farthest point is ``drift_px`` away."""
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    tau = rng.uniform(0.15, 0.4)
    along = (1.0 - np.exp(-t / tau)) / (1.0 - np.exp(-1.0 / tau))
    across = rng.uniform(-0.3, 0.3) * np.sin(np.pi * t * rng.uniform(0.5, 1.5))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-u[1], u[0]])
    path = along[:, None] * u + across[:, None] * v
    path -= path[0]
    return np.asarray(path * drift_px / np.max(np.hypot(path[:, 0], path[:, 1])))


def _margin(drift_px: float) -> int:
    return int(np.ceil(drift_px)) + 8


def synthetic_movie(
    shape: tuple[int, int],
    n_frames: int,
    drift_px: float,
    dose: float,
    seed: int,
    *,
    trajectory: FloatArray | None = None,
) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """Poisson frames (``dose`` e⁻/px/frame) of a specimen drifting along a known path.

    frame_f(x) = Poisson(dose · (1 + CONTRAST · S(x - d_f))) with d_0 = 0: the specimen (a larger canvas from
    :func:`synthetic_specimen`, so content enters and leaves at the edges) is Fourier-shifted by d_f and the
    field of view cropped from its centre. Returns the frames and the true shifts d (n_frames, 2) px."""
    rng = np.random.default_rng([seed, 1])
    path = random_trajectory(n_frames, drift_px, rng) if trajectory is None else np.asarray(trajectory, float)
    margin = _margin(max(drift_px, float(np.max(np.abs(path)))))  # the same canvas as specimen_in_view
    canvas = synthetic_specimen((shape[0] + 2 * margin, shape[1] + 2 * margin), seed)
    frames = np.empty((len(path), *shape), dtype=np.float32)
    for f, moved in enumerate(shifted_copies(canvas, path)):
        window = moved[margin : margin + shape[0], margin : margin + shape[1]]
        frames[f] = rng.poisson(dose * np.clip(1.0 + CONTRAST * window, 0.0, None))
    return frames, path


def shifted_copies(image: FloatArray, shifts: FloatArray) -> list[FloatArray]:
    """``image`` moved by each shift (dx, dy) px, out(x) = image(x - d), periodic and sub-pixel exact."""
    spectrum = np.fft.rfft2(image)
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.rfftfreq(image.shape[1])[None, :]
    return [
        np.fft.irfft2(spectrum * np.exp(-2j * np.pi * (kx * dx + ky * dy)), s=image.shape)
        for dx, dy in shifts
    ]


def specimen_in_view(shape: tuple[int, int], drift_px: float, seed: int) -> FloatArray:
    """The noise-free specimen in the field of view of frame 0 of ``synthetic_movie(shape, ..., seed)``."""
    margin = _margin(drift_px)
    canvas = synthetic_specimen((shape[0] + 2 * margin, shape[1] + 2 * margin), seed)
    return canvas[margin : margin + shape[0], margin : margin + shape[1]]


def deformed_movie(
    shape: tuple[int, int], n_frames: int, drift_px: float, local_px: float, dose: float, seed: int
) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """Like :func:`synthetic_movie` plus a local deformation (rotation + expansion about the centre) growing
    linearly in time to ``local_px`` at the corners. Returns frames and the true displacement field
    (n_frames, 2, y, x) as (dx, dy), frame_f(x) = S(x - D_f(x))."""
    rng = np.random.default_rng([seed, 2])
    path = random_trajectory(n_frames, drift_px, rng)
    margin = _margin(drift_px + local_px)
    coefficients = ndimage.spline_filter(
        synthetic_specimen((shape[0] + 2 * margin, shape[1] + 2 * margin), seed), order=3
    )
    yy, xx = np.meshgrid(np.arange(shape[0], dtype=float), np.arange(shape[1], dtype=float), indexing="ij")
    u, v = xx / shape[1] - 0.5, yy / shape[0] - 0.5
    frames = np.empty((n_frames, *shape), dtype=np.float32)
    fields = np.empty((n_frames, 2, *shape))
    for f in range(n_frames):
        strength = local_px * np.sqrt(2.0) * f / (n_frames - 1)  # |(±0.5, ±0.5)| = 1/√2 at the corners
        fields[f, 0] = path[f, 0] + strength * 0.5 * (u - v)
        fields[f, 1] = path[f, 1] + strength * 0.5 * (u + v)
        image = ndimage.map_coordinates(
            coefficients, [yy - fields[f, 1] + margin, xx - fields[f, 0] + margin], order=3, prefilter=False
        )
        frames[f] = rng.poisson(dose * np.clip(1.0 + 0.1 * image, 0.0, None))
    return frames, fields


def rms_error(estimate: FloatArray, truth: FloatArray) -> float:
    return float(np.sqrt(np.mean(np.sum((estimate - truth) ** 2, axis=-1))))


def correlation(image: npt.NDArray[np.floating], truth: FloatArray, border: int) -> float:
    a = image[border:-border, border:-border].ravel()
    b = truth[border:-border, border:-border].ravel()
    return float(np.corrcoef(a, b)[0, 1])


# ----------------------------------------------------------------------------------------------------------
# The shared movie: 24 frames of 512² px at 1 e⁻/px/frame, 10 px of drift


@dataclass(frozen=True)
class Case:
    frames: npt.NDArray[np.float32]
    truth: FloatArray
    specimen: FloatArray
    result: MotionResult
    seconds: float
    seed: int


MOVIE_SHAPE = (512, 512)
N_FRAMES = 24
DRIFT_PX = 10.0
DOSE = 1.0


@pytest.fixture(scope="module")
def case() -> Case:
    seed = 7
    frames, truth = synthetic_movie(MOVIE_SHAPE, N_FRAMES, DRIFT_PX, DOSE, seed)
    start = time.perf_counter()
    result = correct_motion(frames, PIXEL_SIZE, DOSE)
    seconds = time.perf_counter() - start
    return Case(frames, truth, specimen_in_view(MOVIE_SHAPE, DRIFT_PX, seed), result, seconds, seed)


def test_global_shifts_match_the_true_drift(case: Case) -> None:
    result = case.result
    error = rms_error(result.shifts, case.truth)
    print(
        f"\nbuilt-in global shifts: RMS error {error:.3f} px, "
        f"max {np.abs(result.shifts - case.truth).max():.3f} px, "
        f"{case.seconds:.2f} s wall for {N_FRAMES} x {MOVIE_SHAPE[0]}² px"
    )
    assert result.shifts.shape == (N_FRAMES, 2)
    assert np.array_equal(result.shifts[0], [0.0, 0.0])
    assert error < 0.5  # processing.md: RELION --use_own reached 0.32 px on a similar movie
    assert np.abs(result.shifts - case.truth).max() < 1.0
    # Not fooled by the noise of each frame: a zero-drift answer would be off by several pixels.
    assert rms_error(np.zeros_like(case.truth), case.truth) > 5.0
    assert result.converged
    updates = [step.rms_update_px for step in result.convergence if step.stage == "global"]
    assert updates[0] > 3.0 and updates[-1] < 0.05


@pytest.mark.parametrize(("direction", "name"), [((1.0, 0.0), "+x"), ((0.0, 1.0), "+y (down the rows)")])
def test_sign_of_the_shifts(direction: tuple[float, float], name: str) -> None:
    n_frames = 12
    path = np.outer(np.arange(n_frames) * 0.6, direction)  # 6.6 px in total along +x or +y
    frames, truth = synthetic_movie((256, 256), n_frames, 0.0, 2.0, 3, trajectory=path)
    # The simulation moves content towards +x / +y: a whole-pixel shift is np.roll towards higher indices.
    specimen = synthetic_specimen((64, 64), 0)
    rolled = np.roll(specimen, 3, axis=1 if direction[0] else 0)
    np.testing.assert_allclose(shifted_copies(specimen, np.array([direction]) * 3)[0], rolled, atol=1e-9)
    # ... as the shared primitive does.
    np.testing.assert_allclose(fourier_shift_images(specimen, np.array([direction]) * 3), rolled, atol=1e-9)
    result = correct_motion(frames, PIXEL_SIZE, 2.0, dose_weighting=False)
    axis, other = (0, 1) if direction[0] else (1, 0)
    assert np.all(np.diff(result.shifts[:, axis]) > 0), f"specimen moving {name} must give increasing d"
    assert result.shifts[-1, axis] == pytest.approx(truth[-1, axis], abs=0.5)
    assert np.abs(result.shifts[:, other]).max() < 0.5


def test_corrected_sum_is_closer_to_the_specimen(case: Case) -> None:
    border = _margin(DRIFT_PX)
    plain = correlation(case.frames.sum(axis=0), case.specimen, border)
    aligned = correlation(case.result.aligned_sum_no_dw, case.specimen, border)
    weighted = correlation(case.result.aligned_sum, case.specimen, border)
    print(
        f"\ncorrelation with the specimen: plain sum {plain:.3f}, aligned {aligned:.3f}, "
        f"dose-weighted {weighted:.3f}"
    )
    assert aligned > plain + 0.1
    assert weighted > plain + 0.1
    assert case.result.aligned_sum.dtype == np.float32 and case.result.aligned_sum.shape == MOVIE_SHAPE


def test_dose_weights_follow_grant_and_grigorieff() -> None:
    n_frames, dose = 24, 1.0
    accumulated = dose * np.arange(1, n_frames + 1)  # exposure at the end of each frame
    weights = dose_weights((64, 64), 1.0, accumulated)
    assert weights.shape == (n_frames, 64, 33)
    # Hand-computed at 4 Å (k = 0.25 /Å, column 16 of a 64 px, 1 Å/px grid):
    # Ne = 0.245 · 0.25^-1.665 + 2.81 = 5.275 e⁻/Å², last/first = exp(-(24 - 1) / (2 · 5.275)) = 0.113.
    assert float(critical_exposure(0.25)) == pytest.approx(5.275, abs=0.005)
    at_4a = weights[:, 0, 16]
    assert at_4a[-1] / at_4a[0] == pytest.approx(0.113, abs=0.002)
    assert np.all(np.diff(at_4a) < 0)  # late frames are attenuated more and more
    ne = 0.245 * 0.25**-1.665 + 2.81
    raw = np.exp(-accumulated / (2 * ne))
    np.testing.assert_allclose(at_4a, raw * np.sqrt(n_frames / np.sum(raw**2)), rtol=1e-5)
    # Low frequency (64 Å): all frames weigh about the same; zero frequency exactly 1 (the plain sum).
    assert weights[-1, 0, 1] / weights[0, 0, 1] > 0.9
    np.testing.assert_allclose(weights[:, 0, 0], 1.0)
    # Noise power is kept: Σ_f W_f² = n_frames everywhere.
    np.testing.assert_allclose(np.sum(weights.astype(np.float64) ** 2, axis=0), n_frames, rtol=1e-4)
    # 200 kV electrons damage more: the same as 300 kV with the exposure divided by 0.8.
    np.testing.assert_allclose(
        dose_weights((64, 64), 1.0, accumulated, voltage=200), dose_weights((64, 64), 1.0, accumulated / 0.8)
    )


def test_dose_weighted_sum_keeps_low_and_damps_high_frequencies(case: Case) -> None:
    weighted = np.abs(np.fft.rfft2(case.result.aligned_sum))
    plain = np.abs(np.fft.rfft2(case.result.aligned_sum_no_dw))
    k = (
        np.hypot(np.fft.fftfreq(MOVIE_SHAPE[0])[:, None], np.fft.rfftfreq(MOVIE_SHAPE[1])[None, :])
        / PIXEL_SIZE
    )
    # Below 1/50 Å⁻¹, Ne > 168 e⁻/Å², so even the last frame keeps > 93 % of its weight.
    low = (k > 0) & (k < 1 / 50)
    assert 0.97 < np.sum(weighted[low]) / np.sum(plain[low]) < 1.01
    # At 2.5 Å the signal of late frames is gone; the weighted sum keeps the early frames' signal only.
    # Its power is then dominated by noise, as is the plain sum's: both stay comparable (flat noise power).
    high = (k > 0.35) & (k < 0.45)
    assert 0.8 < np.mean(weighted[high] ** 2) / np.mean(plain[high] ** 2) < 1.2
    np.testing.assert_allclose(case.result.accumulated_dose, DOSE * np.arange(1, N_FRAMES + 1))


def _movie(n: int = 4, size: int = 64) -> npt.NDArray[np.float32]:
    return np.random.default_rng(0).poisson(1.0, (n, size, size)).astype(np.float32)


@pytest.mark.parametrize(
    ("frames", "kwargs", "message"),
    [
        ([np.ones((64, 64)), np.ones((64, 80))], {}, "frame 1 has shape (64, 80)"),
        (np.ones((1, 64, 64)), {}, "at least 2 frames, got 1"),
        (np.ones((64, 64)), {}, "(n_frames, y, x) stack"),
        (
            np.where(np.arange(4)[:, None, None] == 2, np.nan, _movie()),
            {},
            "NaN or infinite pixel(s) in frame(s) 2",
        ),
        (_movie(), {"patches": (2, 2)}, "at least 3 patches"),
        (_movie(size=128), {"patches": (3, 3)}, "smaller than 64 px"),
        (_movie(), {"voltage": 120.0}, "only for 300 kV or 200 kV"),
        (_movie(), {"pixel_size": 0.0}, "pixel_size 0.0"),
        (_movie(), {"dose_per_frame": 0.0}, "dose weighting needs a positive dose"),
        (np.ones((3, 16, 16)), {}, "too small"),
    ],
)
def test_bad_input_is_refused(frames: Any, kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"pixel_size": 1.0, "dose_per_frame": 1.0, **kwargs}
    with pytest.raises(ProcessingError) as raised:
        correct_motion(frames, **arguments)
    assert message in str(raised.value)


def test_progress_is_reported() -> None:
    calls: list[tuple[int, int]] = []
    correct_motion(_movie(), 1.0, 1.0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_patches_recover_a_local_deformation(tmp_path: Path) -> None:
    shape, n_frames = (384, 384), 24
    frames, field = deformed_movie(shape, n_frames, 8.0, 3.0, 1.5, 11)
    ticks: list[tuple[int, int]] = []
    start = time.perf_counter()
    result = correct_motion(
        frames, PIXEL_SIZE, 1.5, patches=(3, 3), progress=lambda d, t: ticks.append((d, t))
    )
    seconds = time.perf_counter() - start
    assert ticks[-1] == (11, 11) and len(ticks) == 11
    assert (
        result.local_model is not None
        and result.patch_shifts is not None
        and result.patch_centres is not None
    )
    assert result.patch_shifts.shape == (3, 3, n_frames, 2)
    rows, cols = np.arange(shape[0], dtype=float), np.arange(shape[1], dtype=float)
    estimate = np.empty_like(field)
    for f in range(n_frames):
        dx, dy = result.local_model.field(f, rows, cols)
        estimate[f, 0] = result.shifts[f, 0] + dx
        estimate[f, 1] = result.shifts[f, 1] + dy
    local_error = float(np.sqrt(np.mean(np.sum((estimate - field) ** 2, axis=1))))
    global_error = float(np.sqrt(np.mean(np.sum((result.shifts[:, :, None, None] - field) ** 2, axis=1))))
    print(
        f"\npatches 3x3: displacement-field RMS error {local_error:.3f} px "
        f"(global shifts only: {global_error:.3f}), "
        f"fit RMSD {result.local_model.fit_rmsd_px:.3f} px, {seconds:.2f} s"
    )
    assert local_error < 0.5
    assert local_error < 0.75 * global_error
    # Each tile's measured trajectory follows the true field at its centre.
    for row in range(3):
        for col in range(3):
            x, y = np.rint(result.patch_centres[row, col]).astype(int)
            true_track = field[:, :, y, x] - field[0, :, y, x]
            assert rms_error(result.patch_shifts[row, col], true_track) < 1.2
    # The deformation-corrected sum is closer to the specimen than the globally aligned one.
    specimen = synthetic_specimen((shape[0] + 2 * _margin(11.0), shape[1] + 2 * _margin(11.0)), 11)
    specimen = specimen[_margin(11.0) : -_margin(11.0), _margin(11.0) : -_margin(11.0)]
    global_only = correct_motion(frames, PIXEL_SIZE, 1.5)
    assert (
        correlation(result.aligned_sum_no_dw, specimen, 20)
        > correlation(global_only.aligned_sum_no_dw, specimen, 20) + 0.01
    )
    plot_drift(result, tmp_path / "patches.png", "patch mode")
    assert (tmp_path / "patches.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_drift_plot_is_a_deterministic_png(case: Case, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "drift.png", tmp_path / "drift.png"
    plot_drift(case.result, first, "movie 7")
    plot_drift(case.result, second, "movie 7")
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    assert data == second.read_bytes()
    assert b"matplotlib" not in data  # no Software (version) text chunk
    assert [p.name for p in first.parent.iterdir()] == ["drift.png"]  # no temporary file left behind


# ----------------------------------------------------------------------------------------------------------
# RELION 3.1 on the same movie


MOVIES_STAR = """
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographOriginalPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
opticsGroup1 1 {pixel_size:.6f} 300.000000 2.700000 0.100000


# version 30001

data_movies

loop_
_rlnMicrographMovieName #1
_rlnOpticsGroup #2
movie.mrcs 1

"""


@pytest.mark.skipif(shutil.which("relion_run_motioncorr") is None, reason="RELION is not installed")
def test_relion_on_the_same_movie(case: Case, tmp_path: Path) -> None:
    with mrcfile.new(tmp_path / "movie.mrcs") as movie:
        movie.set_data(case.frames.astype(np.float32))
        movie.voxel_size = PIXEL_SIZE
    (tmp_path / "movies.star").write_text(MOVIES_STAR.format(pixel_size=PIXEL_SIZE))
    command = [
        "relion_run_motioncorr", "--i", "movies.star", "--o", "MotionCorr/job002/", "--use_own",
        "--first_frame_sum", "1", "--last_frame_sum", "-1", "--bin_factor", "1", "--bfactor", "150",
        "--dose_per_frame", f"{DOSE}", "--preexposure", "0", "--patch_x", "1", "--patch_y", "1", "--j", "1",
    ]  # fmt: skip
    start = time.perf_counter()
    cpu_start = os.times()
    with open(tmp_path / "relion.out", "wb") as log:  # progress bars: keep them out of the test output
        completed = subprocess.run(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    cpu = (
        os.times().children_user
        - cpu_start.children_user
        + os.times().children_system
        - cpu_start.children_system
    )
    output = (tmp_path / "relion.out").read_text(errors="replace")[-2000:]
    assert completed.returncode == 0, output
    shifts = star.read(tmp_path / "MotionCorr" / "job002" / "movie.star").block("global_shift")
    assert list(shifts.columns["rlnMicrographFrameNumber"]) == list(range(1, N_FRAMES + 1))
    correction = np.stack(
        [shifts.columns["rlnMicrographShiftX"], shifts.columns["rlnMicrographShiftY"]], axis=1
    ).astype(np.float64)
    relion_displacement = -(correction - correction[0])  # RELION stores the correction, -d
    relion_error = rms_error(relion_displacement, case.truth)
    ours_error = rms_error(case.result.shifts, case.truth)
    print(
        f"\nsame movie ({N_FRAMES} x {MOVIE_SHAPE[0]}² px, {DOSE} e/px/frame, {DRIFT_PX} px drift): "
        f"built-in RMS {ours_error:.3f} px in {case.seconds:.2f} s wall; "
        f"RELION --use_own RMS {relion_error:.3f} px in {seconds:.2f} s wall ({cpu:.2f} CPU-s)"
    )
    assert relion_error < 0.5
    assert ours_error < 0.5
    # Both found the same trajectory (neither is mirrored or transposed).
    assert rms_error(relion_displacement, case.result.shifts) < 0.6
