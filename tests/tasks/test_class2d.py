"""2D classification against a simulated ground truth: known map, known view groups, known psi and shifts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.tasks.builtin.class2d import (
    Class2DResult,
    classify_2d,
    plot_class_averages,
    rotate_images,
    select_classes,
)
from scipion_kg.tasks.builtin.ctf import CTFParameters, ctf_image
from scipion_kg.tasks.builtin.fourier import (
    Projector,
    centered_fft2,
    centered_ifft2,
    fourier_shift_images,
    lowpass,
)
from scipion_kg.tasks.builtin.particles import ParticleCTF
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

BOX = 48
PIXEL = 3.5
VIEWS = [(10.0, 60.0), (100.0, 80.0), (200.0, 45.0), (300.0, 100.0), (150.0, 130.0)]  # (rot, tilt) per group
PER_VIEW = 40
N_NOISE = 40
NOISE_GROUP = len(VIEWS)


def blob_volume(size: int, rng: np.random.Generator, n_blobs: int = 20) -> npt.NDArray[np.float64]:
    """A smooth asymmetric map: Gaussian blobs scattered in a rotated flat ellipsoidal slab."""
    grid = np.arange(size) - size // 2
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    centres = rng.uniform(-1, 1, (n_blobs, 3)) * np.array([0.28, 0.16, 0.08]) * size
    centres = centres @ Rotation.from_euler("ZYZ", rng.uniform(0, 180, 3), degrees=True).as_matrix().T
    volume = np.zeros((size,) * 3)
    for (cx, cy, cz), height in zip(centres, rng.uniform(0.5, 1.5, n_blobs), strict=True):
        volume += height * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * 2.5**2))
    return volume


@dataclass
class Simulation:
    volume: npt.NDArray[np.float64]
    images: npt.NDArray[np.float32]
    angles: npt.NDArray[np.float64]  # (n, 3) rot, tilt, psi
    origins: npt.NDArray[np.float64]  # (n, 2) px, rlnOriginX sense
    group: npt.NDArray[np.int64]  # view group, NOISE_GROUP for pure noise
    ctf: ParticleCTF


def simulate(seed: int = 1, snr: float = 0.1) -> Simulation:
    rng = np.random.default_rng(seed)
    volume = blob_volume(BOX, rng)
    group = np.repeat(np.arange(len(VIEWS)), PER_VIEW)
    n = len(group)
    views = np.array(VIEWS)[group]
    angles = np.column_stack([views + rng.uniform(-3, 3, (n, 2)), rng.uniform(0, 360, n)])
    origins = rng.uniform(-3, 3, (n, 2))
    total = n + N_NOISE
    defocus = rng.uniform(10000, 25000, total)
    ctf = ParticleCTF(
        defocus, defocus - rng.uniform(0, 500, total), rng.uniform(0, 180, total), np.zeros(total)
    )
    projections = Projector(volume).project(pivot_matrices(angles))
    signal = centered_ifft2(centered_fft2(projections) * ctf.subset(np.arange(n)).ctf_images(BOX, PIXEL))
    signal = fourier_shift_images(signal, -origins)  # I(x) = P(x + o)
    sigma = np.sqrt(signal.var() / snr)
    images = np.concatenate(
        [signal + rng.normal(0, sigma, signal.shape), rng.normal(0, sigma, (N_NOISE, BOX, BOX))]
    )
    images = (images - images.mean()) / images.std()
    return Simulation(
        volume,
        images.astype(np.float32),
        angles,
        origins,
        np.concatenate([group, np.full(N_NOISE, NOISE_GROUP)]),
        ctf,
    )


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate()


@pytest.fixture(scope="module")
def result(simulation: Simulation) -> Class2DResult:
    return classify_2d(simulation.images, PIXEL, len(VIEWS) + 1, n_iterations=8, ctf=simulation.ctf, seed=0)


def majority(result: Class2DResult, simulation: Simulation, cls: int) -> tuple[int, npt.NDArray[np.bool_]]:
    members = result.assignments == cls
    group = int(np.bincount(simulation.group[members], minlength=NOISE_GROUP + 1).argmax())
    return group, members & (simulation.group == group)


def test_classes_are_view_groups(result: Class2DResult, simulation: Simulation) -> None:
    assert result.averages.shape == (len(VIEWS) + 1, BOX, BOX)
    assert result.assignments.min() >= 1 and result.assignments.max() <= len(VIEWS) + 1
    assert result.class_sizes.sum() == len(simulation.images)
    groups = set()
    for cls in range(1, result.n_classes + 1):
        group, members = majority(result, simulation, cls)
        assert members.sum() >= 0.9 * result.class_sizes[cls - 1], f"class {cls} mixes view groups"
        groups.add(group)
    assert groups == set(range(NOISE_GROUP + 1)), "every view group (and the noise) should get its own class"
    assert len(result.log) == 8 and result.log[0].changes == len(simulation.images)
    assert result.log[-1].changes <= 5


def test_class_averages_match_true_projections(result: Class2DResult, simulation: Simulation) -> None:
    """processing.md §5: normalised CC >= 0.8 with the best true projection (5° psi grid), 20 Å low-pass."""
    projector = Projector(simulation.volume)
    grid = np.array([[rot, tilt, psi] for rot, tilt in VIEWS for psi in np.arange(0.0, 360.0, 5.0)])
    truth = np.array([lowpass(p, 20.0, PIXEL, 2.0) for p in projector.project(pivot_matrices(grid))])
    truth -= truth.mean(axis=(1, 2), keepdims=True)
    for cls in range(1, result.n_classes + 1):
        group, _ = majority(result, simulation, cls)
        if group == NOISE_GROUP:
            continue
        average = lowpass(result.averages[cls - 1].astype(np.float64), 20.0, PIXEL, 2.0)
        average -= average.mean()
        # best over the 5° psi grid and over translations (circular cross-correlation)
        cross = np.fft.ifft2(np.fft.fft2(truth) * np.conj(np.fft.fft2(average))).real.max(axis=(1, 2))
        cc = cross / (np.linalg.norm(average) * np.linalg.norm(truth, axis=(1, 2)))
        assert cc.max() >= 0.8, f"class {cls}: best CC {cc.max():.3f}"
        best_group = int(cc.argmax()) // 72
        assert best_group == group, (
            f"class {cls} looks like view {best_group}, its particles are view {group}"
        )


def test_psi_and_shifts_agree_with_truth_up_to_class_pose(
    result: Class2DResult, simulation: Simulation
) -> None:
    """Model I(x) = R(Rz(ψ)(x + o)): true ψ - estimated ψ is constant per class, and
    Rz(ψ_true)(o_true - o_est) is a constant vector (the class average's own offset)."""
    for cls in range(1, result.n_classes + 1):
        group, members = majority(result, simulation, cls)
        if group == NOISE_GROUP:
            continue
        members = members[: len(simulation.angles)]  # the noise images come last and have no pose
        true_psi = simulation.angles[members, 2]
        difference = np.radians(true_psi - result.psi[: len(members)][members])
        mean = np.angle(np.exp(1j * difference).mean())
        deviation = np.degrees(np.angle(np.exp(1j * (difference - mean))))
        assert np.mean(np.abs(deviation) < 15) >= 0.9, f"class {cls}: psi spread {np.sort(np.abs(deviation))}"
        assert np.median(np.abs(deviation)) < 6
        # The opposite rotation sense (ψ_true + ψ_est constant) must not look consistent.
        wrong = np.radians(true_psi + result.psi[: len(members)][members])
        assert np.abs(np.exp(1j * wrong).mean()) < 0.6
        # Shifts: o_true - o_est = Rz(-ψ_true) c for one vector c per class.
        delta = simulation.origins[members] - result.shifts[: len(members)][members] / PIXEL
        angle = np.radians(true_psi)
        c = np.column_stack(
            [
                np.cos(angle) * delta[:, 0] - np.sin(angle) * delta[:, 1],
                np.sin(angle) * delta[:, 0] + np.cos(angle) * delta[:, 1],
            ]
        )
        residual = np.sqrt(((c - np.median(c, axis=0)) ** 2).sum(axis=1))
        assert np.median(residual) < 0.8, f"class {cls}: shift residuals {np.sort(residual)}"
        assert np.abs(result.shifts[: len(members)][members] / PIXEL).max() <= 4.0 + 1e-9


def test_selection_drops_the_noise_class(result: Class2DResult, simulation: Simulation) -> None:
    noise_class = next(
        cls for cls in range(1, result.n_classes + 1) if majority(result, simulation, cls)[0] == NOISE_GROUP
    )
    particle_classes = [c for c in range(1, result.n_classes + 1) if c != noise_class]
    assert select_classes(result) == particle_classes  # default: class score >= 0.25 x the median
    everything = list(range(1, result.n_classes + 1))
    assert select_classes(result, min_score_ratio=None) == everything
    assert select_classes(result, top_fraction=len(VIEWS) / (len(VIEWS) + 1), min_score_ratio=None) == (
        particle_classes
    )
    assert select_classes(result, min_particles=len(simulation.images)) == []
    # The particles' classes are resolved to better than 25 Å (Nyquist is 7 Å; 20 Å low-pass in the CC test).
    assert select_classes(result, max_resolution=25.0, min_score_ratio=None) in (particle_classes, everything)


def test_deterministic_for_a_seed(simulation: Simulation) -> None:
    subset = np.arange(0, len(simulation.images), 3)
    runs = [
        classify_2d(
            simulation.images[subset], PIXEL, 3, n_iterations=2, ctf=simulation.ctf.subset(subset), seed=7
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].assignments, runs[1].assignments)
    np.testing.assert_array_equal(runs[0].psi, runs[1].psi)
    np.testing.assert_array_equal(runs[0].shifts, runs[1].shifts)
    np.testing.assert_array_equal(runs[0].averages, runs[1].averages)


def test_rotate_images_follows_the_pivot_convention() -> None:
    """rotate_images(P(0,0,0), ψ) equals the projection at pose (0, 0, ψ): P_ψ(x) = P_0(Rz(ψ) x)."""
    volume = blob_volume(32, np.random.default_rng(3))
    projector = Projector(volume)
    flat = projector.project(pivot_matrices(np.array([[0.0, 0.0, 0.0]])))[0]
    turned = projector.project(pivot_matrices(np.array([[0.0, 0.0, 30.0]])))[0]
    mine = rotate_images(flat[None], 30.0)[0]
    other = rotate_images(flat[None], -30.0)[0]
    assert np.corrcoef(mine.ravel(), turned.ravel())[0, 1] > 0.99
    assert np.corrcoef(other.ravel(), turned.ravel())[0, 1] < 0.9


def test_gallery_png_is_deterministic(result: Class2DResult, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "classes.png", tmp_path / "classes.png"
    plot_class_averages(result, first, columns=3)
    plot_class_averages(result, second, columns=3)
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG") and data == second.read_bytes()


def test_particle_ctf_matches_single_image_ctf() -> None:
    ctf = ParticleCTF(np.array([12000.0, 20000.0]), np.array([11000.0, 19500.0]), np.array([30.0, 100.0]))
    assert len(ctf) == 2 and np.all(ctf.phase_shift == 0)
    images = ctf.subset([1]).ctf_images(32, 2.0)
    expected = ctf_image(CTFParameters(20000.0, 19500.0, 100.0), 32, 2.0)
    np.testing.assert_allclose(images[0], expected, atol=1e-6)
    with pytest.raises(ProcessingError, match="defocus_v"):
        ParticleCTF(np.ones(3), np.ones(2), np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_classes": 0}, "n_classes"),
        ({"n_classes": 2, "max_shift_px": 40}, "max_shift_px"),
        ({"n_classes": 2, "lowpass": 200.0}, "lowpass"),
        ({"n_classes": 2, "mask_diameter": 1000.0}, "mask diameter"),
    ],
)
def test_bad_parameters_are_named(simulation: Simulation, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ProcessingError, match=message):
        classify_2d(simulation.images[:10], PIXEL, **kwargs)
    with pytest.raises(ProcessingError, match="ctf has"):
        classify_2d(simulation.images[:10], PIXEL, 2, ctf=simulation.ctf)


def test_relion_classes_are_ranked_by_resolution_then_size() -> None:
    from scipion_kg.tasks.classification_2d import rank_relion_classes

    distribution = np.array([0.4, 0.0, 0.3, 0.2, 0.1])
    resolution = np.array([12.0, 8.0, 9.0, 9.0, 30.0])  # class 2 is empty: never kept, however sharp
    assert rank_relion_classes(distribution, resolution, 0.5) == [3, 4]  # 0.5 x 4 filled classes
    assert rank_relion_classes(distribution, resolution, 0.75) == [1, 3, 4]
    assert rank_relion_classes(distribution, resolution, 0.01) == [3]  # at least one; ties by size
    with pytest.raises(ProcessingError, match="every class empty"):
        rank_relion_classes(np.zeros(3), resolution[:3], 0.5)
