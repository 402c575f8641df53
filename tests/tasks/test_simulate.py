"""Ground-truth simulation: the map against its atoms, the movies against their known drift, CTF, positions
and poses. Expected values come from the atomic model, from RELION's CTF formula written out here, and from
the shared projector; never from the simulator itself."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np
import numpy.typing as npt
import pytest
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.tasks.builtin.ctf import electron_wavelength
from scipion_kg.tasks.builtin.fourier import Projector, fourier_shift_images
from scipion_kg.tasks.builtin.simulate import (
    SMALL,
    STANDARD,
    SimulatedMovie,
    SimulationSettings,
    ground_truth_map,
    random_poses,
    simulate_movies,
)
from scipy import ndimage

from scipion_kg.errors import ProcessingError

FloatArray = npt.NDArray[np.float64]

# A small world: BPTI (5PTI, r_max 19.4 Å) in a 32 px box at 2 Å, one 256 px micrograph of 4 frames.
TINY = SimulationSettings(
    n_micrographs=1,
    micrograph_size=256,
    particles_per_micrograph=20,
    box=32,
    pixel_size=2.0,
    n_frames=4,
    dose_per_frame=3.0,
    drift_px=6.0,
    seed=7,
)
BPTI_RADIUS = 19.37  # Å, farthest heavy atom from the centre of mass of 5PTI
KV, CS, Q0 = 300.0, 2.7, 0.1


def _atoms(path: Path) -> tuple[gemmi.Model, FloatArray]:
    structure = gemmi.read_structure(str(path))
    structure.setup_entities()
    structure.remove_ligands_and_waters()
    structure.remove_hydrogens()
    model = structure[0]
    centre = model.calculate_center_of_mass()
    return model, np.array([centre.x, centre.y, centre.z])


@functools.cache
def _map(path: Path, box: int, pixel_size: float) -> npt.NDArray[np.float32]:
    return np.asarray(ground_truth_map(path, box, pixel_size), dtype=np.float32)


@functools.cache
def _movie(path: Path, settings: SimulationSettings) -> SimulatedMovie:
    volume = _map(path, settings.box, settings.pixel_size)
    return next(simulate_movies(volume, settings))


def _bpti(shared_data: Path) -> Path:
    return shared_data / "models" / "5PTI.cif.gz"


def _relion_ctf(size: int, pixel_size: float, u: float, v: float, angle: float) -> FloatArray:
    """RELION's getCTF (+sin χ, χ = πλΔf k² − π/2 Cs λ³ k⁴ + arctan(Q0/√(1−Q0²))) on a centred grid."""
    k = (np.arange(size) - size // 2) / (size * pixel_size)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    wavelength = electron_wavelength(KV)
    defocus = 0.5 * (u + v + (u - v) * np.cos(2 * (np.arctan2(ky, kx) - np.radians(angle))))
    k2 = kx**2 + ky**2
    chi = (
        np.pi * wavelength * defocus * k2
        - 0.5 * np.pi * CS * 1e7 * wavelength**3 * k2**2
        + np.arctan(Q0 / np.sqrt(1 - Q0**2))
    )
    return np.asarray(np.sin(chi))


def _first_zero(defocus: float) -> float:
    """Spatial frequency (1/Å) of the first CTF zero, χ = π."""
    k = np.linspace(1e-4, 0.3, 300_000)
    wavelength = electron_wavelength(KV)
    chi = (
        np.pi * wavelength * defocus * k**2
        - 0.5 * np.pi * CS * 1e7 * wavelength**3 * k**4
        + np.arctan(Q0 / np.sqrt(1 - Q0**2))
    )
    return float(k[np.argmax(chi >= np.pi)])


def _aligned_sum(movie: SimulatedMovie, sign: float = 1.0) -> FloatArray:
    """Sum of the frames each shifted by -sign x drift (sign = 1 undoes the true drift)."""
    return np.asarray(fourier_shift_images(movie.frames.astype(np.float64), -sign * movie.drift).sum(axis=0))


def _power_minimum(
    image: FloatArray, pixel_size: float, expected: float, sector: tuple[float, float] | None = None
) -> float:
    """Frequency of the power spectrum's minimum within ±20 % of ``expected``, from a radial (or sector)
    average with parabolic interpolation between 1-pixel shells."""
    size = image.shape[0]
    power = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    axis = np.arange(size) - size // 2
    ky, kx = np.meshgrid(axis, axis, indexing="ij")
    shells = np.rint(np.hypot(kx, ky)).astype(int)
    keep = np.ones_like(shells, dtype=bool)
    if sector is not None:
        centre, half_width = sector
        difference = np.degrees(np.arctan2(ky, kx)) - centre
        keep = np.abs((difference + 90) % 180 - 90) <= half_width  # the axis and its opposite direction
    profile = np.bincount(shells[keep], power[keep], size) / np.maximum(
        np.bincount(shells[keep], None, size), 1
    )
    frequency = np.arange(size) / (size * pixel_size)
    window = np.flatnonzero((frequency > 0.8 * expected) & (frequency < 1.2 * expected))
    j = window[np.argmin(profile[window])]
    a, b, c = profile[j - 1 : j + 2]
    return float(frequency[j] + 0.5 * (a - c) / (a - 2 * b + c) * (frequency[1] - frequency[0]))


def _correlation(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# ------------------------------------------------------------------------------------------------ map


def test_map_of_1bd2_is_centred_with_the_models_extent(shared_data: Path) -> None:
    box, pixel = 64, 2.8
    volume = _map(shared_data / "models" / "1BD2.cif.gz", box, pixel)
    assert volume.shape == (box, box, box) and volume.dtype == np.float32
    assert volume.sum() > 0 and volume.max() > 0
    axis = np.arange(box) - box // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    weight = volume.astype(np.float64)
    for coordinate in (x, y, z):
        assert abs(float((weight * coordinate).sum() / weight.sum())) < 1.0  # centre of mass at box // 2
    radius = np.sqrt(x**2 + y**2 + z**2) * pixel
    extent = radius[volume > 0.05 * volume.max()].max()
    assert 68.0 < extent < 80.0  # 1BD2's farthest atom is 72.8 Å from its centre of mass


def test_map_is_not_mirrored_relative_to_the_atoms(shared_data: Path) -> None:
    path, box, pixel = shared_data / "models" / "1BD2.cif.gz", 64, 2.8
    volume = _map(path, box, pixel).astype(np.float64)
    model, centre = _atoms(path)
    for chain in ("A", "D", "E"):
        ca = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in model[chain] for a in r if a.name == "CA"])
        index = (ca - centre) / pixel + box // 2  # (x, y, z) in voxels
        at_atoms = ndimage.map_coordinates(volume, index[:, ::-1].T, order=1)  # array index [z, y, x]
        mirrored = index.copy()
        mirrored[:, 0] = 2 * (box // 2) - mirrored[:, 0]
        at_mirror = ndimage.map_coordinates(volume, mirrored[:, ::-1].T, order=1)
        at_transposed = ndimage.map_coordinates(volume, index.T, order=1)  # as if the array were [x, y, z]
        assert at_atoms.mean() > 0.45 * volume.max()
        assert at_atoms.mean() > 2.0 * at_mirror.mean()
        assert at_atoms.mean() > 1.4 * at_transposed.mean()


def test_map_has_the_requested_grid_for_odd_boxes(shared_data: Path) -> None:
    volume = _map(_bpti(shared_data), 41, 1.5)
    assert volume.shape == (41, 41, 41)
    assert np.unravel_index(np.argmax(ndimage.gaussian_filter(volume, 3)), volume.shape) == pytest.approx(
        (20, 20, 20), abs=2
    )


def test_map_from_pdb_equals_map_from_mmcif(shared_data: Path, tmp_path: Path) -> None:
    structure = gemmi.read_structure(str(_bpti(shared_data)))
    structure.write_pdb(str(tmp_path / "5pti.pdb"))
    from_pdb = ground_truth_map(tmp_path / "5pti.pdb", 32, 2.0)
    from_cif = _map(_bpti(shared_data), 32, 2.0)
    assert np.abs(from_pdb - from_cif).max() < 1e-3 * from_cif.max()


def test_map_rejects_bad_inputs(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ProcessingError, match="box of at least"):
        ground_truth_map(shared_data / "models" / "1BD2.cif.gz", 32, 2.0)  # 64 Å box, 146 Å particle
    with pytest.raises(ProcessingError, match="does not exist"):
        ground_truth_map(tmp_path / "missing.cif", 32, 2.0)
    junk = tmp_path / "junk.pdb"
    junk.write_text("this is not a model\n")
    with pytest.raises(ProcessingError, match=r"junk\.pdb"):
        ground_truth_map(junk, 32, 2.0)


# ---------------------------------------------------------------------------------------------- poses


def test_random_poses_are_uniform_on_the_sphere() -> None:
    angles = random_poses(2000, np.random.default_rng(1))
    assert angles.shape == (2000, 3)
    assert abs(np.abs(np.cos(np.radians(angles[:, 1]))).mean() - 0.5) < 0.03  # uniform tilt would give 0.64
    assert np.abs(pivot_matrices(angles).mean(axis=0)).max() < 0.06  # Haar measure: E[A] = 0
    assert abs(angles[:, 2].mean()) < 10 and angles[:, 2].std() == pytest.approx(360 / np.sqrt(12), rel=0.05)


# --------------------------------------------------------------------------------------------- movies


def test_movie_has_the_promised_shapes_and_truth(shared_data: Path) -> None:
    movie = _movie(_bpti(shared_data), TINY)
    assert movie.frames.shape == (4, 256, 256) and movie.frames.dtype == np.float32
    assert movie.drift.shape == (4, 2) and np.all(movie.drift[0] == 0)
    path_length = np.linalg.norm(np.diff(movie.drift, axis=0), axis=1).sum()
    assert path_length == pytest.approx(TINY.drift_px, rel=0.05)
    assert movie.n_particles == 20 and movie.angles.shape == (20, 3)
    assert np.all(movie.x == np.round(movie.x)) and np.all(movie.y == np.round(movie.y))  # origin shift 0
    assert TINY.defocus_min <= min(movie.defocus_u, movie.defocus_v)
    assert max(movie.defocus_u, movie.defocus_v) <= TINY.defocus_max
    expected_counts = TINY.dose_per_frame * TINY.pixel_size**2
    assert movie.frames.mean() == pytest.approx(expected_counts, rel=0.02)
    assert np.all(movie.frames == np.round(movie.frames))  # electron counts


def test_particles_do_not_overlap_and_their_boxes_fit(shared_data: Path) -> None:
    movie = _movie(_bpti(shared_data), TINY)
    box, size = TINY.box, TINY.micrograph_size
    centres = np.stack([movie.x, movie.y], axis=1)
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(len(centres)) * 1e9
    assert distances.min() >= 1.1 * 2 * BPTI_RADIUS / TINY.pixel_size
    for coordinate in (movie.x, movie.y):
        assert np.all(coordinate - box // 2 >= 0) and np.all(coordinate - box // 2 + box <= size)


def test_undoing_the_true_drift_recovers_the_noise_free_micrograph(shared_data: Path) -> None:
    movie = _movie(_bpti(shared_data), TINY)
    aligned = _correlation(_aligned_sum(movie), movie.clean)
    wrong_sign = _correlation(_aligned_sum(movie, sign=-1.0), movie.clean)
    unaligned = _correlation(movie.frames.sum(axis=0), movie.clean)
    assert aligned > 0.15  # signal fills only the particle boxes at SNR 0.08 (measured 0.21)
    assert aligned > wrong_sign + 0.1 and aligned > unaligned + 0.08  # measured 0.05 and 0.07
    # what is left is shot noise: Poisson variance equals the mean
    noise = _aligned_sum(movie) - movie.clean
    assert noise.var() == pytest.approx(movie.clean.mean(), rel=0.05)


def test_signal_to_noise_ratio_is_the_requested_one(shared_data: Path) -> None:
    settings = replace(TINY, ice_contrast=0.0, snr=0.08)
    movie = _movie(_bpti(shared_data), settings)
    boxes = np.zeros((256, 256), dtype=bool)
    for x, y in zip(movie.x.astype(int), movie.y.astype(int), strict=True):
        boxes[y - 16 : y + 16, x - 16 : x + 16] = True
    noise = _aligned_sum(movie) - movie.clean
    assert movie.clean[boxes].var() / noise.var() == pytest.approx(0.08, rel=0.15)


def test_power_spectrum_has_its_first_zero_where_the_true_defocus_puts_it(shared_data: Path) -> None:
    # strong ice gives Thon rings all over the micrograph; no astigmatism for a radial average
    settings = replace(TINY, max_astigmatism=0.0, ice_contrast=2.0, snr=0.2)
    movie = _movie(_bpti(shared_data), settings)
    expected = _first_zero(movie.defocus_u)
    measured = _power_minimum(_aligned_sum(movie), settings.pixel_size, expected)
    # 2 %: a CTF with the amplitude-contrast phase of the wrong sign puts the zero 3.2 % higher
    assert measured == pytest.approx(expected, rel=0.02)


def test_astigmatism_axis_has_the_true_angle(shared_data: Path) -> None:
    settings = replace(
        TINY, defocus_min=9000, defocus_max=22000, max_astigmatism=9000, ice_contrast=2.0, snr=0.2, seed=3
    )
    movie = _movie(_bpti(shared_data), settings)
    assert movie.defocus_u - movie.defocus_v > 4000  # this seed's astigmatism is large enough to resolve
    image = _aligned_sum(movie)
    along_u = _power_minimum(
        image, settings.pixel_size, _first_zero(movie.defocus_u), (movie.defocus_angle, 12)
    )
    along_v = _power_minimum(
        image, settings.pixel_size, _first_zero(movie.defocus_v), (movie.defocus_angle + 90, 12)
    )
    assert along_u == pytest.approx(_first_zero(movie.defocus_u), rel=0.03)
    assert along_v == pytest.approx(_first_zero(movie.defocus_v), rel=0.03)


def test_protein_is_dark(shared_data: Path) -> None:
    movie = _movie(_bpti(shared_data), replace(TINY, ice_contrast=0.0))
    smooth = ndimage.gaussian_filter(movie.clean.astype(np.float64), 4.0)
    at_particles = smooth[movie.y.astype(int), movie.x.astype(int)]
    assert at_particles.mean() < smooth.mean() - smooth.std()


def test_projections_sit_at_the_true_positions_in_the_true_poses(shared_data: Path) -> None:
    settings = replace(TINY, ice_contrast=0.0)
    movie = _movie(_bpti(shared_data), settings)
    size, box = settings.micrograph_size, settings.box
    volume = _map(_bpti(shared_data), box, settings.pixel_size)
    ctf = _relion_ctf(size, settings.pixel_size, movie.defocus_u, movie.defocus_v, movie.defocus_angle)
    clean = np.fft.fft2(movie.clean - movie.clean.mean())

    def correlation_map(angles: FloatArray) -> FloatArray:
        canvas = np.zeros((size, size))
        start = size // 2 - box // 2
        canvas[start : start + box, start : start + box] = Projector(volume).project(
            pivot_matrices(angles[None])
        )[0]
        spectrum = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(canvas)))  # template centred at index 0
        template = -np.fft.ifftshift(spectrum * ctf)  # dark protein
        return np.asarray(np.fft.ifft2(clean * np.conj(template)).real)

    for i in range(6):
        x, y = int(movie.x[i]), int(movie.y[i])
        scores = correlation_map(movie.angles[i])
        window = scores[y - 3 : y + 4, x - 3 : x + 4]
        peak = np.unravel_index(np.argmax(window), window.shape)
        assert (int(peak[0]), int(peak[1])) == (3, 3)
        rot, tilt, psi = movie.angles[i]
        mirrored = correlation_map(np.array([rot + 180, 180 - tilt, -psi]))  # the x-mirrored projection
        assert scores[y, x] > 0 and scores[y, x] > mirrored[y - 3 : y + 4, x - 3 : x + 4].max()


def test_simulation_is_deterministic_per_seed_and_per_movie(shared_data: Path) -> None:
    volume = _map(_bpti(shared_data), TINY.box, TINY.pixel_size)
    settings = replace(TINY, micrograph_size=128, particles_per_micrograph=4, n_frames=2)
    first = next(simulate_movies(volume, settings))
    again = list(simulate_movies(volume, replace(settings, n_micrographs=2)))
    other = next(simulate_movies(volume, replace(settings, seed=settings.seed + 1)))
    assert np.array_equal(first.frames, again[0].frames) and np.array_equal(first.x, again[0].x)
    assert not np.array_equal(again[0].frames, again[1].frames)
    assert not np.array_equal(first.frames, other.frames)
    assert again[1].index == 1


def test_progress_is_reported_per_movie(shared_data: Path) -> None:
    volume = _map(_bpti(shared_data), TINY.box, TINY.pixel_size)
    calls: list[tuple[int, int]] = []
    settings = replace(TINY, micrograph_size=96, particles_per_micrograph=2, n_frames=1, n_micrographs=3)
    assert (
        len(list(simulate_movies(volume, settings, progress=lambda done, total: calls.append((done, total)))))
        == 3
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_bad_settings_and_maps_are_refused(shared_data: Path) -> None:
    with pytest.raises(ProcessingError, match="dose_per_frame"):
        replace(TINY, dose_per_frame=0)
    with pytest.raises(ProcessingError, match="larger than the micrographs"):
        replace(TINY, box=300)
    with pytest.raises(ProcessingError, match="defocus range"):
        replace(TINY, defocus_min=20000, defocus_max=10000)
    with pytest.raises(ProcessingError, match=r"settings\.box"):
        next(simulate_movies(np.ones((16, 16, 16), dtype=np.float32), TINY))
    volume = _map(_bpti(shared_data), TINY.box, TINY.pixel_size)
    with pytest.raises(ProcessingError, match="particles_per_micrograph"):
        next(simulate_movies(volume, replace(TINY, particles_per_micrograph=400)))


def test_presets_fit_the_shipped_model() -> None:
    for preset in (SMALL, STANDARD):
        assert preset.box * preset.pixel_size / 2 > 73 + 10  # 1BD2 (r_max 73 Å) fits with room
