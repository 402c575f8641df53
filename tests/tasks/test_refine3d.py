"""Gold-standard 3D refinement against a simulated ground truth: a random asymmetric blob map projected at
known random poses with known shifts and CTFs, white noise at SNR 0.1, refined from the truth low-passed at
40 Å (as the demo starts from its reference model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.tasks.builtin import refine3d
from scipion_kg.tasks.builtin.fourier import Projector, centered_ifft2, fsc, lowpass, resolution_at
from scipion_kg.tasks.builtin.particles import ParticleCTF
from scipion_kg.tasks.builtin.reconstruct import symmetry_matrices
from scipion_kg.tasks.builtin.refine3d import RefinementResult, angular_distances, refine_3d
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Simulation:
    volume: FloatArray
    images: npt.NDArray[np.float32]
    matrices: FloatArray
    angles: FloatArray
    shifts: FloatArray  # Å, rlnOriginXAngst sense
    ctf: ParticleCTF
    pixel_size: float


def blob_volume(box: int, rng: np.random.Generator, blobs: int = 40) -> FloatArray:
    """Gaussian blobs (sigma 1-2.5 px) at random places within 0.3 box of the centre: asymmetric."""
    axis = np.arange(box) - box // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    volume = np.zeros((box,) * 3)
    for _ in range(blobs):
        direction = rng.normal(size=3)
        centre = direction / np.linalg.norm(direction) * rng.uniform(0, 0.3 * box)
        sigma = rng.uniform(1.0, 2.5)
        distance2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
        volume += rng.uniform(0.5, 1.0) * np.exp(-distance2 / (2 * sigma**2))
    return volume


def simulate(
    box: int, count: int, pixel_size: float, snr: float, seed: int, max_shift_px: float
) -> Simulation:
    """Images I = CTF·P(x + o) + white noise with var(signal) / var(noise) = snr over the whole box."""
    rng = np.random.default_rng(seed)
    volume = blob_volume(box, rng)
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, count)))  # uniform directions on the sphere
    angles = np.stack([rng.uniform(0, 360, count), tilt, rng.uniform(0, 360, count)], axis=1)
    matrices = pivot_matrices(angles)
    shifts = rng.uniform(-max_shift_px, max_shift_px, (count, 2)) * pixel_size
    defocus = rng.uniform(10_000, 25_000, count)
    ctf = ParticleCTF(defocus, defocus - rng.uniform(0, 500, count), rng.uniform(0, 180, count))
    k = (np.arange(box) - box // 2) / (box * pixel_size)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    # I(x) = P(x + o)  <=>  Î(k) = P̂(k) exp(+2πi k·o).
    phase = np.exp(2j * np.pi * (kx * shifts[:, 0, None, None] + ky * shifts[:, 1, None, None]))
    clean = centered_ifft2(
        Projector(volume).project_spectra(matrices) * ctf.ctf_images(box, pixel_size) * phase
    )
    noise = rng.normal(0.0, np.sqrt(clean.var() / snr), clean.shape)
    return Simulation(volume, (clean + noise).astype(np.float32), matrices, angles, shifts, ctf, pixel_size)


def mirrored(volume: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """The map mirrored through the plane x = 0 (index box // 2): V'(x, y, z) = V(-x, y, z)."""
    return np.roll(volume[:, :, ::-1], 1, axis=2)


@pytest.fixture(scope="module")
def refined() -> tuple[Simulation, RefinementResult]:
    """The demo's SMALL case: 400 particles, 64 px at 2.8 Å/px, SNR 0.1, C1, global search from 40 Å."""
    simulation = simulate(box=64, count=400, pixel_size=2.8, snr=0.1, seed=1, max_shift_px=3.0)
    initial = lowpass(simulation.volume, 40.0, simulation.pixel_size, edge=2)
    result = refine_3d(
        simulation.images,
        simulation.pixel_size,
        simulation.ctf,
        initial,
        max_shift_px=4,
        mask_diameter=0.78 * 64 * 2.8,
        seed=0,
    )
    return simulation, result


def test_refinement_recovers_the_true_poses(refined: tuple[Simulation, RefinementResult]) -> None:
    simulation, result = refined
    errors = angular_distances(result.matrices, simulation.matrices)
    assert np.median(errors) <= 5.0  # measured 4.1° (half maps from the true poses: 12.6 Å)
    assert np.percentile(errors, 90) <= 15.0  # measured 7.6°: no population stuck in a wrong basin
    shift_errors = np.linalg.norm(result.shifts - simulation.shifts, axis=1) / simulation.pixel_size
    assert np.median(shift_errors) < 1.0  # px; measured 0.25
    # The angles are pivot Euler angles: through the shared converter they give back the same matrices.
    np.testing.assert_allclose(pivot_matrices(result.angles), result.matrices, atol=1e-9)


def test_half_map_resolution_is_honest(refined: tuple[Simulation, RefinementResult]) -> None:
    simulation, result = refined
    box, pixel = 64, simulation.pixel_size
    assert 2 * pixel <= result.resolution <= 20.0  # measured 12.8 Å; Nyquist 5.6 Å
    assert result.resolution == pytest.approx(resolution_at(result.fsc, 0.143, box, pixel))
    # FSC(map, truth) = 0.5 where the half-map FSC = 0.143 (Rosenthal & Henderson 2003) if the halves are
    # independent: the truth must agree with the estimate, neither much worse nor much better.
    truth = resolution_at(fsc(result.map, simulation.volume), 0.5, box, pixel)
    assert result.resolution / 1.5 <= truth <= 1.5 * result.resolution  # measured 13.7 vs 12.8 Å


def test_mirrored_map_does_not_match_the_truth(refined: tuple[Simulation, RefinementResult]) -> None:
    # A wrong hand (e.g. transposed pivot matrices) would fit the mirror image of the truth instead.
    simulation, result = refined
    box, pixel = 64, simulation.pixel_size
    proper = resolution_at(fsc(result.map, simulation.volume), 0.5, box, pixel)
    mirror = resolution_at(fsc(mirrored(result.map), simulation.volume), 0.5, box, pixel)
    assert mirror > 2.0 * proper  # measured 38.5 vs 13.7 Å (the truth against its own mirror: 38 Å)


def test_half_sets_are_disjoint_balanced_and_iterations_are_recorded(
    refined: tuple[Simulation, RefinementResult],
) -> None:
    _, result = refined
    assert set(np.unique(result.half_set)) == {1, 2}
    assert abs(int((result.half_set == 1).sum()) - int((result.half_set == 2).sum())) <= 1
    assert result.half_maps[0].shape == result.half_maps[1].shape == result.map.shape == (64, 64, 64)
    assert result.half_maps[0].dtype == np.float32
    assert (
        result.angles.shape == (400, 3) and result.shifts.shape == (400, 2) and result.scores.shape == (400,)
    )
    steps = [record.angular_step for record in result.iterations]
    assert result.iterations[0].search == "global" and steps[0] == 15.0
    assert steps == sorted(steps, reverse=True) and steps[-1] == pytest.approx(1.875)
    assert result.iterations[-1].resolution == result.resolution
    assert result.iterations[-1].resolution < result.iterations[0].resolution
    assert all(record.seconds >= 0 for record in result.iterations)


def test_refinement_is_deterministic_and_starts_locally_from_given_angles() -> None:
    simulation = simulate(box=48, count=150, pixel_size=3.0, snr=1.0, seed=5, max_shift_px=2.0)
    rng = np.random.default_rng(7)
    # Start 6° away from the truth, about random axes.
    axes = rng.normal(size=(150, 3))
    wobble = Rotation.from_rotvec(
        axes / np.linalg.norm(axes, axis=1, keepdims=True) * np.radians(6.0)
    ).as_matrix()
    start = Rotation.from_matrix(np.transpose(wobble @ simulation.matrices, (0, 2, 1))).as_euler(
        "ZYZ", degrees=True
    )
    initial = lowpass(simulation.volume, 20.0, simulation.pixel_size, edge=2)
    calls: list[tuple[int, int]] = []
    runs = [
        refine_3d(
            simulation.images,
            simulation.pixel_size,
            simulation.ctf,
            initial,
            initial_lowpass=20.0,
            initial_angular_step=3.75,
            n_iterations=3,
            seed=seed,
            initial_angles=start,
            initial_shifts=simulation.shifts,
            progress=lambda done, total: calls.append((done, total)),
        )
        for seed in (3, 3, 4)
    ]
    first, again, other = runs
    np.testing.assert_array_equal(first.angles, again.angles)
    np.testing.assert_array_equal(first.map, again.map)
    np.testing.assert_array_equal(first.half_set, again.half_set)
    assert not np.array_equal(first.half_set, other.half_set)
    assert [record.search for record in first.iterations] == ["local"] * 3
    assert calls[:4] == [(1, 3), (2, 3), (3, 3), (3, 3)]
    before = np.median(angular_distances(pivot_matrices(start), simulation.matrices))
    after = np.median(angular_distances(first.matrices, simulation.matrices))
    assert before == pytest.approx(6.0) and after < 3.0  # measured 1.9°


@pytest.mark.parametrize("symmetry", ["C1", "C4", "D3"])
def test_global_grid_covers_the_asymmetric_unit(symmetry: str) -> None:
    step = 15.0
    grid = refine3d._orientation_grid(step, symmetry_matrices(symmetry))
    full = refine3d._orientation_grid(step, symmetry_matrices("C1"))
    assert len(grid) == pytest.approx(len(full) / len(symmetry_matrices(symmetry)), rel=0.15)
    poses = Rotation.random(300, random_state=11).as_matrix()
    nearest = np.array(
        [angular_distances(np.repeat(pose[None], len(grid), 0), grid, symmetry).min() for pose in poses]
    )
    assert nearest.max() <= step  # measured at worst 0.76 (C1) to 0.91 (D3) step, median 0.5 step


def test_angular_distances_known_answers() -> None:
    about_z = Rotation.from_euler("z", [[10.0], [95.0]], degrees=True).as_matrix()
    identity = np.repeat(np.eye(3)[None], 2, axis=0)
    np.testing.assert_allclose(angular_distances(about_z, identity), [10.0, 95.0], atol=1e-9)
    np.testing.assert_allclose(angular_distances(about_z, identity, "C4"), [10.0, 5.0], atol=1e-9)


def test_bad_inputs_name_the_parameter() -> None:
    images = np.zeros((10, 32, 32), dtype=np.float32)
    with pytest.raises(ProcessingError, match="initial_map"):
        refine_3d(images, 2.0, None, np.zeros((30, 30, 30)))
    with pytest.raises(ProcessingError, match="ParticleCTF has 3 rows"):
        refine_3d(images, 2.0, ParticleCTF(np.ones(3), np.ones(3), np.zeros(3)), np.zeros((32, 32, 32)))
    with pytest.raises(ProcessingError, match="even box"):
        refine_3d(np.zeros((10, 33, 33)), 2.0, None, np.zeros((33, 33, 33)))
    with pytest.raises(ProcessingError, match="angular steps"):
        refine_3d(images, 2.0, None, np.zeros((32, 32, 32)), final_angular_step=20.0)
    with pytest.raises(ProcessingError, match="symmetry"):
        refine_3d(images, 2.0, None, np.zeros((32, 32, 32)), symmetry="X7")


def test_ctf_parameters_and_ctf_images_are_compared_alike() -> None:
    # ParticleCTF is evaluated only at the compared frequencies; CTF images are sampled there.
    simulation = simulate(box=32, count=6, pixel_size=3.0, snr=1.0, seed=2, max_shift_px=1.0)
    images = simulation.ctf.ctf_images(32, 3.0)
    from_parameters = refine3d._ParticleData(simulation.images, simulation.ctf, 3.0, 14.0)
    from_images = refine3d._ParticleData(simulation.images, images, 3.0, 14.0)
    np.testing.assert_allclose(from_parameters.ctf2, from_images.ctf2, atol=1e-6)
    np.testing.assert_allclose(from_parameters.spectra, from_images.spectra, rtol=1e-5, atol=1e-4)
