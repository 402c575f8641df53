"""Direct Fourier reconstruction against the ground truth of small deterministic simulations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.tasks.builtin.ctf import ctf_2d
from scipion_kg.tasks.builtin.fourier import (
    Projector,
    centered_fft2,
    centered_ifft2,
    fourier_shift_images,
    frequency_grid_2d,
    fsc,
    lowpass,
    resolution_at,
)
from scipion_kg.tasks.builtin.reconstruct import FourierAccumulator, reconstruct, symmetry_matrices
from scipion_kg.tasks.builtin.simulate import ground_truth_map
from scipy import ndimage
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

FloatArray = npt.NDArray[np.float64]
BOX = 48
PIXEL = 2.0


def blob_map(box: int = BOX, seed: int = 0) -> FloatArray:
    """An asymmetric map: random Gaussian blobs plus fine random texture inside a sphere."""
    rng = np.random.default_rng(seed)
    volume = np.zeros((box, box, box))
    for _ in range(14):
        centre = rng.integers(box // 4, 3 * box // 4, 3)
        volume[tuple(centre)] += rng.uniform(0.5, 1.0)
    volume = ndimage.gaussian_filter(volume, 1.0)
    axis = np.arange(box) - box // 2
    radius = np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    texture = ndimage.gaussian_filter(rng.standard_normal((box,) * 3), 0.7) * (radius < box // 3)
    volume = volume / volume.max() + 0.5 * texture / texture.std()
    # Band-limited inside the Nyquist sphere (a reconstruction has nothing in the corners of the cube).
    return np.asarray(lowpass(volume, 2.0 * PIXEL * box / (box - 4), PIXEL, edge=4.0), dtype=np.float64)


@dataclass(frozen=True)
class CTFChunkParameters:
    """Per-image CTF parameters in the shape of ``reconstruct.CTFParameterSet``."""

    defocus_u: FloatArray
    defocus_v: FloatArray
    defocus_angle: FloatArray
    voltage: float
    spherical_aberration: float
    amplitude_contrast: float
    phase_shift: FloatArray | None = None


def simulated_defocus(n: int, seed: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Defocus U, V (Å) and astigmatism angles (°) of the simulated particles."""
    rng = np.random.default_rng(seed + 1000)
    defocus = rng.uniform(8000.0, 25000.0, n)
    return defocus, defocus - 400.0, rng.uniform(0, 180, n)


def simulate(
    volume: FloatArray,
    n: int,
    seed: int,
    *,
    ctf: bool = False,
    noise: float = 0.0,
    max_shift: float = 4.0,
    matrices: FloatArray | None = None,
    pixel: float = PIXEL,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Particles I(x) = CTF ⊛ P(x + o) + noise with known poses A, shifts o (Å) and CTF values."""
    rng = np.random.default_rng(seed)
    box = volume.shape[0]
    if matrices is None:
        matrices = Rotation.random(n, random_state=seed).as_matrix().transpose(0, 2, 1)
    projections = Projector(volume).project(matrices)
    shifts = rng.uniform(-max_shift, max_shift, (n, 2)) * pixel
    images = fourier_shift_images(projections, -shifts / pixel)  # out(x) = in(x + o)
    ctf_values = None
    if ctf:
        kx, ky = frequency_grid_2d(box, pixel)
        ctf_values = ctf_2d(kx, ky, *simulated_defocus(n, seed), 300.0, 2.7, 0.1)
        images = centered_ifft2(centered_fft2(images) * ctf_values)
    if noise:
        images = images + rng.normal(0.0, noise, images.shape)
    return images, matrices, shifts, ctf_values


def shell_of(fraction_of_nyquist: float, box: int = BOX) -> int:
    return int(fraction_of_nyquist * box / 2)


def test_noise_free_projections_give_back_the_map() -> None:
    truth = blob_map()
    images, matrices, shifts, _ = simulate(truth, 1500, seed=1)
    result = reconstruct(images, matrices, shifts, PIXEL)
    assert result.shape == truth.shape and result.dtype == np.float32
    curve = fsc(result, truth)
    assert curve[1 : shell_of(0.8) + 1].min() > 0.98
    # Same scale as the map that was projected (a missing gridding correction or normalisation shows here).
    slope = float((result * truth).sum() / (truth * truth).sum())
    assert slope == pytest.approx(1.0, abs=0.03)
    # Centre of mass in the same voxel: an off-by-one in the crop or the shift would move it.
    com_truth = np.array(ndimage.center_of_mass(np.clip(truth, 0, None)))
    com_result = np.array(ndimage.center_of_mass(np.clip(result, 0, None)))
    assert np.abs(com_truth - com_result).max() < 0.1


def test_wrong_hand_transposed_pose_and_shift_sign_all_collapse() -> None:
    truth = blob_map(seed=2)
    images, matrices, shifts, _ = simulate(truth, 1200, seed=3)
    good = fsc(reconstruct(images, matrices, shifts, PIXEL), truth)
    band = slice(shell_of(0.5), shell_of(0.8))  # blobs keep some low-resolution likeness under any error
    assert good[band].mean() > 0.97
    mirrored = fsc(reconstruct(images, matrices, shifts, PIXEL)[::-1], truth)
    assert mirrored[band].mean() < 0.35
    transposed = fsc(reconstruct(images, matrices.transpose(0, 2, 1), shifts, PIXEL), truth)
    assert transposed[band].mean() < 0.35
    negated = fsc(reconstruct(images, matrices, -shifts, PIXEL), truth)
    assert negated[band].mean() < 0.35


def test_ctf_and_noise_against_truth_and_half_maps(shared_data: Path) -> None:
    box, pixel = 64, 3.0
    truth = ground_truth_map(shared_data / "models" / "1BD2.cif.gz", box, pixel).astype(np.float64)
    signal = Projector(truth).project(Rotation.random(50, random_state=0).as_matrix()).std()
    images, matrices, shifts, ctf_values = simulate(
        truth, 2000, seed=4, ctf=True, noise=5.0 * signal, pixel=pixel
    )
    full = reconstruct(images, matrices, shifts, pixel, ctf_values)
    halves = [
        reconstruct(images[part], matrices[part], shifts[part], pixel, ctf_values[part])  # type: ignore[index]
        for part in (slice(0, None, 2), slice(1, None, 2))
    ]
    versus_truth = fsc(full, truth)
    half = fsc(*halves)
    # Rosenthal & Henderson 2003: a map from both halves correlates with the truth as √(2 FSC/(1 + FSC)).
    expected = np.sqrt(2.0 * np.clip(half, 0, None) / (1.0 + np.clip(half, 0, None)))
    measured_res = resolution_at(versus_truth, 0.5, box, pixel)
    expected_res = resolution_at(expected, 0.5, box, pixel)
    assert measured_res == pytest.approx(expected_res, rel=0.15)
    assert 8.0 < measured_res < 16.0
    # The CTF must be corrected: without it the map correlates badly with the truth at mid frequencies.
    uncorrected = fsc(reconstruct(images, matrices, shifts, pixel), truth)
    mid = slice(8, 20)
    assert versus_truth[mid].mean() > uncorrected[mid].mean() + 0.3


def quarter_turn(volume: npt.NDArray[np.floating]) -> FloatArray:
    """The map turned by 90° about the z axis through voxel (b/2, b/2) (np.rot90 turns about (b-1)/2)."""
    return np.asarray(np.roll(np.rot90(volume, 1, axes=(1, 2)), 1, axis=1), dtype=np.float64)


def test_cn_symmetry_fills_the_asymmetric_unit() -> None:
    base = blob_map(seed=5)
    turned = [base]
    for _ in range(3):
        turned.append(quarter_turn(turned[-1]))
    truth = np.mean(turned, axis=0)  # C4 about z
    # Projection directions within about 50° of the x axis: alone they leave a missing cone about x, which
    # the three other copies of the C4 group fill.
    rng = np.random.default_rng(6)
    n = 800
    tilt = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(140)), np.cos(np.radians(40)), n)))
    angles = np.column_stack([rng.uniform(-50, 50, n), tilt, rng.uniform(0, 360, n)])
    matrices = Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().transpose(0, 2, 1)
    images, matrices, shifts, _ = simulate(truth, n, seed=6, matrices=matrices)
    mid = slice(shell_of(0.3), shell_of(0.8))
    plain = fsc(reconstruct(images, matrices, shifts, PIXEL), truth)
    symmetric_map = reconstruct(images, matrices, shifts, PIXEL, symmetry="C4")
    symmetric = fsc(symmetric_map, truth)
    assert symmetric[1 : shell_of(0.8) + 1].min() > 0.99
    assert plain[mid].mean() < 0.97  # the missing cone
    rotated = quarter_turn(symmetric_map)
    assert np.abs(rotated - symmetric_map).max() < 0.02 * np.abs(symmetric_map).max()


def test_symmetry_groups() -> None:
    c3 = symmetry_matrices("C3")
    assert c3.shape == (3, 3, 3)
    assert np.allclose(c3[0], np.eye(3))
    assert np.allclose(c3[1] @ [1.0, 0.0, 0.0], [-0.5, np.sqrt(3) / 2, 0.0])
    d2 = symmetry_matrices("d2")
    assert d2.shape == (4, 3, 3) and np.allclose(np.linalg.det(d2), 1.0)
    with pytest.raises(ProcessingError, match="symmetry"):
        symmetry_matrices("X5")


def test_chunked_accumulators_merge_to_the_one_shot_result() -> None:
    truth = blob_map(seed=7)
    images, matrices, shifts, ctf_values = simulate(truth, 300, seed=8, ctf=True)
    assert ctf_values is not None
    defocus = simulated_defocus(300, seed=8)
    one_shot = reconstruct(images, matrices, shifts, PIXEL, ctf_values, threads=1, chunk_size=1000)
    first, second = FourierAccumulator(BOX), FourierAccumulator(BOX)
    for start in range(0, 300, 70):
        target = first if start < 150 else second
        stop = start + 70
        target.insert(
            images[start:stop], matrices[start:stop], shifts[start:stop], PIXEL, ctf_values[start:stop]
        )
    first.merge(second)
    assert first.count == 300
    assert np.allclose(first.volume(), one_shot, atol=1e-4 * np.abs(one_shot).max())
    streamed = reconstruct(images, matrices, shifts, PIXEL, lambda a, b: ctf_values[a:b], chunk_size=64)
    assert np.allclose(streamed, one_shot, atol=1e-4 * np.abs(one_shot).max())
    parameters = CTFChunkParameters(defocus[0], defocus[1], defocus[2], 300.0, 2.7, 0.1)
    from_parameters = reconstruct(images, matrices, shifts, PIXEL, parameters, chunk_size=64)
    assert np.allclose(from_parameters, one_shot, atol=1e-4 * np.abs(one_shot).max())
    ticks: list[tuple[int, int]] = []
    reconstruct(images, matrices, shifts, PIXEL, chunk_size=100, progress=lambda d, t: ticks.append((d, t)))
    assert ticks[-1] == (300, 300) and len(ticks) == 3


def test_ctf_parameters_equal_ctf_images() -> None:
    """The CTF evaluated from parameters at the inserted frequencies equals the CTF images (with a phase
    shift, and at the kx = +b/2 frequency that the centred grid stores only as -b/2)."""
    rng = np.random.default_rng(9)
    n, box = 120, 32
    volume = rng.standard_normal((box,) * 3)
    matrices = Rotation.random(n, random_state=9).as_matrix()
    images = Projector(volume).project(matrices)
    u, v, angle = simulated_defocus(n, seed=9)
    phase = rng.uniform(0.0, 90.0, n)
    kx, ky = frequency_grid_2d(box, PIXEL)
    ctf_values = ctf_2d(kx, ky, u, v, angle, 200.0, 2.0, 0.07, phase)
    images = centered_ifft2(centered_fft2(images) * ctf_values)
    parameters = CTFChunkParameters(u, v, angle, 200.0, 2.0, 0.07, phase)
    shifts = np.zeros((n, 2))
    from_images = reconstruct(images, matrices, shifts, PIXEL, ctf_values)
    from_parameters = reconstruct(images, matrices, shifts, PIXEL, parameters, chunk_size=50)
    assert np.allclose(from_parameters, from_images, atol=1e-5 * np.abs(from_images).max())


def test_bad_inputs_are_reported() -> None:
    images = np.zeros((4, 16, 16))
    poses = np.tile(np.eye(3), (4, 1, 1))
    shifts = np.zeros((4, 2))
    with pytest.raises(ProcessingError, match="matrices"):
        reconstruct(images, poses[:3], shifts, 1.0)
    with pytest.raises(ProcessingError, match="shifts_angstrom"):
        reconstruct(images, poses, shifts[:, :1], 1.0)
    with pytest.raises(ProcessingError, match="ctf"):
        reconstruct(images, poses, shifts, 1.0, np.ones((4, 8, 8)))
    with pytest.raises(ProcessingError, match="pixel_size"):
        reconstruct(images, poses, shifts, 0.0)
    with pytest.raises(ProcessingError, match="square"):
        reconstruct(np.zeros((4, 16, 12)), poses, shifts, 1.0)
    with pytest.raises(ProcessingError, match="merge"):
        FourierAccumulator(16).merge(FourierAccumulator(16, padding=1))
    with pytest.raises(ProcessingError, match="no image"):
        FourierAccumulator(16).volume()
