"""Beam-induced motion correction of movies: whole-frame then patch alignment, and dose weighting.

Method (MotionCor2-style, as in RELION's own implementation):
- Whole-frame alignment (Li et al. 2013, Nat Methods 10:584; Zheng et al. 2017, Nat Methods 14:331):
  every frame is cross-correlated with the sum of all the *other* aligned frames (leave-one-out, so a
  frame's own noise cannot pull the peak to its current position). The cross-spectrum is filtered with
  exp(-B k² / 2) (each image with the usual amplitude envelope exp(-B k² / 4), k in 1/Å) and the
  correlation is computed on a Fourier-cropped grid where the filter has not yet vanished. The peak is
  refined by a 1D parabola along x and along y. Each iteration measures the *residual* shift of every
  frame, re-anchors the residuals to frame 0 and applies them by Fourier phase ramps; iterations stop when
  the RMS residual drops below ``tolerance`` (RELION stops at 0.5 px; we default to 0.05 px).
- Patch alignment (optional, ``patches`` ≥ 3 x 3, as RELION requires): the globally aligned frames are
  cut into tiles; each tile is taken with a margin of 1/8 of its size from its neighbours (clipped at the
  frame edge), mean-subtracted per frame, apodised with a raised-cosine edge as wide as the margin, and
  aligned with the same iterative scheme within ±max(4, size / 8) px. The per-tile residual trajectories
  are fitted with MotionCor2's deformation model (the 18-term basis of RELION's ThirdOrderPolynomialModel):
  l(x, y, z) = Σ_m c_m(z) p_m(x, y), p ∈ {1, x, x², y, y², xy}, c_m(z) = a z + b z² + c z³, with z the
  0-based frame index and x = column / n_x - 0.5, y = row / n_y - 0.5. Each tile also gets a free
  intercept in the fit, because its measured trajectory is anchored to its own (noisy) frame 0. The model
  is then applied to every pixel by cubic B-spline interpolation (RELION uses bilinear interpolation).
- Dose weighting (Grant & Grigorieff 2015, eLife 4:e06980): critical exposure
  Ne(k) = 0.245 k^-1.665 + 2.81 e⁻/Å² (k in 1/Å, fitted at 300 kV; at 200 kV the dose is divided by
  0.8, as RELION does), frame weights w_f(k) = exp(-N_f / (2 Ne(k))) with N_f the accumulated exposure
  at the *end* of frame f, normalised per frequency as in their Eq. 9 (w_f / sqrt(Σ_g w_g²)) and scaled by
  sqrt(n_frames) so that the zero frequency equals the plain sum (RELION omits that constant factor).

Conventions: frames are (n_frames, y, x); a shift is (dx, dy) in pixels and is the displacement of the
specimen, frame_f(x) ≈ S(x - d_f), relative to frame 0 (d_0 = 0). RELION's rlnMicrographShiftX/Y are the
corrections, i.e. -d. Shifts are applied circularly (Fourier phase ramps, ``grid-wrap`` interpolation), so
the few pixels at the edges that left the field of view wrap around, as in RELION's own implementation.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy import ndimage

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ProcessingError

__all__ = [
    "ConvergenceStep",
    "LocalMotionModel",
    "MotionResult",
    "correct_motion",
    "critical_exposure",
    "dose_weights",
    "plot_drift",
]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
Complex64Array = npt.NDArray[np.complex64]
Progress = Callable[[int, int], None]

# Grant & Grigorieff 2015, eLife 4:e06980, Eq. 3 (fitted at 300 kV).
_NE_A, _NE_B, _NE_C = 0.245, -1.665, 2.81
_FILTER_FLOOR = 1e-7  # the cross-correlation is cropped where the B-factor filter falls below this
_MIN_FRAME_PX = 32
_MIN_PATCH_PX = 64
_THREADS = 2


@dataclass(frozen=True)
class ConvergenceStep:
    """One alignment iteration: ``stage`` is "global" or "patch <row>,<column>" (0-based tile indices);
    the update is the residual shift measured in that iteration (RMS and maximum over frames, px)."""

    stage: str
    iteration: int
    rms_update_px: float
    max_update_px: float


@dataclass(frozen=True)
class LocalMotionModel:
    """MotionCor2/RELION third-order deformation model of the motion *beyond* the global shifts.

    ``coefficients`` (2, 18): rows dx, dy; columns in RELION's order
    [z, z², z³, xz, xz², xz³, x²z, x²z², x²z³, yz, yz², yz³, y²z, y²z², y²z³, xyz, xyz², xyz³]
    with z the 0-based frame index, x = column / n_x - 0.5, y = row / n_y - 0.5 (``shape`` = (n_y, n_x)).
    The value is a displacement of the specimen (RELION's coefficients describe the correction, -l).
    ``fit_rmsd_px`` is the RMS length of the residual 2D vectors of the tile trajectories after the fit."""

    coefficients: FloatArray
    shape: tuple[int, int]
    fit_rmsd_px: float

    def displacement(
        self, x_px: npt.ArrayLike, y_px: npt.ArrayLike, frame: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Local displacement (dx, dy) px at pixel positions ``x_px``, ``y_px`` in 0-based ``frame``
        (broadcast against each other)."""
        x = np.asarray(x_px, dtype=np.float64) / self.shape[1] - 0.5
        y = np.asarray(y_px, dtype=np.float64) / self.shape[0] - 0.5
        z = np.asarray(frame, dtype=np.float64)
        terms = _basis(x, y, z)
        dx = sum(self.coefficients[0, j] * terms[j] for j in range(18))
        dy = sum(self.coefficients[1, j] * terms[j] for j in range(18))
        return np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)

    def field(self, frame: int, rows: FloatArray, columns: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Displacement (dx, dy) of one frame on the grid ``rows`` x ``columns`` (pixel indices), each
        (n_rows, n_columns); the same values as :meth:`displacement`, evaluated separably."""
        x = (np.asarray(columns, dtype=np.float64) / self.shape[1] - 0.5)[None, :]
        y = (np.asarray(rows, dtype=np.float64) / self.shape[0] - 0.5)[:, None]
        powers = np.array([frame, frame**2, frame**3], dtype=np.float64)
        out = []
        for axis in range(2):
            c = self.coefficients[axis].reshape(6, 3) @ powers
            out.append(np.asarray(c[0] + (c[1] + c[2] * x) * x + (c[3] + c[4] * y + c[5] * x) * y))
        return out[0], out[1]


@dataclass(frozen=True)
class MotionResult:
    """Output of :func:`correct_motion`.

    - ``aligned_sum``: (y, x) float32, dose-weighted if ``dose_weighted``, else ``aligned_sum_no_dw``;
    - ``shifts``: (n_frames, 2) global displacement (dx, dy) px of the specimen relative to frame 0;
    - ``accumulated_dose``: (n_frames,) e⁻/Å² at the end of each frame (pre-exposure included);
    - ``patch_shifts``: (n_patch_y, n_patch_x, n_frames, 2) measured total displacement (global + local)
      of each tile relative to its frame 0, ``patch_centres`` (n_patch_y, n_patch_x, 2) as (x, y) px (the
      centre of the correlated region: the tile plus its margin, clipped to the frame), ``local_model``
      the fitted deformation; all three None in whole-frame mode;
    - ``convergence``: every iteration of every alignment; ``converged``: the global alignment reached
      ``tolerance`` within ``iterations``."""

    aligned_sum: Float32Array
    aligned_sum_no_dw: Float32Array
    shifts: FloatArray
    accumulated_dose: FloatArray
    pixel_size: float
    dose_weighted: bool
    convergence: tuple[ConvergenceStep, ...]
    converged: bool
    patch_shifts: FloatArray | None = None
    patch_centres: FloatArray | None = None
    local_model: LocalMotionModel | None = None


def critical_exposure(k: npt.ArrayLike) -> FloatArray:
    """Critical exposure Ne(k) = 0.245 k^-1.665 + 2.81 e⁻/Å² at 300 kV (k in 1/Å; infinite at k = 0)."""
    frequency = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(frequency > 0, _NE_A * np.power(np.abs(frequency), _NE_B) + _NE_C, np.inf)


def _voltage_factor(voltage: float) -> float:
    """Divisor of the dose: 1 at 300 kV, 0.8 at 200 kV (Grant & Grigorieff 2015; RELION accepts ±2 kV)."""
    if abs(voltage - 300.0) <= 2.0:
        return 1.0
    if abs(voltage - 200.0) <= 2.0:
        return 0.8
    raise ProcessingError(
        f"voltage {voltage} kV: dose weighting is calibrated only for 300 kV or 200 kV "
        "(Grant & Grigorieff 2015); pass dose_weighting=False for other voltages"
    )


def _rfft_frequency(shape: tuple[int, int], pixel_size: float) -> FloatArray:
    """|k| in 1/Å on the rfft2 layout (n_y, n_x // 2 + 1)."""
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel_size)[None, :]
    return np.asarray(np.sqrt(ky**2 + kx**2), dtype=np.float64)


def _dose_weight_parts(
    shape: tuple[int, int], pixel_size: float, accumulated_dose: FloatArray, voltage: float
) -> tuple[FloatArray, FloatArray]:
    """(2 Ne(k) on the rfft grid, per-frequency scale sqrt(n / Σ_g w_g²)): W_f = exp(-N_f / 2Ne) · scale."""
    doses = np.asarray(accumulated_dose, dtype=np.float64) / _voltage_factor(voltage)
    two_ne = 2.0 * critical_exposure(_rfft_frequency(shape, pixel_size))
    sum_sq = np.zeros_like(two_ne)
    for dose in doses:
        sum_sq += np.exp(-2.0 * dose / two_ne)
    scale = np.sqrt(len(doses) / np.maximum(sum_sq, 1e-300))
    return two_ne, scale


def dose_weights(
    shape: tuple[int, int], pixel_size: float, accumulated_dose: npt.ArrayLike, voltage: float = 300.0
) -> Float32Array:
    """Normalised dose weights (n_frames, n_y, n_x // 2 + 1) on the ``numpy.fft.rfft2`` layout.

    W_f(k) = exp(-N_f / (2 Ne(k))) · sqrt(n_frames / Σ_g exp(-N_g / Ne(k))), so Σ_f W_f² = n_frames at every
    frequency (flat noise power, like a plain sum) and W_f(0) = 1. ``accumulated_dose`` is N_f in e⁻/Å²."""
    doses = np.asarray(accumulated_dose, dtype=np.float64).ravel()
    two_ne, scale = _dose_weight_parts(shape, pixel_size, doses, voltage)
    factor = _voltage_factor(voltage)
    return np.stack([np.exp(-dose / factor / two_ne) * scale for dose in doses]).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Input checks


def _as_stack(frames: npt.ArrayLike | Sequence[npt.ArrayLike]) -> Float32Array:
    if isinstance(frames, np.ndarray):
        stack = frames
    else:
        items = [np.asarray(frame) for frame in frames]  # type: ignore[union-attr]
        shapes = [item.shape for item in items]
        for index, item_shape in enumerate(shapes):
            if item_shape != shapes[0]:
                raise ProcessingError(
                    f"frames: frame {index} has shape {item_shape}, frame 0 has {shapes[0]}; "
                    "all frames of a movie must have the same 2D shape"
                )
        stack = np.stack(items) if items else np.zeros((0, 0, 0))
    if stack.ndim != 3:
        raise ProcessingError(
            f"frames: expected a (n_frames, y, x) stack, got an array of shape {stack.shape}"
        )
    if not np.issubdtype(stack.dtype, np.number) or np.issubdtype(stack.dtype, np.complexfloating):
        raise ProcessingError(f"frames: expected real numbers, got dtype {stack.dtype}")
    if stack.shape[0] < 2:
        raise ProcessingError(
            f"frames: motion correction needs at least 2 frames, got {stack.shape[0]} "
            "(a single image has no motion to estimate)"
        )
    if min(stack.shape[1:]) < _MIN_FRAME_PX:
        raise ProcessingError(
            f"frames: frames of {stack.shape[2]} x {stack.shape[1]} px are too small; "
            f"at least {_MIN_FRAME_PX} x {_MIN_FRAME_PX} px are needed"
        )
    data = np.asarray(stack, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        bad_frames = np.flatnonzero(~finite.reshape(len(data), -1).all(axis=1))
        raise ProcessingError(
            f"frames: {int((~finite).sum())} NaN or infinite pixel(s) in frame(s) "
            f"{', '.join(str(i) for i in bad_frames[:10])}{' ...' if len(bad_frames) > 10 else ''} "
            "(0-based); replace or mask defective pixels before motion correction"
        )
    return data


def _check_parameters(
    pixel_size: float,
    dose_per_frame: float,
    pre_exposure: float,
    patches: tuple[int, int],
    bfactor: float,
    iterations: int,
    tolerance: float,
    dose_weighting: bool,
    voltage: float,
    frame_shape: tuple[int, int],
) -> None:
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ProcessingError(f"pixel_size {pixel_size} Å: must be a positive number")
    if not (np.isfinite(dose_per_frame) and dose_per_frame >= 0):
        raise ProcessingError(f"dose_per_frame {dose_per_frame} e/Å²: must be zero or positive")
    if not (np.isfinite(pre_exposure) and pre_exposure >= 0):
        raise ProcessingError(f"pre_exposure {pre_exposure} e/Å²: must be zero or positive")
    if dose_weighting:
        if dose_per_frame <= 0:
            raise ProcessingError(
                f"dose_per_frame {dose_per_frame} e/Å²: dose weighting needs a positive dose per frame "
                "(or pass dose_weighting=False)"
            )
        _voltage_factor(voltage)
    if not (np.isfinite(bfactor) and bfactor >= 0):
        raise ProcessingError(f"bfactor {bfactor} Å²: must be zero or positive (150 is usual)")
    if int(iterations) != iterations or iterations < 1:
        raise ProcessingError(f"iterations {iterations}: must be a positive integer")
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ProcessingError(f"tolerance {tolerance} px: must be positive")
    if (
        len(patches) != 2
        or any(int(p) != p or p < 1 for p in patches)
        or (tuple(patches) != (1, 1) and min(patches) < 3)
    ):
        raise ProcessingError(
            f"patches {tuple(patches)}: use (1, 1) for whole-frame alignment only, or at least 3 patches "
            "along each axis (e.g. (5, 5)) so the local deformation model can be fitted"
        )
    if tuple(patches) != (1, 1):
        tile_y, tile_x = frame_shape[0] // patches[0], frame_shape[1] // patches[1]
        if min(tile_x, tile_y) < _MIN_PATCH_PX:
            raise ProcessingError(
                f"patches {tuple(patches)}: tiles of {tile_x} x {tile_y} px in {frame_shape[1]} x "
                f"{frame_shape[0]} px frames are smaller than {_MIN_PATCH_PX} px; use fewer patches"
            )


# ----------------------------------------------------------------------------------------------------------
# Iterative leave-one-out alignment of a stack of spectra


def _crop_size(n: int, k_max_cycles: float) -> int:
    """Even Fourier-crop size keeping |k| <= k_max (cycles/px), at most n."""
    size = int(np.ceil(2.0 * k_max_cycles * n)) + 2
    size += size % 2
    return n if size >= n else max(size, 16)


def _parabolic_offset(minus: float, centre: float, plus: float) -> float:
    denominator = minus - 2.0 * centre + plus
    if abs(denominator) < 1e-30:
        return 0.0
    return float(np.clip(0.5 * (minus - plus) / denominator, -0.5, 0.5))


def _peak(correlation: FloatArray, allowed: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """Sub-pixel (x, y) position of the maximum of a circular correlation, signed (origin at index 0)."""
    rows, cols = correlation.shape
    masked = np.where(allowed, correlation, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(masked)), masked.shape)
    centre = correlation[iy, ix]
    dx = _parabolic_offset(correlation[iy, (ix - 1) % cols], centre, correlation[iy, (ix + 1) % cols])
    dy = _parabolic_offset(correlation[(iy - 1) % rows, ix], centre, correlation[(iy + 1) % rows, ix])
    x = ix - cols if ix > cols // 2 else ix
    y = iy - rows if iy > rows // 2 else iy
    return float(x + dx), float(y + dy)


def _align_stack(
    spectra: Complex64Array,
    shape: tuple[int, int],
    pixel_size: float,
    bfactor: float,
    iterations: int,
    tolerance: float,
    search_px: float | None,
    pool: ThreadPoolExecutor,
    stage: str,
) -> tuple[FloatArray, list[ConvergenceStep], bool]:
    """Align the frames whose rfft2 ``spectra`` (modified in place: they end up aligned) are given.

    Returns the displacements (n_frames, 2) relative to frame 0, the iteration log and convergence."""
    n_frames = spectra.shape[0]
    ny, nx = shape
    if bfactor > 0:
        k_max = np.sqrt(2.0 * -np.log(_FILTER_FLOOR) / bfactor) * pixel_size  # cycles/px
        crop_y, crop_x = _crop_size(ny, k_max), _crop_size(nx, k_max)
    else:
        crop_y, crop_x = ny, nx
    rows = np.r_[0 : (crop_y + 1) // 2, ny - crop_y // 2 : ny] if crop_y < ny else np.arange(ny)
    cols = crop_x // 2 + 1
    ky = np.fft.fftfreq(ny, d=pixel_size)[rows][:, None]
    kx = np.fft.rfftfreq(nx, d=pixel_size)[:cols][None, :]
    weight = np.exp(-bfactor * (ky**2 + kx**2) / 2.0).astype(np.float32)
    weight[0, 0] = 0.0  # the mean carries no position
    scale_x, scale_y = nx / crop_x, ny / crop_y
    allowed = np.ones((crop_y, crop_x), dtype=bool)
    if search_px is not None:
        offsets_y = np.abs(np.fft.fftfreq(crop_y) * crop_y) * scale_y
        offsets_x = np.abs(np.fft.fftfreq(crop_x) * crop_x) * scale_x
        allowed = (offsets_y[:, None] <= search_px) & (offsets_x[None, :] <= search_px)
    phase_y = np.fft.fftfreq(ny)  # cycles/px, for the phase ramps on the full grid
    phase_x = np.fft.rfftfreq(nx)

    def measure(index: int, reference: Complex64Array) -> tuple[float, float]:
        frame = spectra[index][rows, :cols]
        cross = frame * np.conj(reference - frame) * weight
        correlation = scipy.fft.irfft2(cross, s=(crop_y, crop_x))
        x, y = _peak(np.asarray(correlation, dtype=np.float64), allowed)
        return x * scale_x, y * scale_y

    def apply(index: int, shift: FloatArray) -> None:
        # Move frame content by -shift: multiply by exp(+2πi k·shift).
        ramp_y = np.exp(2j * np.pi * phase_y * shift[1]).astype(np.complex64)
        ramp_x = np.exp(2j * np.pi * phase_x * shift[0]).astype(np.complex64)
        spectra[index] *= ramp_y[:, None] * ramp_x[None, :]

    shifts = np.zeros((n_frames, 2))
    log: list[ConvergenceStep] = []
    converged = False
    for iteration in range(1, iterations + 1):
        reference = spectra.sum(axis=0)[rows, :cols]
        residual = np.array(list(pool.map(measure, range(n_frames), repeat(reference))))
        residual -= residual[0]
        shifts += residual
        list(pool.map(apply, range(1, n_frames), residual[1:]))
        lengths = np.hypot(residual[:, 0], residual[:, 1])
        rms = float(np.sqrt(np.mean(lengths**2)))
        log.append(ConvergenceStep(stage, iteration, rms, float(lengths.max())))
        if rms < tolerance:
            converged = True
            break
    return shifts, log, converged


# ----------------------------------------------------------------------------------------------------------
# Local (patch) motion


def _basis(x: FloatArray, y: FloatArray, z: FloatArray) -> list[FloatArray]:
    """The 18 terms of RELION's ThirdOrderPolynomialModel, in its coefficient order."""
    spatial = [np.ones_like(x * y), x, x * x, y, y * y, x * y]
    temporal = [z, z * z, z * z * z]
    return [np.asarray(s * t, dtype=np.float64) for s in spatial for t in temporal]


def _tile_edges(n: int, count: int) -> npt.NDArray[np.int64]:
    return np.rint(np.linspace(0, n, count + 1)).astype(np.int64)


def _apodisation(shape: tuple[int, int], widths: tuple[int, int]) -> Float32Array:
    """Separable raised-cosine edge ``widths`` (y, x) px wide on every side."""

    def edge(n: int, width: int) -> FloatArray:
        width = max(min(width, n // 4), 1)
        window = np.ones(n)
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
        window[:width] = ramp
        window[n - width :] = ramp[::-1]
        return window

    return np.outer(edge(shape[0], widths[0]), edge(shape[1], widths[1])).astype(np.float32)


def _fit_local_model(residuals: FloatArray, centres: FloatArray, shape: tuple[int, int]) -> LocalMotionModel:
    """Least-squares fit of the 18-term model to tile trajectories (n_py, n_px, n_frames, 2), with a free
    intercept per tile (eliminated by centring each tile's observations and design over frames)."""
    n_frames = residuals.shape[2]
    x = centres[..., 0] / shape[1] - 0.5
    y = centres[..., 1] / shape[0] - 0.5
    z = np.arange(n_frames, dtype=np.float64)
    design = np.stack(
        _basis(x[:, :, None] * np.ones(n_frames), y[:, :, None] * np.ones(n_frames), z[None, None, :]),
        axis=-1,
    )  # (n_py, n_px, n_frames, 18)
    design_c = design - design.mean(axis=2, keepdims=True)
    observed_c = residuals - residuals.mean(axis=2, keepdims=True)
    matrix = design_c.reshape(-1, 18)
    column_scale = np.linalg.norm(matrix, axis=0)
    column_scale[column_scale == 0] = 1.0
    solution, *_ = np.linalg.lstsq(matrix / column_scale, observed_c.reshape(-1, 2), rcond=None)
    coefficients = (solution / column_scale[:, None]).T  # (2, 18)
    fitted = matrix @ coefficients.T
    misfit = observed_c.reshape(-1, 2) - fitted
    rmsd = float(np.sqrt(np.mean(np.sum(misfit**2, axis=1))))
    return LocalMotionModel(np.ascontiguousarray(coefficients), shape, rmsd)


def _align_patches(
    aligned: Float32Array,
    patches: tuple[int, int],
    pixel_size: float,
    bfactor: float,
    iterations: int,
    tolerance: float,
    pool: ThreadPoolExecutor,
    tick: Callable[[], None],
) -> tuple[FloatArray, FloatArray, list[ConvergenceStep]]:
    """Residual trajectories (n_py, n_px, n_frames, 2) of tiles of the globally ``aligned`` frames, and the
    tile centres (n_py, n_px, 2) as (x, y) px."""
    n_frames, ny, nx = aligned.shape
    edges_y, edges_x = _tile_edges(ny, patches[0]), _tile_edges(nx, patches[1])
    residuals = np.zeros((patches[0], patches[1], n_frames, 2))
    centres = np.zeros((patches[0], patches[1], 2))
    log: list[ConvergenceStep] = []
    for row in range(patches[0]):
        for col in range(patches[1]):
            # The tile plus a margin taken from its neighbours, where the apodisation edge falls.
            margin_y = max(4, int(edges_y[row + 1] - edges_y[row]) // 8)
            margin_x = max(4, int(edges_x[col + 1] - edges_x[col]) // 8)
            y0, y1 = max(0, edges_y[row] - margin_y), min(ny, edges_y[row + 1] + margin_y)
            x0, x1 = max(0, edges_x[col] - margin_x), min(nx, edges_x[col + 1] + margin_x)
            tile = aligned[:, y0:y1, x0:x1]
            window = _apodisation(tile.shape[1:], (margin_y, margin_x))
            tile = (tile - tile.mean(axis=(1, 2), keepdims=True)) * window
            spectra = scipy.fft.rfft2(tile, axes=(-2, -1), workers=_THREADS).astype(np.complex64)
            search = max(4.0, min(tile.shape[1:]) / 8.0)
            shifts, steps, _ = _align_stack(
                spectra,
                (int(y1 - y0), int(x1 - x0)),
                pixel_size,
                bfactor,
                iterations,
                tolerance,
                search,
                pool,
                f"patch {row},{col}",
            )
            residuals[row, col] = shifts
            centres[row, col] = ((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)
            log.extend(steps)
            tick()
    return residuals, centres, log


def _warp(image: Float32Array, model: LocalMotionModel, frame: int) -> Float32Array:
    """out(x) = image(x + l(x, frame)) with cubic B-spline interpolation (periodic boundary)."""
    ny, nx = image.shape
    coefficients = ndimage.spline_filter(image, order=3, mode="grid-wrap", output=np.float64)
    columns = np.arange(nx, dtype=np.float64)
    out = np.empty_like(image)
    chunk = max(1, 2**20 // nx)
    for start in range(0, ny, chunk):
        rows = np.arange(start, min(start + chunk, ny), dtype=np.float64)
        dx, dy = model.field(frame, rows, columns)
        out[start : start + len(rows)] = ndimage.map_coordinates(
            coefficients,
            [rows[:, None] + dy, columns[None, :] + dx],
            order=3,
            mode="grid-wrap",
            prefilter=False,
        )
    return out


# ----------------------------------------------------------------------------------------------------------


def _sum_frames(
    spectra: Complex64Array,
    aligned_frames: Float32Array | None,
    model: LocalMotionModel | None,
    doses: FloatArray | None,
    shape: tuple[int, int],
    pixel_size: float,
    voltage: float,
    pool: ThreadPoolExecutor,
) -> tuple[Float32Array, Float32Array]:
    """(plain sum, dose-weighted sum) of the globally aligned frames, warped by ``model`` when given;
    the dose-weighted sum is the plain one when ``doses`` is None. Two halves of the frames in parallel."""
    n_frames, ny, nxh = spectra.shape
    weighting = None
    if doses is not None:
        two_ne, scale = _dose_weight_parts(shape, pixel_size, doses, voltage)
        weighting = (two_ne, scale, _voltage_factor(voltage))

    def accumulate(indices: range) -> tuple[Complex64Array, Complex64Array]:
        plain = np.zeros((ny, nxh), dtype=np.complex64)
        weighted = np.zeros_like(plain)
        for index in indices:
            spectrum = spectra[index]
            if model is not None and aligned_frames is not None:
                warped = _warp(aligned_frames[index], model, index)
                spectrum = scipy.fft.rfft2(warped).astype(np.complex64)
            plain += spectrum
            if weighting is not None and doses is not None:
                two_ne, scale, factor = weighting
                weighted += spectrum * (np.exp(-doses[index] / factor / two_ne) * scale).astype(np.float32)
        return plain, weighted

    half = (n_frames + 1) // 2
    (plain_a, weighted_a), (plain_b, weighted_b) = pool.map(accumulate, [range(half), range(half, n_frames)])
    plain_sum = np.asarray(scipy.fft.irfft2(plain_a + plain_b, s=shape), dtype=np.float32)
    if weighting is None:
        return plain_sum, plain_sum
    return plain_sum, np.asarray(scipy.fft.irfft2(weighted_a + weighted_b, s=shape), dtype=np.float32)


def correct_motion(
    frames: npt.ArrayLike | Sequence[npt.ArrayLike],
    pixel_size: float,
    dose_per_frame: float,
    *,
    patches: tuple[int, int] = (1, 1),
    bfactor: float = 150.0,
    iterations: int = 5,
    tolerance: float = 0.05,
    dose_weighting: bool = True,
    voltage: float = 300.0,
    pre_exposure: float = 0.0,
    progress: Progress | None = None,
) -> MotionResult:
    """Align the frames of a movie and sum them (see the module docstring for the method).

    ``frames`` (n_frames, y, x) in counts; ``pixel_size`` Å; ``dose_per_frame`` and ``pre_exposure`` e⁻/Å²;
    ``patches`` (n_y, n_x) tiles for local alignment, (1, 1) for whole-frame only; ``bfactor`` Å² of the
    cross-correlation filter; ``iterations`` and ``tolerance`` (RMS residual, px) bound each alignment;
    ``voltage`` kV (300 or 200 with dose weighting). ``progress(done, total)`` is called after the global
    alignment, after each tile and after summing."""
    stack = _as_stack(frames)
    n_frames, ny, nx = stack.shape
    _check_parameters(
        pixel_size,
        dose_per_frame,
        pre_exposure,
        patches,
        bfactor,
        iterations,
        tolerance,
        dose_weighting,
        voltage,
        (ny, nx),
    )
    patches = (int(patches[0]), int(patches[1]))
    local = patches != (1, 1)
    total_steps = 2 + (patches[0] * patches[1] if local else 0)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total_steps)

    with ThreadPoolExecutor(_THREADS) as pool:
        spectra = scipy.fft.rfft2(stack, axes=(-2, -1), workers=_THREADS).astype(np.complex64)
        shifts, log, converged = _align_stack(
            spectra, (ny, nx), pixel_size, bfactor, int(iterations), tolerance, None, pool, "global"
        )
        tick()

        model: LocalMotionModel | None = None
        patch_shifts: FloatArray | None = None
        centres: FloatArray | None = None
        aligned_frames: Float32Array | None = None
        if local:
            aligned_frames = np.asarray(
                scipy.fft.irfft2(spectra, s=(ny, nx), axes=(-2, -1), workers=_THREADS), dtype=np.float32
            )
            residuals, centres, patch_log = _align_patches(
                aligned_frames, patches, pixel_size, bfactor, int(iterations), tolerance, pool, tick
            )
            log.extend(patch_log)
            model = _fit_local_model(residuals, centres, (ny, nx))
            patch_shifts = residuals + shifts[None, None]

        doses = pre_exposure + dose_per_frame * np.arange(1, n_frames + 1, dtype=np.float64)
        no_dw, dw = _sum_frames(
            spectra,
            aligned_frames,
            model,
            doses if dose_weighting else None,
            (ny, nx),
            pixel_size,
            voltage,
            pool,
        )
    tick()
    return MotionResult(
        aligned_sum=dw,
        aligned_sum_no_dw=no_dw,
        shifts=shifts,
        accumulated_dose=doses,
        pixel_size=float(pixel_size),
        dose_weighted=dose_weighting,
        convergence=tuple(log),
        converged=converged,
        patch_shifts=patch_shifts,
        patch_centres=centres,
        local_model=model,
    )


# ----------------------------------------------------------------------------------------------------------


def plot_drift(result: MotionResult, path: Path, title: str) -> None:
    """Write a PNG of the global drift trajectory in Å (frames numbered from 1, as RELION does) and, in
    patch mode, the local trajectories at the tile centres (magnified). Deterministic bytes, atomic write."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    trajectory = result.shifts * result.pixel_size
    panels = 2 if result.patch_shifts is not None else 1
    figure = Figure(figsize=(5.0 * panels, 5.0), dpi=100)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    ax.plot(trajectory[:, 0], trajectory[:, 1], "-", color="0.6", linewidth=1)
    colours = np.arange(len(trajectory))
    ax.scatter(trajectory[:, 0], trajectory[:, 1], c=colours, cmap="viridis", s=14, zorder=3)
    step = max(1, int(np.ceil(len(trajectory) / 25)))
    for index in range(0, len(trajectory), step):
        ax.annotate(str(index + 1), trajectory[index], textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("specimen displacement x (Å)")
    ax.set_ylabel("specimen displacement y (Å)")
    ax.set_title("global drift (relative to frame 1)", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.invert_yaxis()  # y runs down the rows, as in the micrograph
    ax.grid(True, linewidth=0.3)
    if result.patch_shifts is not None and result.patch_centres is not None:
        _plot_local(axes[1], result, result.patch_shifts, result.patch_centres)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(Path(path), buffer.getvalue())


def _plot_local(axes: Any, result: MotionResult, patch_shifts: FloatArray, centres: FloatArray) -> None:
    """Local motion beyond the global shifts at each tile centre, magnified: the fitted model (solid, from
    frame 1) and the measured tile trajectory (faint, moved to the model's mean: its origin is free)."""
    frames = np.arange(patch_shifts.shape[2])
    measured = patch_shifts - result.shifts[None, None]
    fitted = np.zeros_like(measured)
    if result.local_model is not None:
        for row in range(centres.shape[0]):
            for col in range(centres.shape[1]):
                dx, dy = result.local_model.displacement(centres[row, col, 0], centres[row, col, 1], frames)
                fitted[row, col] = np.stack([dx, dy], axis=1)
    measured += fitted.mean(axis=2, keepdims=True) - measured.mean(axis=2, keepdims=True)
    extent = float(np.max(np.abs(fitted))) or float(np.max(np.abs(measured))) or 1.0
    x_positions = np.unique(centres[..., 0])
    spacing = (
        float(np.min(np.diff(x_positions))) if len(x_positions) > 1 else float(result.aligned_sum.shape[1])
    )
    magnification = 0.4 * spacing / extent
    size = result.pixel_size
    for row in range(centres.shape[0]):
        for col in range(centres.shape[1]):
            centre = centres[row, col]
            noisy = (centre + measured[row, col] * magnification) * size
            smooth = (centre + fitted[row, col] * magnification) * size
            (line,) = axes.plot(smooth[:, 0], smooth[:, 1], "-", linewidth=1.5)
            axes.plot(noisy[:, 0], noisy[:, 1], "-", linewidth=0.5, alpha=0.35, color=line.get_color())
            axes.plot(centre[0] * size, centre[1] * size, "k.", markersize=3)
    axes.set_title(f"local motion beyond global (model, measured), x{magnification:.3g}", fontsize=9)
    axes.set_xlabel("x (Å)")
    axes.set_ylabel("y (Å)")
    axes.set_aspect("equal", adjustable="datalim")
    axes.invert_yaxis()
