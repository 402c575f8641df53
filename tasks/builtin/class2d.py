"""Reference-free 2D classification: multi-reference alignment with maximum-likelihood class averages.

Method: multi-reference alignment and classification (Penczek, Radermacher & Frank 1992 Ultramicroscopy
40:33) scored and averaged as in maximum-likelihood 2D classification (ML2D, Scheres et al. 2005 JMB
348:139; Scheres 2012 JSB 180:519):

    score(n, k, ψ, o) = Σ_k' [ Re(F̄_n CTF_n R̂_kψ e^{2πi k'·o}) - ½ CTF_n² |R̂_kψ|² ] / σ²(|k'|)

is the Gaussian log-likelihood of image n given class k rotated by ψ and shifted by o (relative to the
noise-only model), with the per-shell noise power σ² re-estimated from the residuals every iteration.
Rotations are searched on a regular ψ grid, translations on the integer-pixel disc |o| <= max_shift, all
of them exhaustively, by a separable Fourier sum restricted to the alignment band. Every image then
contributes to the averages of its significant poses (up to ``max_poses``, weight = posterior
probability, as ML2D's expectation step, truncated); the class, ψ and shift reported are those of the
best pose (shift refined to sub-pixel by a parabola through the peak).

Class averages are CTF-corrected Wiener averages Σ CTF·X / (Σ CTF² + 1/SNR): the per-shell SNR of each
class comes from the Fourier ring correlation (FRC) of two half-set averages (particles split at random
once), which also gives the class resolution (FRC = 0.143; Rosenthal & Henderson 2003). The two halves
share references, so this resolution is optimistic compared with a gold-standard estimate.
References are centred on their centre of mass every iteration (no drift) and masked with a soft circle.
Empty classes are re-seeded by splitting the largest class into its two half-set averages.

Pose convention (identical to RELION's rlnAnglePsi / rlnOriginX/YAngst for 2D data): with class average
R and the 2D pivot matrix A(ψ) = Rz(-ψ) (the top-left block of ``converters.geometry.pivot_matrices``
for Euler angles (0, 0, ψ)), the image is modelled as I(x) = R(Aᵀ (x + o)) = R(Rz(ψ) (x + o)): the
class average appears rotated by -ψ (pixel coordinates x right, y down the rows) and moved by -o.
Conversely the aligned image J(y) = I(A y - o) matches R. For a projection of a map at pose
(rot, tilt, ψ₀) this means ψ adds to ψ₀: the true psi of the particles of one view differs from the
estimated psi by a constant (the class average's own in-plane rotation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from scipion_kg.errors import ProcessingError

from .fourier import centered_fft2, centered_ifft2, fourier_shift_images, fsc, radial_index, resolution_at
from .particles import ParticleCTF

__all__ = [
    "Class2DResult",
    "IterationRecord",
    "classify_2d",
    "plot_class_averages",
    "rotate_images",
    "select_classes",
]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Complex64Array = npt.NDArray[np.complex64]
Progress = Callable[[int, int], None]

_WORKERS = 2
_CHUNK_BYTES = 48 * 2**20  # scratch of one alignment chunk (complex products of images x rotated references)


@dataclass(frozen=True)
class IterationRecord:
    """One iteration: how many particles changed class and the mean best score (log-likelihood units)."""

    iteration: int
    changes: int
    mean_score: float


@dataclass(frozen=True, eq=False)
class Class2DResult:
    """Outcome of :func:`classify_2d` for n particles in K classes.

    ``averages`` (K, b, b) are CTF-corrected Wiener class averages (float32, masked); ``assignments`` are
    1-based class numbers (RELION's rlnClassNumber); ``psi`` (degrees) and ``shifts`` (Å, (x, y) in the
    rlnOriginXAngst/YAngst sense) follow the module's pose convention; ``resolution`` is each class's
    half-set FRC = 0.143 resolution in Å (inf when a half has no particle; both halves are aligned to the
    same references, so noise aligned to a class correlates between halves and junk classes can look
    resolved); ``scores`` are the particles' best scores (log-likelihood gain over the noise-only model);
    ``log`` records every iteration."""

    averages: Float32Array
    assignments: IntArray
    psi: FloatArray
    shifts: FloatArray
    class_sizes: IntArray
    resolution: FloatArray
    scores: FloatArray
    pixel_size: float
    log: tuple[IterationRecord, ...]

    @property
    def class_scores(self) -> FloatArray:
        """Mean best score of each class's particles (NaN for empty classes): the log-likelihood gain of
        explaining a particle by its class average rather than by noise alone, so junk classes score low."""
        totals = np.bincount(self.assignments - 1, self.scores, self.n_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(totals / self.class_sizes, dtype=np.float64)

    @property
    def n_classes(self) -> int:
        return int(self.averages.shape[0])


# --------------------------------------------------------------------------------------------- helpers


def rotate_images(images: npt.NDArray[np.floating], angles: npt.ArrayLike, order: int = 3) -> FloatArray:
    """out_i(v) = in_i(Rz(angle_i) v) about the centre n // 2, v = (x, y) with y down the rows.

    With the pivot matrix A = Rz(-ψ), ``rotate_images(R, ψ)`` is R(Aᵀ v): the class average as it appears
    in an image of psi ψ. Applied to centred spectra it rotates them the same way (rotations commute with
    the Fourier transform)."""
    stack = np.asarray(images, dtype=np.float64)
    angle_list = np.broadcast_to(np.asarray(angles, dtype=np.float64), stack.shape[:1])
    size = stack.shape[-1]
    centre = np.array([size // 2, size // 2], dtype=np.float64)
    out = np.empty_like(stack)
    for index, angle in enumerate(angle_list):
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        # Rz(a)(x, y) = (c x - s y, s x + c y); in (row = y, column = x) order:
        matrix = np.array([[c, s], [-s, c]])
        offset = centre - matrix @ centre
        out[index] = ndimage.affine_transform(stack[index], matrix, offset, order=order, mode="constant")
    return out


def _soft_disc(size: int, radius: float, edge: float) -> FloatArray:
    grid = np.arange(size) - size // 2
    r = np.hypot(grid[:, None], grid[None, :])
    weight = np.clip((radius + edge - r) / edge, 0.0, 1.0) if edge > 0 else (r <= radius).astype(np.float64)
    return np.asarray(0.5 - 0.5 * np.cos(np.pi * weight), dtype=np.float64)


def _centre_of_mass(image: FloatArray, mask: FloatArray) -> tuple[float, float]:
    """(x, y) centre of mass, relative to the box centre, of the particle in a masked image: its positive
    part, or its negative part if the image integrates to a negative value (dark particles)."""
    polarity = 1.0 if float((image * mask).sum()) >= 0 else -1.0
    weight = np.clip(polarity * image, 0.0, None) * mask
    total = weight.sum()
    if total <= 0:
        return 0.0, 0.0
    grid = np.arange(image.shape[0]) - image.shape[0] // 2
    return float((weight.sum(axis=0) * grid).sum() / total), float((weight.sum(axis=1) * grid).sum() / total)


def _lowpass_images(images: FloatArray, resolution: float, pixel_size: float) -> FloatArray:
    size = images.shape[-1]
    shells = np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2, indexing="ij"))
    cutoff = size * pixel_size / resolution
    weight = np.clip((cutoff + 1.0 - shells) / 2.0, 0.0, 1.0)
    return centered_ifft2(centered_fft2(images) * (0.5 - 0.5 * np.cos(np.pi * weight)))


@dataclass(frozen=True)
class _Band:
    """The alignment band: the half-plane ky >= 0 of the central crop x crop of a centred spectrum."""

    size: int  # particle box b
    crop: int  # even crop box
    rows: slice  # rows of the full centred spectrum kept (ky = 0 .. crop / 2 - 1)
    cols: slice
    weight: FloatArray  # (h, crop): 0 outside the band, 2 for ky > 0 (Hermitian pair), 1 on the ky = 0 row
    shells: IntArray  # (h, crop) integer shell of each coefficient
    ky: FloatArray  # (h,) cycles per pixel
    kx: FloatArray  # (crop,)


def _make_band(size: int, pixel_size: float, lowpass: float, highpass: float | None) -> _Band:
    r_max = min(size * pixel_size / lowpass, size / 2 - 1.0)
    r_min = size * pixel_size / highpass if highpass else 1.0
    if r_max < max(r_min, 2.0):
        raise ProcessingError(
            f"alignment band is empty: lowpass {lowpass} Å (and highpass {highpass}) leaves no Fourier shell "
            f"of a {size} px box at {pixel_size} Å/px; use a lowpass of at most {size * pixel_size / 3:.1f} Å"
        )
    crop = min(size, 2 * math.ceil(r_max) + 2)
    crop += crop % 2
    centre = size // 2
    rows = slice(centre, centre + crop // 2)
    cols = slice(centre - crop // 2, centre + crop // 2)
    ky = np.arange(crop // 2, dtype=np.float64)
    kx = np.arange(crop, dtype=np.float64) - crop // 2
    radius = np.hypot(ky[:, None], kx[None, :])
    inside = (radius <= r_max) & (radius >= r_min)
    # On the ky = 0 row keep kx >= 0 only and count it twice, like the other rows (Hermitian pairs).
    inside[0, : crop // 2] = False
    weight = np.where(inside, 2.0, 0.0)
    weight[0, crop // 2] = 1.0 if r_min <= 0 else 0.0
    return _Band(size, crop, rows, cols, weight, np.rint(radius).astype(np.int64), ky / size, kx / size)


def _band_of(spectra: npt.NDArray[np.complexfloating], band: _Band) -> Complex64Array:
    return np.asarray(spectra[..., band.rows, band.cols], dtype=np.complex64)


@dataclass
class _Accumulator:
    """CTF-weighted sums of aligned images in the image frame, binned by (half, class, psi index)."""

    numerators: dict[tuple[int, int, int], npt.NDArray[np.complex128]]
    denominators: dict[tuple[int, int, int], FloatArray]


@dataclass
class _ChunkResult:
    reference: IntArray  # flat index class * n_psi + psi index
    shift: FloatArray  # (c, 2) origin shifts in px
    score: FloatArray
    residual_sum: FloatArray
    residual_count: FloatArray
    accumulator: _Accumulator


@dataclass(frozen=True)
class _Problem:
    images: Float32Array  # masked images
    band: _Band
    spectra: Complex64Array  # (n, h, crop) band of the images' spectra
    ctf_band: Float32Array  # (n, h, crop)
    ctf: ParticleCTF | None
    pixel_size: float
    halves: IntArray
    n_psi: int
    shift_grid: IntArray  # (m,) integer shifts of one axis
    shift_allowed: npt.NDArray[np.bool_]  # (m, m) [dy, dx] inside the disc
    max_poses: int  # significant poses kept per image


def _align_chunk(
    problem: _Problem, indices: IntArray, references: Complex64Array, sigma2: FloatArray
) -> _ChunkResult:
    band = problem.band
    n_refs = references.shape[0]
    inverse_noise = np.asarray(
        band.weight / sigma2[np.minimum(band.shells, len(sigma2) - 1)], dtype=np.float32
    )
    spectra = problem.spectra[indices]
    ctf = problem.ctf_band[indices]
    weighted = (np.conj(spectra) * ctf * inverse_noise).astype(np.complex64)  # (c, h, crop)
    # ½ Σ CTF² |R|² / σ² for every image and rotated reference: one real matrix product.
    norms = (
        0.5
        * (ctf**2 * inverse_noise).reshape(len(indices), -1)
        @ (np.abs(references) ** 2).reshape(n_refs, -1).T.astype(np.float32)
    )
    grid = problem.shift_grid.astype(np.float64)
    ex = np.exp(2j * np.pi * np.outer(band.kx, grid)).astype(np.complex64)  # (crop, m)
    ey = np.exp(2j * np.pi * np.outer(grid, band.ky)).astype(np.complex64)  # (m, h)
    products = weighted[:, None] * references[None]  # (c, r, h, crop)
    h, crop = band.weight.shape
    partial = (products.reshape(-1, crop) @ ex).reshape(len(indices) * n_refs, h, len(grid))
    correlation = np.matmul(ey, partial).real.reshape(len(indices), n_refs, len(grid), len(grid))
    scores = correlation - norms[:, :, None, None]
    scores[:, :, ~problem.shift_allowed] = -np.inf
    flat = scores.reshape(len(indices), -1).argmax(axis=1)
    best_ref, best_y, best_x = np.unravel_index(flat, scores.shape[1:])
    best_score = scores.reshape(len(indices), -1)[np.arange(len(indices)), flat]
    shift = np.stack([grid[best_x], grid[best_y]], axis=1)
    # Sub-pixel refinement: a parabola through the peak and its neighbours along x and along y.
    for axis, (pos, column) in enumerate(((best_x, 0), (best_y, 1))):
        del axis
        inner = (pos > 0) & (pos < len(grid) - 1)
        rows = np.nonzero(inner)[0]
        if len(rows) == 0:
            continue
        r, y, x = best_ref[rows], best_y[rows], best_x[rows]
        if column == 0:
            left, right = scores[rows, r, y, x - 1], scores[rows, r, y, x + 1]
        else:
            left, right = scores[rows, r, y - 1, x], scores[rows, r, y + 1, x]
        centre = best_score[rows]
        curvature = left - 2 * centre + right
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.where(
                np.isfinite(left) & np.isfinite(right) & (curvature < 0),
                0.5 * (left - right) / curvature,
                0.0,
            )
        shift[rows, column] += np.clip(delta, -0.5, 0.5)
    # Residual power per shell at the best pose (for the next noise estimate).
    phase = np.exp(
        2j
        * np.pi
        * (
            band.kx[None, None, :] * shift[:, 0, None, None]
            + band.ky[None, :, None] * shift[:, 1, None, None]
        )
    )
    predicted = ctf * references[best_ref] * phase
    residual = np.abs(spectra - predicted) ** 2
    shells = np.broadcast_to(band.shells, residual.shape).ravel()
    n_shells = int(band.shells.max()) + 1
    residual_sum = np.asarray(np.bincount(shells, residual.ravel(), n_shells), dtype=np.float64)
    residual_count = np.asarray(np.bincount(shells, minlength=n_shells), dtype=np.float64)
    # Posterior over (reference, dy, dx): the significant poses of every image (ML2D's expectation step).
    flat_scores = scores.reshape(len(indices), -1)
    keep = min(problem.max_poses, flat_scores.shape[1])
    top = np.argpartition(-flat_scores, keep - 1, axis=1)[:, :keep]
    top_scores = np.take_along_axis(flat_scores, top, axis=1)
    weights = np.exp(np.clip(top_scores - best_score[:, None], -50.0, 0.0))
    weights[weights < 1e-4] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    accumulator = _accumulate(problem, indices, top, weights, n_refs)
    return _ChunkResult(
        best_ref.astype(np.int64), shift, best_score, residual_sum, residual_count, accumulator
    )


def _accumulate(
    problem: _Problem, indices: IntArray, poses: IntArray, weights: FloatArray, n_refs: int
) -> _Accumulator:
    """Σ w · CTF · F · e^{-2πi k·o} and Σ w · CTF² of the chunk's images over their significant poses,
    binned by (half, class, psi)."""
    size = problem.band.size
    spectra = centered_fft2(problem.images[indices])
    k = (np.arange(size) - size // 2) / size
    grid = problem.shift_grid.astype(np.float64)
    table = np.exp(-2j * np.pi * np.outer(grid, k))  # (m, b): e^{-2πi k d} for every grid shift d
    m = len(grid)
    if problem.ctf is None:
        ctf: FloatArray = np.ones((len(indices), size, size))
    else:
        ctf = problem.ctf.subset(indices).ctf_images(size, problem.pixel_size).astype(np.float64)
    numerators: dict[tuple[int, int, int], npt.NDArray[np.complex128]] = {}
    denominators: dict[tuple[int, int, int], FloatArray] = {}
    for row, index in enumerate(indices):
        significant = weights[row] > 0
        pose = poses[row, significant]
        weight = weights[row, significant]
        ref, rest = np.divmod(pose, m * m)
        dy, dx = np.divmod(rest, m)
        weighted = ctf[row] * spectra[row]
        contributions = weight[:, None, None] * weighted[None] * table[dy][:, :, None] * table[dx][:, None, :]
        ctf2 = ctf[row] ** 2
        half = int(problem.halves[index])
        for number, reference in enumerate(ref):
            key = (half, int(reference) // problem.n_psi, int(reference) % problem.n_psi)
            if key in numerators:
                numerators[key] += contributions[number]
                denominators[key] += weight[number] * ctf2
            else:
                numerators[key] = contributions[number].copy()
                denominators[key] = weight[number] * ctf2
    return _Accumulator(numerators, denominators)


def _frc_snr(half1: FloatArray, half2: FloatArray) -> tuple[FloatArray, FloatArray]:
    """FRC of two half averages and the SNR of their sum per shell (FRC_full = 2 FRC / (1 + FRC))."""
    curve = fsc(half1, half2)
    full = np.clip(2 * curve / (1 + np.clip(curve, -0.99, None)), 1e-4, 0.999)
    return curve, full / (1 - full)


# --------------------------------------------------------------------------------------------- public API


def classify_2d(
    images: npt.NDArray[np.floating],
    pixel_size: float,
    n_classes: int,
    *,
    n_iterations: int = 10,
    psi_step: float = 10.0,
    max_shift_px: int = 4,
    ctf: ParticleCTF | None = None,
    mask_diameter: float | None = None,
    seed: int = 0,
    lowpass: float = 15.0,
    highpass: float | None = None,
    initial_lowpass: float = 30.0,
    max_poses: int = 32,
    progress: Progress | None = None,
) -> Class2DResult:
    """Classify ``images`` (n, b, b) into ``n_classes`` 2D classes with in-plane alignment.

    ``lowpass`` / ``highpass`` (Å) bound the Fourier band used for alignment (the class averages keep
    every frequency, Wiener-weighted by their FRC); ``mask_diameter`` (Å, default 90 % of the box) is
    the soft circular mask of images and averages; ``psi_step`` (degrees) is rounded so that it divides
    360; translations are searched within ``max_shift_px`` pixels of the box centre. Initial references
    are K distinct random particles low-passed to ``initial_lowpass`` Å. With ``ctf`` the score and the
    averages use each particle's CTF (input images must not be phase-flipped then); without, images are
    taken as they are (e.g. phase-flipped). Deterministic for a given ``seed``."""
    stack = np.asarray(images, dtype=np.float32)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ProcessingError(f"images must be a stack (n, b, b) of square images, got shape {stack.shape}")
    n, size = stack.shape[0], stack.shape[1]
    if pixel_size <= 0:
        raise ProcessingError(f"pixel size {pixel_size} Å must be positive")
    if not 1 <= n_classes <= n:
        raise ProcessingError(f"n_classes {n_classes} must lie between 1 and the number of images ({n})")
    if n_iterations < 1:
        raise ProcessingError(f"n_iterations {n_iterations} must be at least 1")
    if not 0 < psi_step <= 360:
        raise ProcessingError(f"psi_step {psi_step} degrees must lie in (0, 360]")
    if max_shift_px < 0 or max_shift_px >= size // 2:
        raise ProcessingError(
            f"max_shift_px {max_shift_px} must lie in [0, {size // 2 - 1}] for a {size} px box"
        )
    if ctf is not None and len(ctf) != n:
        raise ProcessingError(f"ctf has {len(ctf)} particles but there are {n} images")
    if not np.all(np.isfinite(stack)):
        raise ProcessingError("images contain non-finite values (NaN or inf)")
    diameter = mask_diameter if mask_diameter is not None else 0.9 * size * pixel_size
    radius = diameter / pixel_size / 2
    if not 2 <= radius <= size / 2:
        raise ProcessingError(
            f"mask diameter {diameter} Å must lie between {4 * pixel_size} Å "
            f"and the box ({size * pixel_size} Å)"
        )
    rng = np.random.default_rng(seed)
    mask = _soft_disc(size, radius - 3.0, 3.0)
    masked = (stack * mask).astype(np.float32)
    band = _make_band(size, pixel_size, lowpass, highpass)
    n_psi = max(1, round(360.0 / psi_step))
    psi_values = np.asarray(np.arange(n_psi) * (360.0 / n_psi), dtype=np.float64)
    grid = np.arange(-max_shift_px, max_shift_px + 1, dtype=np.int64)
    allowed = (grid[:, None] ** 2 + grid[None, :] ** 2) <= max_shift_px**2 + 1e-9
    halves = np.zeros(n, dtype=np.int64)
    halves[rng.permutation(n)[1::2]] = 1

    spectra_band = np.empty((n, *band.weight.shape), dtype=np.complex64)
    ctf_band = np.ones((n, *band.weight.shape), dtype=np.float32)
    for start in range(0, n, 256):
        part = slice(start, start + 256)
        spectra_band[part] = _band_of(centered_fft2(masked[part]), band)
        if ctf is not None:
            ctf_full = ctf.subset(np.arange(n)[part]).ctf_images(size, pixel_size)
            ctf_band[part] = ctf_full[:, band.rows, band.cols]
    problem = _Problem(
        masked, band, spectra_band, ctf_band, ctf, pixel_size, halves, n_psi, grid, allowed, max_poses
    )

    # Noise power per shell, first from the images themselves (their signal is weak), then from residuals.
    n_shells = int(band.shells.max()) + 1
    power = np.abs(spectra_band) ** 2
    shells = np.broadcast_to(band.shells, power.shape).ravel()
    sigma2 = np.bincount(shells, power.ravel(), n_shells) / np.maximum(
        np.bincount(shells, minlength=n_shells), 1
    )
    sigma2 = np.maximum(sigma2, 1e-12 * max(float(sigma2.max()), 1e-30))

    seeds = rng.choice(n, size=n_classes, replace=False)
    references = _lowpass_images(masked[seeds].astype(np.float64), initial_lowpass, pixel_size) * mask
    if (
        ctf is not None
    ):  # a single particle carries its CTF; flip its phases so the seed has positive contrast
        flip = np.sign(ctf.subset(seeds).ctf_images(size, pixel_size))
        references = centered_ifft2(centered_fft2(references) * flip) * mask

    per_image_bytes = n_classes * n_psi * band.weight.size * 8 * 2
    chunk = max(1, min(256, _CHUNK_BYTES // per_image_bytes))
    chunks = [np.arange(start, min(n, start + chunk)) for start in range(0, n, chunk)]
    assignments = np.full(n, -1, dtype=np.int64)
    log: list[IterationRecord] = []
    averages = np.zeros((n_classes, size, size))
    resolution = np.full(n_classes, np.inf)
    shifts_px = np.zeros((n, 2))
    psi = np.zeros(n)
    scores = np.zeros(n)
    with ThreadPoolExecutor(_WORKERS) as pool:
        for iteration in range(1, n_iterations + 1):
            references = _centred(references, mask)
            rotated = rotate_images(np.repeat(references, n_psi, axis=0), np.tile(psi_values, n_classes))
            reference_band = _band_of(centered_fft2(rotated), band)

            results = list(
                pool.map(_align_chunk, repeat(problem), chunks, repeat(reference_band), repeat(sigma2))
            )
            best = np.concatenate([r.reference for r in results])
            shifts_px = np.concatenate([r.shift for r in results])
            scores = np.concatenate([r.score for r in results])
            new_assignments = best // n_psi
            psi = psi_values[best % n_psi]
            changes = int(np.count_nonzero(new_assignments != assignments))
            assignments = new_assignments
            log.append(IterationRecord(iteration, changes, float(scores.mean())))
            residual_sum = np.sum([r.residual_sum for r in results], axis=0)
            residual_count = np.sum([r.residual_count for r in results], axis=0)
            sigma2 = np.where(residual_count > 0, residual_sum / np.maximum(residual_count, 1), sigma2)
            sigma2 = np.maximum(sigma2, 1e-12 * max(float(sigma2.max()), 1e-30))

            averages, halves_avg, resolution = _class_averages(
                [r.accumulator for r in results], n_classes, psi_values, size, pixel_size, mask
            )
            references = averages.copy()
            sizes = np.bincount(assignments, minlength=n_classes)
            if iteration < n_iterations:
                references = _reseed_empty(references, halves_avg, sizes, mask)
            if progress is not None:
                progress(iteration, n_iterations)

    return Class2DResult(
        averages=averages.astype(np.float32),
        assignments=assignments + 1,
        psi=psi,
        shifts=shifts_px * pixel_size,
        class_sizes=np.bincount(assignments, minlength=n_classes).astype(np.int64),
        resolution=resolution,
        scores=scores,
        pixel_size=float(pixel_size),
        log=tuple(log),
    )


def _centred(references: FloatArray, mask: FloatArray) -> FloatArray:
    moves = np.array([_centre_of_mass(reference, mask) for reference in references])
    return np.asarray(fourier_shift_images(references, -moves) * mask, dtype=np.float64)


def _reseed_empty(
    references: FloatArray, halves: FloatArray, sizes: IntArray, mask: FloatArray
) -> FloatArray:
    out = references.copy()
    sizes = sizes.copy()
    for empty in np.nonzero(sizes == 0)[0]:
        largest = int(np.argmax(sizes))
        if sizes[largest] < 4:
            break
        out[empty] = halves[largest, 0] * mask
        out[largest] = halves[largest, 1] * mask
        sizes[empty] = sizes[largest] // 2
        sizes[largest] -= sizes[empty]
    return out


def _class_averages(
    accumulators: Sequence[_Accumulator],
    n_classes: int,
    psi_values: FloatArray,
    size: int,
    pixel_size: float,
    mask: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wiener class averages (K, b, b), half averages (K, 2, b, b) and FRC resolutions (K,)."""
    numerators = np.zeros((2, n_classes, size, size), dtype=np.complex128)
    denominators = np.zeros((2, n_classes, size, size))
    counts = np.zeros((2, n_classes), dtype=np.int64)
    bins: dict[tuple[int, int, int], tuple[npt.NDArray[np.complex128], FloatArray]] = {}
    for accumulator in accumulators:
        for key, numerator in accumulator.numerators.items():
            if key in bins:
                bins[key] = (bins[key][0] + numerator, bins[key][1] + accumulator.denominators[key])
            else:
                bins[key] = (numerator, accumulator.denominators[key])
    for (half, cls, psi_index), (numerator, denominator) in sorted(bins.items(), key=lambda item: item[0]):
        angle = -psi_values[psi_index]  # image frame -> class frame: J(y) = I(A y - o), A = Rz(-ψ)
        real = rotate_images(centered_ifft2(numerator)[None], angle)[0]
        numerators[half, cls] += centered_fft2(real)
        denominators[half, cls] += rotate_images(denominator[None], angle, order=1)[0]
        counts[half, cls] += 1
    shells = radial_index((size, size))
    n_shells = size // 2 + 1
    shell_index = np.minimum(shells, n_shells - 1)
    averages = np.zeros((n_classes, size, size))
    halves = np.zeros((n_classes, 2, size, size))
    resolution = np.full(n_classes, np.inf)
    for cls in range(n_classes):
        for half in range(2):
            denominator = denominators[half, cls]
            floor = 1e-3 * max(float(denominator.mean()), 1e-12)
            halves[cls, half] = centered_ifft2(numerators[half, cls] / (denominator + floor)) * mask
        total_num = numerators[:, cls].sum(axis=0)
        total_den = denominators[:, cls].sum(axis=0)
        if not total_den.any():
            continue
        if counts[0, cls] and counts[1, cls]:
            curve, snr = _frc_snr(halves[cls, 0], halves[cls, 1])
            resolution[cls] = resolution_at(curve, 0.143, size, pixel_size)
        else:
            snr = np.full(n_shells, 1e-4)
        shell_mean = np.bincount(shell_index.ravel(), total_den.ravel(), n_shells) / np.bincount(
            shell_index.ravel(), minlength=n_shells
        )
        regulariser = (shell_mean / snr)[shell_index] + 1e-6 * max(float(total_den.mean()), 1e-12)
        averages[cls] = centered_ifft2(total_num / (total_den + regulariser)) * mask
    return averages, halves, resolution


def select_classes(
    result: Class2DResult,
    *,
    min_particles: int | None = None,
    top_fraction: float | None = None,
    max_resolution: float | None = None,
    min_score_ratio: float | None = 0.25,
) -> list[int]:
    """1-based numbers of the classes to keep, in increasing order. Empty classes are never kept.

    Criteria (every one given must hold):
    - ``min_particles``: at least that many particles;
    - ``max_resolution``: half-set FRC resolution at most that many Å (optimistic for junk classes, see
      :class:`Class2DResult`);
    - ``min_score_ratio`` (default 0.25): the class's mean score is at least that fraction of the median
      class score, which removes classes of noise, ice or carbon (their particles gain little likelihood
      from any average); ``None`` disables it;
    - ``top_fraction``: of the classes passing the others, the best fraction (at least one) ranked by
      class score, ties broken by size."""
    if top_fraction is not None and not 0 < top_fraction <= 1:
        raise ProcessingError(f"top_fraction {top_fraction} must lie in (0, 1]")
    if min_particles is not None and min_particles < 0:
        raise ProcessingError(f"min_particles {min_particles} must not be negative")
    if max_resolution is not None and max_resolution <= 0:
        raise ProcessingError(f"max_resolution {max_resolution} Å must be positive")
    keep = result.class_sizes > 0
    scores = np.where(keep, result.class_scores, -np.inf)
    if min_particles is not None:
        keep &= result.class_sizes >= min_particles
    if max_resolution is not None:
        keep &= result.resolution <= max_resolution
    if min_score_ratio is not None and np.any(result.class_sizes > 0):
        median = float(np.median(scores[result.class_sizes > 0]))
        keep &= scores >= min_score_ratio * median
    candidates = np.nonzero(keep)[0]
    if top_fraction is not None and len(candidates):
        order = sorted(candidates, key=lambda c: (-scores[c], -result.class_sizes[c], c))
        count = max(1, math.ceil(top_fraction * len(candidates) - 1e-9))
        candidates = np.array(sorted(order[:count]), dtype=np.int64)
    return [int(c) + 1 for c in candidates]


def plot_class_averages(result: Class2DResult, path: Path, columns: int = 6) -> None:
    """A PNG gallery of the class averages with their number, size and resolution (deterministic bytes)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    if columns < 1:
        raise ProcessingError(f"columns {columns} must be at least 1")
    count = result.n_classes
    rows = max(1, math.ceil(count / columns))
    cols = min(columns, max(count, 1))
    figure = Figure(figsize=(1.6 * cols, 1.8 * rows), dpi=100)
    for index in range(rows * cols):
        axes = figure.add_subplot(rows, cols, index + 1)
        axes.set_axis_off()
        if index >= count:
            continue
        image = result.averages[index]
        low, high = np.percentile(image, [1, 99]) if np.ptp(image) > 0 else (0.0, 1.0)
        axes.imshow(
            image, cmap="gray", vmin=low, vmax=high if high > low else low + 1, interpolation="nearest"
        )
        res = result.resolution[index]
        label = f"{index + 1}: n={result.class_sizes[index]}" + (f"\n{res:.1f} Å" if np.isfinite(res) else "")
        axes.set_title(label, fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    from scipion_kg.atomic import atomic_write_bytes

    atomic_write_bytes(Path(path), buffer.getvalue())
