"""Gold-standard 3D refinement of particle poses and origin shifts against a reference map.

- Gold standard (Scheres & Chen 2012, Nat Methods 9:853): the particles are split once, at random (seeded),
  into two halves. Each half is aligned only against the map reconstructed from its own particles, and both
  halves start from the same low-passed initial map, so the FSC between the half maps is an honest
  resolution estimate (0.143 threshold, Rosenthal & Henderson 2003, J Mol Biol 333:721).
- Projection matching (Penczek, Grassucci & Frank 1994, Ultramicroscopy 53:251): every particle is compared
  with CTF-multiplied central sections of its half's reference (Fourier slice theorem) over a grid of
  orientations and origin shifts; the best normalised cross-correlation Σ CTF·F·R̄ / √(Σ CTF² |R|²) gives
  its pose (the maximum-likelihood pose under white noise with a free per-image scale).
- Coarse-to-fine sampling after RELION's auto-refine (Scheres 2012, J Struct Biol 180:519): global searches
  on a quasi-uniform orientation grid (Fibonacci-sphere directions × psi steps, restricted to the
  asymmetric unit of the point group) at the initial step, repeated while they still move the poses by more
  than a step; then local searches around each particle's previous pose with the step halved every
  iteration down to the final step, and iterations at the final step until the poses stop moving. Each
  half's reference is its own map Wiener-filtered with the half-map FSC and cut at the current 0.143
  resolution, and only Fourier components up to that resolution are compared (RELION's growing "current
  size"), which keeps coarse iterations cheap.
- Translations: the cross-correlation with each CTF-multiplied reference section is evaluated at every
  integer shift within ``max_shift_px`` (global searches) or on a half-pixel grid within 1 px of the
  previous shift (local searches), by Fourier phase ramps and one matrix product over the compared
  components (the cross-correlation function sampled at the allowed shifts), then refined on a 1/8-pixel
  grid at the best orientation, re-choosing the orientation at the refined shift.
- The half maps are reconstructed between iterations by direct Fourier inversion
  (:func:`scipion_kg.tasks.builtin.reconstruct.reconstruct`); the final map is the reconstruction from all
  particles with their final poses.

Particle images are compared inside a soft circular mask of ``mask_diameter``. After every iteration the
solvent of both references is flattened with a soft mask around the density of the average half map
(post-processing's automatic mask, inside a sphere of ``mask_diameter``), and the half-map FSC that sets
the resolution and the references' filter is that of the masked halves corrected for the mask by phase
randomisation (Chen et al. 2013, Ultramicroscopy 135:24), as RELION's auto-refine does with a solvent mask
and --solvent_correct_fsc. With the spherical mask alone, the FSC counted the noise of the solvent in a
150 Å sphere around a 1BD2 particle and stopped the comparison at 6.7 Å instead of 4.4 Å; on the demo's
data (then in a 96 px box) the median pose error was 3.5° instead of 2.3°. Work is spread over two
threads by particle chunks (numpy matrix products, gathers and FFTs release the GIL).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipion_kg.converters.geometry import pivot_matrices
from scipy.spatial.transform import Rotation

from scipion_kg.errors import ProcessingError

from .ctf import ctf_2d
from .fourier import centered_fft2, fsc, radial_index, resolution_at
from .particles import ParticleCTF
from .postprocess import automatic_mask, mask_corrected_fsc, randomisation_shell
from .reconstruct import CTFParameterSet, reconstruct, symmetry_matrices

__all__ = ["RefinementIteration", "RefinementResult", "angular_distances", "refine_3d"]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
Complex64Array = npt.NDArray[np.complex64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int, int], None] | None

FSC_THRESHOLD = 0.143
LOCAL_RANGE = 2.0
"""Local searches cover rotations within LOCAL_RANGE × the angular step of the previous best."""
LOCAL_SHIFT_STEP = 0.5
LOCAL_SHIFT_RANGE = 1.0
"""Local searches try shifts on a LOCAL_SHIFT_STEP px grid within LOCAL_SHIFT_RANGE px of the previous one."""
SUBPIXEL_STEP = 0.125
SUBPIXEL_RANGE = 0.5
MASK_EDGE_PX = 4.0
THREADS = 2
MAX_GLOBAL_ITERATIONS = 5
CONVERGED_CHANGE = 0.25
"""Refinement stops at the final step once the mean angular change is below this fraction of the step..."""
STALL_LIMIT = 2
"""... or once the resolution has not improved by 1 % for this many iterations at the final step."""
POINT_BUDGET = 3_000_000
"""Rough cap on reference samples (or score entries) held per particle chunk, to bound memory."""


@dataclass(frozen=True)
class RefinementIteration:
    """What one iteration did: its sampling, the resolution it reached and how much the poses moved."""

    iteration: int
    search: str  # "global" or "local"
    angular_step: float  # degrees
    compared_resolution: float  # Å, the highest frequency compared during the alignment
    resolution: float  # Å, half-map FSC = 0.143 after the iteration's reconstruction
    mean_angular_change: float  # degrees, geodesic, modulo the symmetry
    mean_shift_change: float  # Å
    seconds: float


@dataclass(frozen=True, eq=False)
class RefinementResult:
    """Outcome of :func:`refine_3d`. Angles are pivot (rot, tilt, psi) in degrees, shifts are origin shifts
    (rlnOriginX/YAngst) in Å, ``half_set`` holds 1 or 2 per particle."""

    half_maps: tuple[Float32Array, Float32Array]
    map: Float32Array
    angles: FloatArray
    shifts: FloatArray
    half_set: IntArray
    scores: FloatArray
    fsc: FloatArray
    resolution: float
    iterations: list[RefinementIteration]

    @property
    def matrices(self) -> FloatArray:
        """The pivot matrices A (n, 3, 3) of the refined angles."""
        return pivot_matrices(self.angles)


def refine_3d(
    images: npt.NDArray[np.floating],
    pixel_size: float,
    ctf: ParticleCTF | npt.NDArray[np.floating] | None,
    initial_map: npt.NDArray[np.floating],
    *,
    symmetry: str = "C1",
    initial_lowpass: float = 40.0,
    initial_angular_step: float = 15.0,
    final_angular_step: float = 1.875,
    max_shift_px: float = 4.0,
    n_iterations: int = 15,
    mask_diameter: float | None = None,
    seed: int = 0,
    initial_angles: npt.NDArray[np.floating] | None = None,
    initial_shifts: npt.NDArray[np.floating] | None = None,
    progress: Progress = None,
) -> RefinementResult:
    """Refine the orientation and origin shift of every particle image (n, b, b) against ``initial_map``
    (b, b, b) with two independent half sets, and reconstruct the half maps and the final map.

    ``ctf`` is a :class:`ParticleCTF` (one row per image), CTF values (n, b, b) on the centred grid, or None
    (no CTF). Images must show the particle with the map's contrast through the CTF (RELION's convention:
    white particles with ``ctf_2d``). ``initial_angles`` (n, 3) pivot degrees, full 3D poses, with optional
    ``initial_shifts`` (n, 2) Å, start the refinement with local searches at ``initial_angular_step``
    instead of global ones. ``mask_diameter`` (Å) defaults to 90 % of the box. ``n_iterations`` is a
    maximum: the refinement stops once it has converged at ``final_angular_step``. ``progress`` is called
    with (iteration, n_iterations) after every iteration and (n_iterations, n_iterations) at the end."""
    stack = _check_images(images)
    count, box = stack.shape[0], stack.shape[1]
    pixel_size = float(pixel_size)
    if not pixel_size > 0:
        raise ProcessingError(f"pixel_size {pixel_size} Å must be positive")
    reference = np.asarray(initial_map, dtype=np.float32)
    if reference.shape != (box, box, box):
        raise ProcessingError(
            f"initial_map has shape {reference.shape}; a ({box}, {box}, {box}) map matching the particle box "
            "is needed (rescale or pad it first)"
        )
    ctf_source = _check_ctf(ctf, count, box)
    rotations = symmetry_matrices(symmetry)
    _check_sampling(
        initial_lowpass, initial_angular_step, final_angular_step, max_shift_px, n_iterations, pixel_size
    )
    diameter = 0.9 * box * pixel_size if mask_diameter is None else float(mask_diameter)
    if not 0 < diameter <= box * pixel_size * 1.5:
        raise ProcessingError(
            f"mask_diameter {diameter} Å must be positive and at most 1.5 × the box width "
            f"({box * pixel_size:.0f} Å)"
        )
    radius_px = diameter / (2.0 * pixel_size)

    matrices = np.tile(np.eye(3), (count, 1, 1))
    shifts_px = np.zeros((count, 2))
    if initial_angles is not None:
        angles = np.asarray(initial_angles, dtype=np.float64)
        if angles.shape != (count, 3):
            raise ProcessingError(
                f"initial_angles must have shape ({count}, 3) (rot, tilt, psi deg), got {angles.shape}"
            )
        matrices = pivot_matrices(angles)
    if initial_shifts is not None:
        given = np.asarray(initial_shifts, dtype=np.float64)
        if given.shape != (count, 2):
            raise ProcessingError(f"initial_shifts must have shape ({count}, 2) Å, got {given.shape}")
        shifts_px = given / pixel_size

    half_set = _split_halves(count, seed)
    members = (np.flatnonzero(half_set == 1), np.flatnonzero(half_set == 2))
    data = _ParticleData(stack, ctf_source, pixel_size, radius_px)
    sphere = _soft_sphere(box, radius_px)
    shells = radial_index((box, box, box))
    cutoff = box * pixel_size / initial_lowpass
    start = _filtered(reference, sphere, shells, _raised_cosine(cutoff, box))
    references = (start, start)
    schedule = _Schedule(float(initial_angular_step), float(final_angular_step), initial_angles is not None)
    scores = np.zeros(count)
    records: list[RefinementIteration] = []
    for iteration in range(1, n_iterations + 1):
        started = time.monotonic()
        radius = min(float(box // 2 - 1), max(2.0, cutoff))
        old_matrices, old_shifts = matrices.copy(), shifts_px.copy()
        for half, index in enumerate(members):
            slicer = _ReferenceSlices(references[half], radius)
            if schedule.search == "global":
                poses = _global_search(data, index, slicer, radius, schedule.step, rotations, max_shift_px)
            else:
                poses = _local_search(
                    data,
                    index,
                    slicer,
                    radius,
                    schedule.step,
                    matrices[index],
                    shifts_px[index],
                    max_shift_px,
                )
            matrices[index], shifts_px[index], scores[index] = poses
        half_maps = [
            reconstruct(
                stack[index],
                matrices[index],
                shifts_px[index] * pixel_size,
                pixel_size,
                _ctf_subset(ctf_source, index),
                symmetry=symmetry,
            )
            for index in members
        ]
        solvent_mask = _solvent_mask(half_maps, sphere, pixel_size)
        curve = _solvent_corrected_fsc(half_maps, solvent_mask, np.random.default_rng([seed, iteration]))
        resolution = resolution_at(curve, FSC_THRESHOLD, box, pixel_size)
        cutoff = box * pixel_size / resolution
        # Each half's reference: its own map with the solvent flattened, Wiener-filtered with the half-map
        # FSC, nothing beyond 0.143.
        weights = np.where(np.arange(len(curve)) <= cutoff, np.clip(curve, 0.0, 1.0), 0.0)
        references = (
            _filtered(half_maps[0], solvent_mask, shells, weights),
            _filtered(half_maps[1], solvent_mask, shells, weights),
        )
        records.append(
            RefinementIteration(
                iteration=iteration,
                search=schedule.search,
                angular_step=schedule.step,
                compared_resolution=box * pixel_size / radius,
                resolution=resolution,
                mean_angular_change=float(angular_distances(old_matrices, matrices, symmetry).mean()),
                mean_shift_change=float(np.linalg.norm(shifts_px - old_shifts, axis=1).mean() * pixel_size),
                seconds=time.monotonic() - started,
            )
        )
        if progress is not None:
            progress(iteration, n_iterations)
        if schedule.advance(records[-1]):
            break

    final_map = reconstruct(
        stack, matrices, shifts_px * pixel_size, pixel_size, _ctf_subset(ctf_source), symmetry=symmetry
    )
    if progress is not None:
        progress(n_iterations, n_iterations)
    return RefinementResult(
        half_maps=(half_maps[0], half_maps[1]),
        map=final_map,
        angles=_angles_of(matrices),
        shifts=shifts_px * pixel_size,
        half_set=half_set,
        scores=scores,
        fsc=curve,
        resolution=resolution,
        iterations=records,
    )


class _Schedule:
    """Angular sampling across iterations, and the convergence test.

    Global searches repeat at the initial step until the mean angular change falls below the step (RELION
    also keeps searching globally while the coarse samplings still move the poses), at most
    MAX_GLOBAL_ITERATIONS times. Then the step halves every iteration, with local searches, down to the
    final step. There, the refinement has converged once the poses move less than CONVERGED_CHANGE × the
    step, or the resolution has not improved by 1 % for two iterations (RELION's auto-refine stops on
    similar signs), after at least two iterations at the final step."""

    def __init__(self, initial_step: float, final_step: float, local_start: bool) -> None:
        self.step = initial_step
        self.final_step = final_step
        self.search = "local" if local_start else "global"
        self._globals = 0
        self._at_final = 0
        self._stalls = 0
        self._best = math.inf

    def advance(self, record: RefinementIteration) -> bool:
        """Update the sampling after ``record``; True when the refinement has converged."""
        at_final = self.step <= self.final_step * 1.0001
        if at_final:
            self._at_final += 1
            self._stalls = self._stalls + 1 if record.resolution > self._best * 0.99 else 0
        self._best = min(self._best, record.resolution)
        if self._at_final >= 2 and (
            record.mean_angular_change < CONVERGED_CHANGE * self.final_step or self._stalls >= STALL_LIMIT
        ):
            return True
        if self.search == "global":
            self._globals += 1
            if record.mean_angular_change > self.step and self._globals < MAX_GLOBAL_ITERATIONS:
                return False
        self.search = "local"
        self.step = max(self.final_step, self.step / 2.0)
        return False


def _split_halves(count: int, seed: int) -> IntArray:
    """Half set (1 or 2) of every particle: a seeded random split, the first half one larger if odd."""
    order = np.random.default_rng(seed).permutation(count)
    half_set = np.full(count, 2, dtype=np.int64)
    half_set[order[: (count + 1) // 2]] = 1
    return half_set


def _raised_cosine(cutoff: float, box: int, width: float = 2.0) -> FloatArray:
    """Per-shell weights: 1 up to ``cutoff`` - width / 2, 0 from ``cutoff`` + width / 2, a cosine between."""
    shells = np.arange(box, dtype=np.float64)
    phase = np.clip((shells - cutoff + width / 2.0) / width, 0.0, 1.0)
    return np.asarray(0.5 + 0.5 * np.cos(np.pi * phase))


def angular_distances(first: FloatArray, second: FloatArray, symmetry: str = "C1") -> FloatArray:
    """Geodesic angle (degrees) between pivot matrices (n, 3, 3) pairwise, the smallest over the symmetry
    group's equivalent poses A·Gᵀ."""
    group = symmetry_matrices(symmetry)
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    # trace(A Gᵀ Bᵀ) for every group element G.
    traces = np.einsum("nij,gkj,nik->ng", a, group, b)
    best = np.clip((traces.max(axis=1) - 1.0) / 2.0, -1.0, 1.0)
    return np.asarray(np.degrees(np.arccos(best)), dtype=np.float64)


# -- inputs ----------------------------------------------------------------------------------------------


def _check_images(images: npt.NDArray[np.floating]) -> Float32Array:
    stack = np.asarray(images, dtype=np.float32)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ProcessingError(f"images must be a stack of square images (n, b, b), got shape {stack.shape}")
    if stack.shape[1] % 2 or stack.shape[1] < 16:
        raise ProcessingError(
            f"particle box {stack.shape[1]} px is not usable; an even box of at least 16 px is needed"
        )
    if len(stack) < 4:
        raise ProcessingError(f"{len(stack)} particles are too few for two half sets; at least 4 are needed")
    if not np.all(np.isfinite(stack)):
        raise ProcessingError("images contain non-finite values (NaN or inf); clean the particle stack first")
    return stack


def _check_ctf(
    ctf: ParticleCTF | npt.NDArray[np.floating] | None, count: int, box: int
) -> ParticleCTF | Float32Array | None:
    if ctf is None or isinstance(ctf, ParticleCTF):
        if ctf is not None and len(ctf) != count:
            raise ProcessingError(
                f"the ParticleCTF has {len(ctf)} rows but there are {count} images; give one per image"
            )
        return ctf
    values = np.asarray(ctf, dtype=np.float32)
    if values.shape != (count, box, box):
        raise ProcessingError(
            f"CTF values must have the images' shape ({count}, {box}, {box}), got {values.shape}"
        )
    return values


def _ctf_subset(
    ctf: ParticleCTF | Float32Array | None, index: IntArray | None = None
) -> CTFParameterSet | Float32Array | None:
    """The CTFs of the particles at ``index`` (all if None) as :func:`reconstruct` takes them; a
    ParticleCTF is passed on as parameters, so the CTF is evaluated only where it is inserted."""
    if ctf is None:
        return None
    if isinstance(ctf, ParticleCTF):
        # ParticleCTF has the CTFParameterSet attributes (frozen, float64), which mypy cannot match to the
        # protocol's settable NDArray[floating] members.
        return cast(CTFParameterSet, ctf if index is None else ctf.subset(index))
    return ctf if index is None else ctf[index]


def _check_sampling(
    initial_lowpass: float,
    initial_step: float,
    final_step: float,
    max_shift: float,
    n_iterations: int,
    pixel_size: float,
) -> None:
    if not initial_lowpass >= 2.0 * pixel_size:
        raise ProcessingError(
            f"initial_lowpass {initial_lowpass} Å is finer than Nyquist ({2 * pixel_size} Å); use e.g. 40 Å"
        )
    if not 0 < final_step <= initial_step <= 60:
        raise ProcessingError(
            f"angular steps must satisfy 0 < final ({final_step}) <= initial ({initial_step}) <= 60 degrees"
        )
    if not 0 <= max_shift <= 50:
        raise ProcessingError(f"max_shift_px {max_shift} must lie between 0 and 50 px")
    if n_iterations < 1:
        raise ProcessingError(f"n_iterations {n_iterations} must be at least 1")


# -- particle data on the compared Fourier components ------------------------------------------------------


class _ParticleData:
    """Masked particle spectra on a half plane of Fourier components sorted by radius (the first K of them
    are the components up to a radius), their CTFs, and cumulative powers for normalisation."""

    def __init__(
        self, stack: Float32Array, ctf: ParticleCTF | Float32Array | None, pixel_size: float, radius_px: float
    ) -> None:
        count, box = stack.shape[0], stack.shape[1]
        self.box = box
        k = np.arange(box) - box // 2
        ky, kx = np.meshgrid(k, k, indexing="ij")
        radius = np.hypot(kx, ky).ravel()
        half_plane = ((ky > 0) | ((ky == 0) & (kx > 0))).ravel()
        keep = np.flatnonzero(half_plane & (radius <= box // 2 - 1))
        keep = keep[np.argsort(radius[keep], kind="stable")]
        self.radius = radius[keep]
        self.kx = kx.ravel()[keep].astype(np.float64)
        self.ky = ky.ravel()[keep].astype(np.float64)
        mask = _soft_disc(box, radius_px)
        self.spectra = np.empty((count, len(keep)), dtype=np.complex64)
        self.ctf2 = np.empty((count, len(keep)), dtype=np.float32)
        power = np.empty((count, len(keep)), dtype=np.float64)
        for start in range(0, count, 256):
            stop = min(start + 256, count)
            chunk = centered_fft2(stack[start:stop] * mask).reshape(stop - start, -1)[:, keep]
            if ctf is None:
                values = np.ones((stop - start, len(keep)))
            elif isinstance(ctf, ParticleCTF):
                # The CTF only where it is compared (frequencies in 1/Å).
                scale = 1.0 / (box * pixel_size)
                values = ctf_2d(
                    self.kx * scale,
                    self.ky * scale,
                    ctf.defocus_u[start:stop],
                    ctf.defocus_v[start:stop],
                    ctf.defocus_angle[start:stop],
                    ctf.voltage,
                    ctf.spherical_aberration,
                    ctf.amplitude_contrast,
                    ctf.phase_shift[start:stop],
                ).reshape(stop - start, -1)
            else:
                values = ctf[start:stop].reshape(stop - start, -1)[:, keep]
            power[start:stop] = np.abs(chunk) ** 2
            self.spectra[start:stop] = chunk * values  # CTF·F: correlated with the reference sections
            self.ctf2[start:stop] = values**2
        self.power = np.cumsum(power, axis=1).astype(np.float32)

    def count_within(self, radius: float) -> int:
        return int(np.searchsorted(self.radius, radius, side="right"))

    def phases(self, shifts_px: FloatArray, count: int) -> Complex64Array:
        """exp(-2πi k·t / b) (..., K): multiplying a spectrum undoes an origin shift t (px)."""
        turns = (
            shifts_px[..., 0, None] * self.kx[:count] + shifts_px[..., 1, None] * self.ky[:count]
        ) / self.box
        return np.asarray(np.exp(-2j * np.pi * turns), dtype=np.complex64)


def _soft_disc(box: int, radius: float) -> Float32Array:
    k = np.arange(box) - box // 2
    distance = np.hypot(k[:, None], k[None, :])
    return _soft_edge(distance, radius)


def _soft_sphere(box: int, radius: float) -> Float32Array:
    k = (np.arange(box) - box // 2).astype(np.float64)
    distance = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    return _soft_edge(distance, radius)


def _soft_edge(distance: FloatArray, radius: float) -> Float32Array:
    """1 inside ``radius``, a raised cosine to 0 over MASK_EDGE_PX."""
    phase = np.clip((distance - radius) / MASK_EDGE_PX, 0.0, 1.0)
    return np.asarray(0.5 + 0.5 * np.cos(np.pi * phase), dtype=np.float32)


def _solvent_mask(half_maps: list[Float32Array], sphere: Float32Array, pixel_size: float) -> Float32Array:
    """A soft mask around the density of the average half map (post-processing's automatic mask) inside
    the mask sphere; the sphere alone while the maps are too poor to threshold."""
    try:
        tight = automatic_mask((half_maps[0] + half_maps[1]) / 2.0, pixel_size)
    except ProcessingError:
        return sphere
    return np.asarray(tight * sphere, dtype=np.float32)


def _solvent_corrected_fsc(
    half_maps: list[Float32Array], mask: Float32Array, rng: np.random.Generator
) -> FloatArray:
    """The FSC of the masked half maps with the mask's own correlation removed by phase randomisation
    (Chen et al. 2013), as RELION's auto-refine with --solvent_correct_fsc."""
    first, second = half_maps
    masked = fsc(first * mask, second * mask)
    shell = randomisation_shell(fsc(first, second))
    return mask_corrected_fsc(first, second, mask, masked, shell, rng)[1]


def _filtered(
    volume: npt.NDArray[np.floating], sphere: Float32Array, shells: IntArray, weights: FloatArray
) -> Float32Array:
    """``volume`` masked by ``sphere`` and multiplied by ``weights`` per Fourier shell (0 beyond the list)."""
    spectrum = scipy.fft.fftn(
        np.fft.ifftshift(np.asarray(volume, dtype=np.float32) * sphere), workers=THREADS
    )
    table = np.zeros(int(shells.max()) + 1)
    table[: min(len(weights), len(table))] = weights[: len(table)]
    spectrum *= np.fft.ifftshift(table[shells])
    return np.asarray(np.fft.fftshift(scipy.fft.ifftn(spectrum, workers=THREADS).real), dtype=np.float32)


# -- reference sections --------------------------------------------------------------------------------------


class _ReferenceSlices:
    """Central sections of a reference at given Fourier components: a 2× padded, gridding-corrected 3D
    spectrum (cropped to the compared radius) sampled by trilinear interpolation at q = 2 Aᵀ (kx, ky, 0)."""

    padding = 2

    def __init__(self, volume: Float32Array, radius: float) -> None:
        box = volume.shape[0]
        padded_box = self.padding * box
        grid = (np.arange(box) - box // 2) / padded_box
        sinc2 = np.sinc(grid) ** 2
        correction = sinc2[:, None, None] * sinc2[None, :, None] * sinc2[None, None, :]
        padded = np.zeros((padded_box,) * 3, dtype=np.float32)
        start = padded_box // 2 - box // 2
        padded[start : start + box, start : start + box, start : start + box] = volume / correction
        spectrum = np.fft.fftshift(scipy.fft.fftn(np.fft.ifftshift(padded), workers=THREADS))
        # Samples reach padding·radius from the centre; trilinear corners one voxel more.
        half = min(padded_box // 2 - 1, math.ceil(self.padding * radius) + 2)
        centre = padded_box // 2
        cube = spectrum[
            centre - half : centre + half + 1,
            centre - half : centre + half + 1,
            centre - half : centre + half + 1,
        ]
        self._cube = np.ascontiguousarray(cube, dtype=np.complex64).ravel()
        self._half = half
        self._side = 2 * half + 1

    def sections(self, matrices: FloatArray, kx: FloatArray, ky: FloatArray) -> Complex64Array:
        """Reference spectra (m, K) at components (kx, ky) (integer shells) for pivot matrices (m, 3, 3)."""
        rows = np.asarray(matrices, dtype=np.float32)[:, :2, :] * np.float32(self.padding)
        # q = padding · Aᵀ (kx, ky, 0) = padding (kx A[0, :] + ky A[1, :]) as (x, y, z), plus the centre.
        q = kx.astype(np.float32)[None, :, None] * rows[:, None, 0, :]
        q += ky.astype(np.float32)[None, :, None] * rows[:, None, 1, :]
        q += np.float32(self._half)
        base = np.floor(q)
        q -= base  # fractional parts
        corner = base.astype(np.int32)
        side = self._side
        index = (corner[..., 2] * side + corner[..., 1]) * side + corner[..., 0]
        fx, fy, fz = q[..., 0], q[..., 1], q[..., 2]
        cube = self._cube
        out = np.zeros(index.shape, dtype=np.complex64)
        for dz in (0, 1):
            wz = fz if dz else 1.0 - fz
            for dy in (0, 1):
                weight = wz * (fy if dy else 1.0 - fy)
                shifted = index + (dz * side + dy) * side
                low = cube.take(shifted)
                high = cube.take(shifted + 1)
                high -= low
                high *= fx
                high += low
                high *= weight
                out += high
        return out


# -- searches ---------------------------------------------------------------------------------------------


def _shift_grid(reach: float, step: float) -> FloatArray:
    """Shifts (m, 2) px on a square grid of ``step`` within a disc of radius ``reach``."""
    count = math.floor(reach / step + 1e-9)
    grid = np.arange(-count, count + 1, dtype=np.float64) * step
    ty, tx = np.meshgrid(grid, grid, indexing="ij")
    points = np.stack([tx.ravel(), ty.ravel()], axis=1)
    return np.asarray(points[np.hypot(points[:, 0], points[:, 1]) <= reach + 1e-9])


def _orientation_grid(step: float, rotations: FloatArray) -> FloatArray:
    """Pivot matrices of Fibonacci-sphere directions (about one per step² of solid angle) in the asymmetric
    unit of ``rotations`` × psi in steps of about ``step`` degrees."""
    step_rad = math.radians(step)
    count = max(12, round(4.0 * math.pi / step_rad**2))
    index = np.arange(count)
    z = 1.0 - (2.0 * index + 1.0) / count
    azimuth = (index * math.pi * (3.0 - math.sqrt(5.0))) % (2.0 * math.pi)
    tilt = np.arccos(z)
    directions = np.stack([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), z], axis=1)
    if len(rotations) > 1:
        # Keep the directions d whose symmetry mate S·d closest to a generic pole is d itself (a Dirichlet
        # cell of the group's action on the sphere).
        pole = np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93])
        mates = np.einsum("gij,nj->ngi", rotations, directions) @ pole
        keep = np.argmax(mates, axis=1) == 0  # symmetry_matrices lists the identity first
        azimuth, tilt = azimuth[keep], tilt[keep]
    n_psi = max(4, round(360.0 / step))
    psi = np.arange(n_psi) * 360.0 / n_psi
    angles = np.empty((len(azimuth), n_psi, 3))
    angles[..., 0] = np.degrees(azimuth)[:, None]
    angles[..., 1] = np.degrees(tilt)[:, None]
    angles[..., 2] = psi[None, :]
    return pivot_matrices(angles.reshape(-1, 3))


def _local_offsets(step: float) -> FloatArray:
    """Rotation matrices on a cubic lattice of rotation vectors (spacing ``step`` degrees) within
    LOCAL_RANGE steps of the identity."""
    reach = math.floor(LOCAL_RANGE)
    grid = np.arange(-reach, reach + 1, dtype=np.float64)
    vz, vy, vx = np.meshgrid(grid, grid, grid, indexing="ij")
    vectors = np.stack([vx.ravel(), vy.ravel(), vz.ravel()], axis=1)
    vectors = vectors[np.linalg.norm(vectors, axis=1) <= LOCAL_RANGE + 1e-9] * math.radians(step)
    return np.asarray(Rotation.from_rotvec(vectors).as_matrix(), dtype=np.float64)


Poses = tuple[FloatArray, FloatArray, FloatArray]


def _run_chunks(work: Callable[[IntArray], Poses], count: int, size: int) -> Poses:
    """``work`` over consecutive row chunks of ``count`` rows on THREADS threads, results concatenated."""
    chunks = [np.arange(start, min(start + size, count)) for start in range(0, count, max(1, size))]
    if THREADS == 1 or len(chunks) == 1:
        parts = [work(chunk) for chunk in chunks]
    else:
        with ThreadPoolExecutor(THREADS) as pool:
            parts = list(pool.map(work, chunks))
    return (
        np.concatenate([part[0] for part in parts]),
        np.concatenate([part[1] for part in parts]),
        np.concatenate([part[2] for part in parts]),
    )


def _stacked(sections: Complex64Array) -> Float32Array:
    """Real and imaginary parts side by side on the last axis: Re Σ a·conj(b) becomes a dot product."""
    return np.concatenate([sections.real, sections.imag], axis=-1)


def _global_search(
    data: _ParticleData,
    index: IntArray,
    slicer: _ReferenceSlices,
    radius: float,
    step: float,
    rotations: FloatArray,
    max_shift: float,
) -> Poses:
    """Best pose of every particle over the whole orientation grid and every integer shift within
    ``max_shift`` (searched in full at every global iteration: tracking shifts from a 40 Å start locally
    lost particles in tests), then sub-pixel shift refinement."""
    count = data.count_within(radius)
    kx, ky = data.kx[:count], data.ky[:count]
    grid = _orientation_grid(step, rotations)
    parts = np.array_split(grid, max(1, len(grid) * count // POINT_BUDGET))
    sections = np.concatenate([slicer.sections(part, kx, ky) for part in parts])  # (J, K)
    stacked = np.ascontiguousarray(_stacked(sections).T)  # (2K, J)
    section_power = np.ascontiguousarray(_power(sections).T)  # (K, J)
    shifts = _shift_grid(max_shift, 1.0)
    phases = data.phases(shifts, count)  # (T, K)
    chunk = max(1, POINT_BUDGET // (len(shifts) * len(grid)))

    def work(rows: IntArray) -> Poses:
        part = index[rows]
        shifted = data.spectra[part, :count][:, None, :] * phases[None]  # (c, T, K)
        cross = (_stacked(shifted).reshape(-1, 2 * count) @ stacked).reshape(
            len(part), len(shifts), len(grid)
        )
        norm = data.ctf2[part, :count] @ section_power  # (c, J)
        cross *= (1.0 / np.sqrt(np.maximum(norm, 1e-30)))[:, None, :]
        best_shift, best_pose = np.divmod(np.argmax(cross.reshape(len(part), -1), axis=1), len(grid))
        return _refine_shift(
            data,
            part,
            count,
            sections[best_pose][:, None],
            grid[best_pose][:, None],
            shifts[best_shift],
            max_shift,
        )

    return _run_chunks(work, len(index), chunk)


def _local_search(
    data: _ParticleData,
    index: IntArray,
    slicer: _ReferenceSlices,
    radius: float,
    step: float,
    previous: FloatArray,
    previous_shifts: FloatArray,
    max_shift: float,
) -> Poses:
    """Best pose of every particle among rotations within LOCAL_RANGE steps of its previous pose and
    shifts on a LOCAL_SHIFT_STEP grid within LOCAL_SHIFT_RANGE px of its previous shift, then sub-pixel
    refinement."""
    count = data.count_within(radius)
    kx, ky = data.kx[:count], data.ky[:count]
    offsets = _local_offsets(step)
    shift_offsets = _shift_grid(LOCAL_SHIFT_RANGE, LOCAL_SHIFT_STEP)
    offset_phases = data.phases(shift_offsets, count)  # (T, K)
    chunk = max(1, POINT_BUDGET // (len(offsets) * max(count, len(shift_offsets))))

    def work(rows: IntArray) -> Poses:
        part = index[rows]
        candidates = np.einsum("mij,cjk->cmik", offsets, previous[rows])  # (c, M, 3, 3)
        sections = slicer.sections(candidates.reshape(-1, 3, 3), kx, ky).reshape(
            len(part), len(offsets), count
        )
        centres = _clip_to_disc(previous_shifts[rows], max_shift)
        centred = data.spectra[part, :count] * data.phases(centres, count)  # (c, K)
        shifted = centred[:, None, :] * offset_phases[None]  # (c, T, K)
        cross = np.matmul(_stacked(shifted), _stacked(sections).transpose(0, 2, 1))  # (c, T, M)
        norm = np.einsum("ck,cmk->cm", data.ctf2[part, :count], _power(sections))
        cross *= (1.0 / np.sqrt(np.maximum(norm, 1e-30)))[:, None, :]
        shifts = centres[:, None, :] + shift_offsets[None]  # (c, T, 2)
        cross[np.hypot(shifts[..., 0], shifts[..., 1]) > max_shift + 1e-9] = -np.inf
        best_shift = np.argmax(cross.reshape(len(part), -1), axis=1) // len(offsets)
        picked = np.arange(len(part))
        return _refine_shift(data, part, count, sections, candidates, shifts[picked, best_shift], max_shift)

    return _run_chunks(work, len(index), chunk)


def _power(values: Complex64Array) -> Float32Array:
    return np.asarray(values.real**2 + values.imag**2, dtype=np.float32)


def _clip_to_disc(shifts: FloatArray, radius: float) -> FloatArray:
    length = np.hypot(shifts[:, 0], shifts[:, 1])
    scale = np.where(length > radius, radius / np.maximum(length, 1e-12), 1.0)
    return np.asarray(shifts * scale[:, None])


def _refine_shift(
    data: _ParticleData,
    part: IntArray,
    count: int,
    sections: Complex64Array,
    matrices: FloatArray,
    shifts: FloatArray,
    max_shift: float,
) -> Poses:
    """Sub-pixel shift at the best candidate, then the best candidate again at that shift, twice.
    ``sections`` (c, M, K) and ``matrices`` (c, M, 3, 3) are each particle's candidates, ``shifts`` (c, 2)
    the starting shifts in px. Returns matrices, shifts (px) and normalised cross-correlations."""
    picked = np.arange(len(part))
    spectra = data.spectra[part, :count]
    inverse_norm = 1.0 / np.sqrt(
        np.maximum(np.einsum("ck,cmk->cm", data.ctf2[part, :count], _power(sections)), 1e-30)
    )
    offsets = _shift_grid(SUBPIXEL_RANGE, SUBPIXEL_STEP)
    offset_phases = data.phases(offsets, count)  # (D, K)

    def candidate_scores(at: FloatArray) -> FloatArray:
        moved = spectra * data.phases(at, count)
        return np.asarray(np.einsum("ck,cmk->cm", moved, np.conj(sections)).real * inverse_norm)

    best = np.argmax(candidate_scores(shifts), axis=1)
    for _ in range(2):
        product = spectra * data.phases(shifts, count) * np.conj(sections[picked, best])  # (c, K)
        cross = (product @ offset_phases.T).real  # (c, D)
        moved = shifts[:, None, :] + offsets[None]
        cross[np.hypot(moved[..., 0], moved[..., 1]) > max_shift + 1e-9] = -np.inf
        shifts = moved[picked, np.argmax(cross, axis=1)]
        scores = candidate_scores(shifts)
        best = np.argmax(scores, axis=1)
    power = data.power[part, count - 1]
    correlation = scores[picked, best] / np.sqrt(np.maximum(power, 1e-30))
    return matrices[picked, best], shifts, np.asarray(correlation, dtype=np.float64)


def _angles_of(matrices: FloatArray) -> FloatArray:
    """Pivot (rot, tilt, psi) degrees of pivot matrices A (scipy's ZYZ of Aᵀ)."""
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # gimbal lock at tilt 0 or 180: the matrix is still exact
        angles = Rotation.from_matrix(np.transpose(matrices, (0, 2, 1))).as_euler("ZYZ", degrees=True)
    return np.asarray(angles, dtype=np.float64)
