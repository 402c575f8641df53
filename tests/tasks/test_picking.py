"""Picking on simulated micrographs with known particle positions.

The micrograph: one random protein-like map (Gaussian blobs inside a 150 Å sphere, centre of mass at the
map centre) projected in random orientations, placed at known sub-pixel positions, filtered by RELION's CTF
(written out here from RELION's ``getCTF``: positive at low frequency), negated (raw micrographs show
particles dark), plus CTF-filtered ice noise and white noise for a given per-pixel SNR inside the particles.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters import star
from scipion_kg.converters.mrc import write_map
from scipion_kg.tasks.builtin.ctf import electron_wavelength
from scipion_kg.tasks.builtin.fourier import (
    Projector,
    centered_fft2,
    centered_ifft2,
    fourier_shift_images,
    frequency_grid_2d,
)
from scipion_kg.tasks.builtin.picking import Picks, match_picks, pick_log, pick_template
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

PIXEL = 2.8  # Å
DIAMETER = 150.0  # Å
SIZE = 768
N_PARTICLES = 35
DEFOCUS = (15000.0, 14000.0, 30.0)  # U, V (Å), angle (degrees)
RADIUS = DIAMETER / 4 / PIXEL  # match radius: D/4, in pixels

FloatArray = npt.NDArray[np.float64]


def relion_ctf(
    size: int, pixel: float, defocus: tuple[float, float, float], bfactor: float = 0.0, q: float = 0.1
) -> FloatArray:
    """RELION's CTF on a centred grid, 300 kV, Cs 2.7 mm: sin(πλΔf k² - π/2 Cs λ³ k⁴ + atan(Q/√(1-Q²)))
    (``getCTF`` with its ``deltaf = -defocus``), checked here against relion_project: > 0 at low k."""
    kx, ky = frequency_grid_2d(size, pixel)
    wavelength = electron_wavelength(300.0)
    k2 = kx**2 + ky**2
    du, dv, angle = defocus
    df = 0.5 * (du + dv + (du - dv) * np.cos(2.0 * (np.arctan2(ky, kx) - np.radians(angle))))
    chi = (
        np.pi * wavelength * df * k2
        - 0.5 * np.pi * 2.7e7 * wavelength**3 * k2**2
        + np.arctan(q / np.sqrt(1 - q * q))
    )
    return np.asarray(np.sin(chi) * np.exp(-bfactor * k2 / 4.0))


def blob_volume(
    rng: np.random.Generator, box: int = 64, n_blobs: int = 30, blob_sigma: float = 9.0
) -> FloatArray:
    """Gaussian blobs inside a sphere of diameter DIAMETER, centre of mass at the map centre box // 2."""
    limit = DIAMETER / 2 - 1.5 * blob_sigma
    centres: list[FloatArray] = []
    while len(centres) < n_blobs:
        point = rng.uniform(-limit, limit, 3)
        if np.linalg.norm(point) <= limit:
            centres.append(point)
    points = np.array(centres)
    weights = rng.uniform(0.5, 1.0, n_blobs)
    points -= (weights[:, None] * points).sum(axis=0) / weights.sum()
    grid = (np.arange(box) - box // 2) * PIXEL
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    volume = np.zeros((box, box, box))
    for (cx, cy, cz), weight in zip(points, weights, strict=True):
        volume += weight * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * blob_sigma**2))
    return volume


def place(images: FloatArray, x: FloatArray, y: FloatArray, size: int) -> FloatArray:
    """Sum of ``images`` (n, b, b) whose centre pixel b // 2 lands on (x, y), sub-pixel exact."""
    box = images.shape[-1]
    ix, iy = np.floor(x).astype(int), np.floor(y).astype(int)
    shifted = fourier_shift_images(images, np.stack([x - ix, y - iy], axis=1))
    out = np.zeros((size, size))
    for cx, cy, image in zip(ix, iy, shifted, strict=True):
        out[cy - box // 2 : cy - box // 2 + box, cx - box // 2 : cx - box // 2 + box] += image
    return out


def random_positions(
    rng: np.random.Generator, n: int, size: int, min_distance: float, margin: float
) -> FloatArray:
    points: list[FloatArray] = []
    while len(points) < n:
        point = rng.uniform(margin, size - 1 - margin, 2)
        if all(np.hypot(*(point - other)) >= min_distance for other in points):
            points.append(point)
    return np.array(points).reshape(-1, 2)


@dataclass
class Simulation:
    micrograph: FloatArray
    x: FloatArray
    y: FloatArray
    projections: FloatArray  # (n, 64, 64) true projections, centre at 32
    noise_sigma: float


def simulate(
    seed: int = 0,
    n: int = N_PARTICLES,
    snr: float = 0.1,
    size: int = SIZE,
    ctf: bool = True,
    ice: float = 0.5,
) -> Simulation:
    """A micrograph with ``n`` particles; the white noise variance is var(signal inside particles) / snr."""
    rng = np.random.default_rng(seed)
    volume = blob_volume(rng)
    projections = Projector(volume).project(Rotation.random(n, random_state=seed).as_matrix())
    positions = random_positions(rng, n, size, 1.15 * DIAMETER / PIXEL, DIAMETER / PIXEL)
    clean = place(projections, positions[:, 0], positions[:, 1], size)
    transfer = relion_ctf(size, PIXEL, DEFOCUS, bfactor=50.0) if ctf else np.ones((size, size))
    signal = -centered_ifft2(centered_fft2(clean) * transfer)
    rows, cols = np.mgrid[:size, :size]
    inside = np.zeros((size, size), dtype=bool)
    for x0, y0 in positions:
        inside |= (cols - x0) ** 2 + (rows - y0) ** 2 <= (DIAMETER / 2 / PIXEL) ** 2
    sigma = float(np.sqrt(signal[inside].var() / snr))
    ice_noise = centered_ifft2(centered_fft2(rng.normal(0.0, ice * sigma, (size, size))) * transfer)
    micrograph = 100.0 + signal + ice_noise + rng.normal(0.0, sigma, (size, size))
    return Simulation(micrograph, positions[:, 0], positions[:, 1], projections, sigma)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate()


def _errors(picks: Picks, sim: Simulation, pairs: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    return picks.x[pairs[:, 0]] - sim.x[pairs[:, 1]], picks.y[pairs[:, 0]] - sim.y[pairs[:, 1]]


def test_log_picks_dark_particles_of_ctf_modulated_micrograph(simulation: Simulation) -> None:
    start = time.process_time()
    picks = pick_log(simulation.micrograph, PIXEL, 120.0, 180.0)
    seconds = time.process_time() - start
    recall, precision, pairs = match_picks(picks.x, picks.y, simulation.x, simulation.y, RADIUS)
    print(
        f"LoG default threshold {picks.threshold}: {len(picks)} picks, recall {recall:.2f}, "
        f"precision {precision:.2f}, {seconds:.2f} CPU-s"
    )
    assert recall >= 0.9 and precision >= 0.9
    top = pick_log(simulation.micrograph, PIXEL, 120.0, 180.0, threshold=-np.inf, max_particles=N_PARTICLES)
    recall, precision, pairs = match_picks(top.x, top.y, simulation.x, simulation.y, RADIUS)
    dx, dy = _errors(top, simulation, pairs)
    print(
        f"LoG top {N_PARTICLES}: recall {recall:.2f}, precision {precision:.2f}, "
        f"mean error {np.hypot(dx, dy).mean() * PIXEL:.1f} Å"
    )
    assert len(top) == N_PARTICLES
    assert recall >= 0.9 and precision >= 0.9
    assert np.all(np.diff(top.score) <= 0)  # best first


def test_log_contrast_sign(simulation: Simulation) -> None:
    white = 200.0 - simulation.micrograph
    picks = pick_log(white, PIXEL, 120.0, 180.0, invert=True, threshold=-np.inf, max_particles=N_PARTICLES)
    recall, _, _ = match_picks(picks.x, picks.y, simulation.x, simulation.y, RADIUS)
    assert recall >= 0.9
    # Looking for dark blobs on white particles finds the gaps between them instead.
    wrong = pick_log(white, PIXEL, 120.0, 180.0, threshold=-np.inf, max_particles=N_PARTICLES)
    wrong_recall = match_picks(wrong.x, wrong.y, simulation.x, simulation.y, RADIUS)[0]
    print(f"LoG on white particles: recall {recall:.2f} with invert=True, {wrong_recall:.2f} without")
    assert wrong_recall < 0.3


def test_log_positions_are_unbiased_on_symmetric_blobs() -> None:
    # Noise-free dark Gaussian discs at known sub-pixel positions: exercises the binned -> input pixel map.
    rng = np.random.default_rng(3)
    size, box = 512, 96
    positions = random_positions(rng, 12, size, 70.0, 60.0)
    grid = np.arange(box) - box // 2
    blob = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * (30.0 / PIXEL) ** 2))
    micrograph = -place(np.repeat(blob[None], 12, axis=0), positions[:, 0], positions[:, 1], size)
    picks = pick_log(micrograph, PIXEL, 120.0, 180.0, threshold=-np.inf, max_particles=12)
    recall, precision, pairs = match_picks(picks.x, picks.y, positions[:, 0], positions[:, 1], 3.0)
    assert recall == 1.0 and precision == 1.0
    dx = picks.x[pairs[:, 0]] - positions[pairs[:, 1], 0]
    dy = picks.y[pairs[:, 0]] - positions[pairs[:, 1], 1]
    print(f"symmetric blobs: max error {np.abs(np.r_[dx, dy]).max():.2f} px")
    assert np.abs(np.r_[dx, dy]).max() < 0.6


def test_template_matching_with_true_projections(simulation: Simulation) -> None:
    start = time.process_time()
    picks = pick_template(simulation.micrograph, simulation.projections, PIXEL, PIXEL, mask_diameter=170.0)
    seconds = time.process_time() - start
    recall, precision, _ = match_picks(picks.x, picks.y, simulation.x, simulation.y, RADIUS)
    print(
        f"template default threshold: {len(picks)} picks, recall {recall:.2f}, precision {precision:.2f}, "
        f"{seconds:.2f} CPU-s for {len(simulation.projections)} templates x 36 angles"
    )
    assert recall >= 0.9 and precision >= 0.9
    # Picks come best first: the first N are the top-N.
    top_x, top_y = picks.x[:N_PARTICLES], picks.y[:N_PARTICLES]
    top_recall, top_precision, pairs = match_picks(top_x, top_y, simulation.x, simulation.y, RADIUS)
    log = pick_log(simulation.micrograph, PIXEL, 120.0, 180.0, threshold=-np.inf, max_particles=N_PARTICLES)
    log_recall, log_precision, log_pairs = match_picks(log.x, log.y, simulation.x, simulation.y, RADIUS)
    assert top_recall >= log_recall and top_precision >= log_precision
    dx, dy = top_x[pairs[:, 0]] - simulation.x[pairs[:, 1]], top_y[pairs[:, 0]] - simulation.y[pairs[:, 1]]
    log_dx, log_dy = _errors(log, simulation, log_pairs)
    print(
        f"template top {N_PARTICLES}: recall {top_recall:.2f}, mean error {np.hypot(dx, dy).mean():.2f} px "
        f"(LoG {np.hypot(log_dx, log_dy).mean():.2f} px), bias ({dx.mean():+.2f}, {dy.mean():+.2f}) px"
    )
    assert np.hypot(dx, dy).mean() <= np.hypot(log_dx, log_dy).mean()
    # An off-by-one in the binned -> input pixel map would show as a bias of a pixel or more.
    assert abs(dx.mean()) < 0.5 and abs(dy.mean()) < 0.5


def test_template_rotation_search() -> None:
    # 8 rods (Gaussian 40 x 12 Å) at 30-150 degrees from the template's horizontal rod, and 8 round decoys of
    # the same mass. Matching the rotated template prefers the rods (CC 1 against about 0.84 for a disc); the
    # unrotated template prefers the discs (about 0.84 against at most 0.7 for a rod turned by >= 30 degrees).
    rng = np.random.default_rng(5)
    box, size = 64, 512
    grid = (np.arange(box) - box // 2) * PIXEL
    gy, gx = np.meshgrid(grid, grid, indexing="ij")

    def rod(angle: float) -> FloatArray:
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        u, v = c * gx + s * gy, -s * gx + c * gy
        return np.asarray(np.exp(-(u**2) / (2 * 40.0**2) - v**2 / (2 * 12.0**2)))

    disc = np.exp(-(gx**2 + gy**2) / (2 * np.sqrt(40.0 * 12.0) ** 2))
    angles = rng.uniform(30.0, 150.0, 8)
    images = np.stack([rod(angle) for angle in angles] + [disc] * 8)
    positions = random_positions(rng, 16, size, 1.2 * box, box / 2 + 4)
    micrograph = -place(images, positions[:, 0], positions[:, 1], size)
    micrograph += rng.normal(0.0, 0.05, micrograph.shape)
    rods_x, rods_y = positions[:8, 0], positions[:8, 1]
    searched = pick_template(micrograph, rod(0.0)[None], PIXEL, PIXEL, threshold=-np.inf, max_particles=8)
    fixed = pick_template(
        micrograph, rod(0.0)[None], PIXEL, PIXEL, angular_step=360.0, threshold=-np.inf, max_particles=8
    )
    searched_recall = match_picks(searched.x, searched.y, rods_x, rods_y, RADIUS)[0]
    fixed_recall = match_picks(fixed.x, fixed.y, rods_x, rods_y, RADIUS)[0]
    print(f"rods among the top 8: {searched_recall:.2f} with rotations, {fixed_recall:.2f} without")
    assert searched_recall >= 7 / 8
    assert fixed_recall <= 4 / 8


def test_templates_at_another_pixel_size(simulation: Simulation) -> None:
    # Eight of the true projections, upsampled x2 in Fourier space to 128 px at 1.4 Å/px.
    spectra = np.zeros((8, 128, 128), dtype=complex)
    spectra[:, 32:96, 32:96] = centered_fft2(simulation.projections[:8])
    templates = centered_ifft2(spectra) * 4.0
    calls: list[tuple[int, int]] = []
    picks = pick_template(
        simulation.micrograph,
        templates,
        PIXEL / 2,
        PIXEL,
        angular_step=15.0,
        threshold=-np.inf,
        max_particles=N_PARTICLES,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1] == (8 * 24, 8 * 24)
    recall, precision, pairs = match_picks(picks.x, picks.y, simulation.x, simulation.y, RADIUS)
    assert recall >= 0.9 and precision >= 0.9
    # The 8 particles whose own projection is a template are found to about a third of a pixel (the
    # matching grid is 8.4 Å); a wrong scale or centre in the resampling would move them all.
    own = pairs[pairs[:, 1] < 8]
    errors = np.abs(np.concatenate(_errors(picks, simulation, own)))
    print(
        f"8 templates at 1.4 Å/px: recall {recall:.2f}, own-view errors mean {errors.mean():.2f} px, "
        f"max {errors.max():.2f} px"
    )
    assert len(own) == 8 and errors.max() < 1.2 and errors.mean() < 0.5
    native = pick_template(
        simulation.micrograph, simulation.projections[:8], PIXEL, PIXEL, angular_step=15.0,
        threshold=-np.inf, max_particles=N_PARTICLES,
    )  # fmt: skip
    np.testing.assert_allclose(native.x, picks.x, atol=0.05)
    np.testing.assert_allclose(native.y, picks.y, atol=0.05)


def test_border_and_min_distance_are_respected(simulation: Simulation) -> None:
    calls: list[tuple[int, int]] = []
    picks = pick_log(
        simulation.micrograph,
        PIXEL,
        120.0,
        180.0,
        threshold=0.0,
        exclude_border_px=100.0,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert len(picks) > 0
    assert picks.x.min() >= 100 and picks.y.min() >= 100
    assert picks.x.max() <= SIZE - 101 and picks.y.max() <= SIZE - 101
    spaced = pick_log(simulation.micrograph, PIXEL, 120.0, 180.0, threshold=0.0, min_distance=300.0)
    distance = np.hypot(spaced.x[:, None] - spaced.x[None], spaced.y[:, None] - spaced.y[None])
    distance[np.diag_indices(len(spaced))] = np.inf
    assert distance.min() * PIXEL >= 300.0


def test_match_picks_is_one_to_one() -> None:
    # Two picks near one true particle: only one may match it; the far pick is a false positive.
    recall, precision, pairs = match_picks(
        [10.0, 11.0, 50.0, 80.0], [10.0, 10.0, 50.0, 10.0], [10.5, 50.0], [10.0, 52.0], 3.0
    )
    assert recall == 1.0
    assert precision == 0.5
    assert sorted(map(tuple, pairs.tolist()))[1] == (2, 1)
    assert match_picks([], [], [1.0], [1.0], 2.0)[:2] == (0.0, 1.0)


def test_errors_name_the_problem() -> None:
    with pytest.raises(ProcessingError, match="diameter_min <= diameter_max"):
        pick_log(np.zeros((64, 64)), 1.0, 50.0, 20.0)
    with pytest.raises(ProcessingError, match=r"larger than micrograph m\.mrc"):
        pick_log(np.zeros((64, 64)), 2.0, 100.0, 200.0, micrograph_name="m.mrc")
    with pytest.raises(ProcessingError, match="template box"):
        pick_template(np.zeros((64, 64)), np.zeros((1, 80, 80)), 2.0, 2.0)
    with pytest.raises(ProcessingError, match="2D image"):
        pick_log(np.zeros((4, 64, 64)), 1.0, 10.0, 20.0)


def _relion_log_pick(
    micrograph: FloatArray, workdir: Path, dmin: float, dmax: float
) -> tuple[FloatArray, FloatArray, float]:
    write_map(workdir / "mic.mrc", micrograph.astype(np.float32), PIXEL)
    (workdir / "mics.star").write_text(
        "\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n"
        "_rlnMicrographPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n_rlnAmplitudeContrast #6\n"
        f"1 opticsGroup1 {PIXEL} 300.0 2.7 0.1\n\n\n# version 30001\n\ndata_micrographs\n\nloop_\n"
        "_rlnMicrographName #1\n_rlnOpticsGroup #2\nmic.mrc 1\n\n"
    )
    argv = [
        "relion_autopick", "--i", "mics.star", "--odir", "AutoPick/job004/", "--pickname", "autopick",
        "--LoG", "--LoG_diam_min", str(dmin), "--LoG_diam_max", str(dmax), "--angpix_ref", "-1",
        "--shrink", "0", "--lowpass", "20", "--LoG_adjust_threshold", "0", "--j", "1",
    ]  # fmt: skip
    start = time.perf_counter()
    with open(workdir / "autopick.out", "w") as log:
        done = subprocess.run(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, (workdir / "autopick.out").read_text()[-2000:]
    document = star.read(workdir / "AutoPick" / "job004" / "mic_autopick.star")
    block = next(block for block in document if "rlnCoordinateX" in block.columns)
    x = np.asarray(block.columns["rlnCoordinateX"], dtype=np.float64)
    y = np.asarray(block.columns["rlnCoordinateY"], dtype=np.float64)
    merit = np.asarray(block.columns.get("rlnAutopickFigureOfMerit", np.zeros(len(x))), dtype=np.float64)
    order = np.argsort(-merit, kind="stable")
    return x[order], y[order], seconds


@pytest.mark.skipif(shutil.which("relion_autopick") is None, reason="relion_autopick is not on PATH")
def test_compare_with_relion_log_picker(simulation: Simulation, tmp_path: Path) -> None:
    x, y, seconds = _relion_log_pick(simulation.micrograph, tmp_path, 120.0, 180.0)
    recall, precision, _ = match_picks(x, y, simulation.x, simulation.y, RADIUS)
    top_recall, top_precision, _ = match_picks(
        x[:N_PARTICLES], y[:N_PARTICLES], simulation.x, simulation.y, RADIUS
    )
    start = time.perf_counter()
    ours = pick_log(simulation.micrograph, PIXEL, 120.0, 180.0)
    our_seconds = time.perf_counter() - start
    our_recall, our_precision, _ = match_picks(ours.x, ours.y, simulation.x, simulation.y, RADIUS)
    print(
        f"RELION LoG: {len(x)} picks, recall {recall:.2f}, precision {precision:.2f} (top {N_PARTICLES} by "
        f"figure of merit: {top_recall:.2f}/{top_precision:.2f}), {seconds:.2f} s wall | "
        f"ours: {len(ours)} picks, recall {our_recall:.2f}, precision {our_precision:.2f}, "
        f"{our_seconds:.3f} s wall"
    )
    assert recall >= 0.8  # the synthetic particles are pickable by RELION too
    assert our_recall >= 0.9
