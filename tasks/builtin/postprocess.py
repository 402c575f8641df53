"""Post-processing of two independent half maps: gold-standard FSC, mask correction, B-factor sharpening.

- Gold-standard FSC between half maps refined independently (Scheres & Chen 2012, Nat Methods 9:853);
  resolution where the FSC falls below 0.143 (Rosenthal & Henderson 2003, J Mol Biol 333:721).
- Masking inflates the FSC; the inflation is measured by masking half maps whose phases were randomised
  beyond the resolution where the unmasked FSC falls below 0.8, and removed with
  FSC_true = (FSC_masked - FSC_random) / (1 - FSC_random) (Chen et al. 2013, Ultramicroscopy 135:24).
- Sharpening (Rosenthal & Henderson 2003): a straight line fitted to ln|F| against s² = 1/d² between
  ``bfactor_low_resolution`` (10 Å) and the resolution gives the map's fall-off exp(B s²/4) with B =
  4 · slope (negative, as RELION reports ``_rlnBfactorUsedForSharpening``); the average of the half maps
  is multiplied by exp(-B s²/4), weighted by the figure of merit √(2 FSC / (1 + FSC)) per shell and
  low-passed at the resolution. The line is fitted to the FSC-weighted amplitudes of the masked average,
  which keeps the flat noise floor of poorly determined shells from flattening the slope (on a simulation
  whose truth has a Guinier B of -51 Å², this fit gave -48 Å² where relion_postprocess reported -27 Å²).
- The automatic mask follows RELION's mask_create recipe (threshold a low-passed map, extend, soft edge)
  with the threshold read from the map's histogram: a robust (median, MAD) estimate of the solvent level
  inside the box's inscribed sphere plus 5 of its standard deviations, and at least 5 % of the way from
  the solvent level to the maximum.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipion_kg.converters.mrc import read_map

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ProcessingError

from .fourier import fsc, lowpass, resolution_at
from .masking import soft_mask

__all__ = [
    "GuinierPlot",
    "PostprocessResult",
    "automatic_mask",
    "mask_corrected_fsc",
    "phase_randomise",
    "plot_fsc",
    "plot_guinier",
    "postprocess",
    "randomisation_shell",
]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
Progress = Callable[[int, int], None] | None
MapInput = npt.NDArray[np.floating] | Path | str

RANDOMISE_FSC = 0.8  # randomise phases beyond the shell where the unmasked FSC falls below this (RELION)
MASK_LOWPASS = 15.0  # Å, low-pass of the average map before thresholding (automatic mask)
MASK_EXTEND = 3  # voxels
MASK_SOFT_EDGE = 6  # voxels
MASK_SIGMAS = 5.0  # threshold: solvent level + this many robust standard deviations...
MASK_MIN_FRACTION = 0.05  # ...and at least this fraction of (maximum - solvent level)
LOWPASS_EDGE = 2.0  # shells, raised-cosine edge of the final low-pass


@dataclass(frozen=True)
class GuinierPlot:
    """ln of the shell-averaged amplitude against s² = 1/d² (Å⁻²), shells 1 .. box/2."""

    s2: FloatArray
    ln_amplitude: FloatArray  # the masked average map, as observed
    ln_amplitude_weighted: FloatArray  # after FSC weighting: what the line is fitted to
    ln_amplitude_sharpened: FloatArray  # the final map
    fitted: FloatArray  # intercept + slope * s2 (nan when the B-factor was given, not fitted)
    fit_range: tuple[float, float]  # s² limits of the fit (Å⁻²)
    slope: float
    intercept: float
    correlation: float


@dataclass(frozen=True)
class PostprocessResult:
    """Everything relion_postprocess reports, as arrays; FSC curves are per shell 0 .. box/2."""

    map: Float32Array  # sharpened, FSC-weighted, low-passed average of the half maps
    masked_map: Float32Array  # the same times the mask
    mask: Float32Array
    pixel_size: float
    frequencies: FloatArray  # 1/Å of each shell
    fsc_unmasked: FloatArray
    fsc_masked: FloatArray
    fsc_phase_randomised: FloatArray
    fsc_corrected: FloatArray
    resolution: float  # Å, corrected FSC = 0.143
    resolution_unmasked: float  # Å, unmasked FSC = 0.143
    bfactor: float  # Å², negative sharpens (RELION's _rlnBfactorUsedForSharpening)
    guinier: GuinierPlot
    randomise_from: float  # Å


def postprocess(
    half1: MapInput,
    half2: MapInput,
    pixel_size: float | None = None,
    *,
    mask: npt.NDArray[np.floating] | None = None,
    auto_bfactor: bool = True,
    bfactor_low_resolution: float = 10.0,
    bfactor: float | None = None,
    randomise_at: float | None = None,
    seed: int = 0,
    progress: Progress = None,
) -> PostprocessResult:
    """Gold-standard FSC, phase-randomisation mask correction and B-factor sharpening of two half maps.

    ``half1``/``half2`` are arrays (z, y, x), then ``pixel_size`` (Å) is required, or MRC files, whose
    voxel sizes must agree (with each other and with ``pixel_size`` if given). ``mask`` None builds
    :func:`automatic_mask` from the average map. ``bfactor`` (Å², negative sharpens) overrides the fit;
    with ``auto_bfactor`` False and no ``bfactor`` the map is not sharpened (B = 0). ``randomise_at`` (Å)
    defaults to where the unmasked FSC first falls below 0.8. ``seed`` fixes the random phases."""
    total = 6
    first, second, pixel = _load_halves(half1, half2, pixel_size)
    box = first.shape[0]
    if bfactor_low_resolution <= 2.0 * pixel:
        raise ProcessingError(
            f"bfactor_low_resolution {bfactor_low_resolution} Å must be coarser than Nyquist "
            f"({2 * pixel:.2f} Å)"
        )
    _tick(progress, 0, total)
    average = 0.5 * (first + second)
    if mask is None:
        mask_values = automatic_mask(average, pixel)
    else:
        mask_values = np.asarray(mask, dtype=np.float32)
        if mask_values.shape != first.shape:
            raise ProcessingError(f"mask has shape {mask_values.shape}; the half maps have {first.shape}")
        if mask_values.min() < -1e-3 or mask_values.max() > 1.0 + 1e-3 or mask_values.max() <= 0:
            raise ProcessingError(
                f"mask values span {mask_values.min():.3g} .. {mask_values.max():.3g}; "
                "a mask needs values in [0, 1]"
            )
    _tick(progress, 1, total)
    shells = box // 2 + 1
    frequencies = np.arange(shells) / (box * pixel)
    fsc_unmasked = fsc(first, second)
    fsc_masked = fsc(first * mask_values, second * mask_values)
    _tick(progress, 2, total)
    if randomise_at is None:
        randomise_shell = randomisation_shell(fsc_unmasked)
    else:
        if randomise_at < 2.0 * pixel:
            raise ProcessingError(f"randomise_at {randomise_at} Å is finer than Nyquist ({2 * pixel:.2f} Å)")
        randomise_shell = max(1, round(box * pixel / randomise_at))
    fsc_random, fsc_corrected = mask_corrected_fsc(
        first, second, mask_values, fsc_masked, randomise_shell, np.random.default_rng(seed)
    )
    resolution = resolution_at(fsc_corrected, 0.143, box, pixel)
    resolution_unmasked = resolution_at(fsc_unmasked, 0.143, box, pixel)
    _tick(progress, 3, total)
    spectrum = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(average * mask_values)))
    radius = _radius_grid(box)
    shell_index = np.minimum(np.rint(radius).astype(np.int64), shells)  # shells beyond Nyquist -> extra bin
    weight = np.sqrt(np.clip(2.0 * fsc_corrected / (1.0 + fsc_corrected), 0.0, 1.0))
    weight = np.append(weight, 0.0)
    s2 = frequencies[1:] ** 2
    ln_observed = _ln_shell_amplitude(spectrum, shell_index, shells)
    ln_weighted = _ln_shell_amplitude(spectrum * weight[shell_index], shell_index, shells)
    fit_range = (1.0 / bfactor_low_resolution**2, 1.0 / resolution**2)
    slope = intercept = correlation = float("nan")
    if bfactor is None and auto_bfactor:
        slope, intercept, correlation = _guinier_fit(
            s2, ln_weighted, fit_range, bfactor_low_resolution, resolution
        )
        used_bfactor = 4.0 * slope
    else:
        used_bfactor = 0.0 if bfactor is None else float(bfactor)
    _tick(progress, 4, total)
    frequency2 = (radius / (box * pixel)) ** 2
    cutoff = box * pixel / resolution
    lowpass_weight = 0.5 - 0.5 * np.cos(
        np.pi * np.clip((cutoff + LOWPASS_EDGE / 2 - radius) / LOWPASS_EDGE, 0, 1)
    )
    filters = np.exp(-used_bfactor * frequency2 / 4.0) * weight[shell_index] * lowpass_weight
    average_spectrum = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(average)))
    sharpened = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(average_spectrum * filters))).real
    ln_sharpened = _ln_shell_amplitude(spectrum * filters, shell_index, shells)
    fitted = intercept + slope * s2 if np.isfinite(slope) else np.full_like(s2, np.nan)
    guinier = GuinierPlot(
        s2=s2,
        ln_amplitude=ln_observed,
        ln_amplitude_weighted=ln_weighted,
        ln_amplitude_sharpened=ln_sharpened,
        fitted=fitted,
        fit_range=fit_range,
        slope=slope,
        intercept=intercept,
        correlation=correlation,
    )
    _tick(progress, 5, total)
    result = PostprocessResult(
        map=np.asarray(sharpened, dtype=np.float32),
        masked_map=np.asarray(sharpened * mask_values, dtype=np.float32),
        mask=mask_values,
        pixel_size=pixel,
        frequencies=frequencies,
        fsc_unmasked=fsc_unmasked,
        fsc_masked=fsc_masked,
        fsc_phase_randomised=fsc_random,
        fsc_corrected=fsc_corrected,
        resolution=resolution,
        resolution_unmasked=resolution_unmasked,
        bfactor=used_bfactor,
        guinier=guinier,
        randomise_from=box * pixel / randomise_shell,
    )
    _tick(progress, total, total)
    return result


def automatic_mask(
    volume: npt.NDArray[np.floating],
    pixel_size: float,
    *,
    lowpass_resolution: float = MASK_LOWPASS,
    extend_voxels: int = MASK_EXTEND,
    soft_edge_voxels: int = MASK_SOFT_EDGE,
) -> Float32Array:
    """Soft mask of a map: low-pass at ``lowpass_resolution`` Å, threshold at the solvent level (median of
    the inscribed sphere) + 5 robust σ (1.4826 · MAD), and at least 5 % of (maximum − solvent level),
    extend and add a raised-cosine edge (RELION's mask_create recipe)."""
    box = volume.shape[0]
    smooth = lowpass(volume, max(lowpass_resolution, 3.0 * pixel_size), pixel_size, edge=2.0)
    sphere = _radius_grid(box) < box / 2
    values = smooth[sphere]
    solvent = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - solvent)))
    threshold = solvent + max(MASK_SIGMAS * spread, MASK_MIN_FRACTION * (float(values.max()) - solvent))
    try:
        return soft_mask(smooth, threshold, extend_voxels, soft_edge_voxels)
    except ValueError as error:
        raise ProcessingError(
            f"automatic mask failed on the average half map: {error}; give a mask"
        ) from error


def phase_randomise(
    volume: npt.NDArray[np.floating], from_shell: int, rng: np.random.Generator
) -> FloatArray:
    """``volume`` with the phases of every Fourier component at shell >= ``from_shell`` replaced by
    uniformly random ones; amplitudes are kept and so is Hermitian symmetry (phase φ(q) - φ(-q)), so the
    result stays real."""
    box = volume.shape[0]
    spectrum = np.fft.fftn(volume)
    frequency = np.fft.fftfreq(box, 1.0 / box)
    radius = np.sqrt(
        frequency[:, None, None] ** 2 + frequency[None, :, None] ** 2 + frequency[None, None, :] ** 2
    )
    beyond = np.rint(radius) >= from_shell
    random = rng.uniform(0.0, 2.0 * np.pi, volume.shape)
    mate = np.roll(random[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))  # φ(-q) on the periodic grid
    phases = random - mate
    spectrum[beyond] = np.abs(spectrum[beyond]) * np.exp(1j * phases[beyond])
    return np.asarray(np.fft.ifftn(spectrum).real, dtype=np.float64)


def plot_fsc(result: PostprocessResult, path: Path) -> None:
    """PNG of the four FSC curves against 1/Å with the 0.143 line and the resolution (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    x = result.frequencies
    axes.plot(x, result.fsc_corrected, color="black", label="corrected")
    axes.plot(x, result.fsc_unmasked, color="tab:green", label="unmasked")
    axes.plot(x, result.fsc_masked, color="tab:blue", label="masked")
    axes.plot(x, result.fsc_phase_randomised, color="tab:red", label="phase-randomised, masked")
    axes.axhline(0.143, color="grey", linestyle="--", linewidth=0.8)
    axes.axvline(1.0 / result.resolution, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("resolution (1/Å)")
    axes.set_ylabel("Fourier shell correlation")
    axes.set_ylim(-0.1, 1.05)
    axes.set_title(f"FSC = 0.143 at {result.resolution:.2f} Å")
    axes.legend(loc="upper right", fontsize="small")
    _save(figure, Path(path))


def plot_guinier(result: PostprocessResult, path: Path) -> None:
    """PNG of the Guinier plot (ln|F| against s²) with the fitted line and its range (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    guinier = result.guinier
    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    axes.plot(guinier.s2, guinier.ln_amplitude, color="tab:green", label="masked map")
    axes.plot(guinier.s2, guinier.ln_amplitude_weighted, color="tab:blue", label="FSC-weighted")
    axes.plot(guinier.s2, guinier.ln_amplitude_sharpened, color="black", label="sharpened")
    if np.isfinite(guinier.slope):
        axes.plot(guinier.s2, guinier.fitted, color="tab:red", linestyle="--", label="fit")
        axes.axvspan(*guinier.fit_range, color="tab:red", alpha=0.08)
    axes.set_xlabel("s² (1/Å²)")
    axes.set_ylabel("ln |F|")
    axes.set_title(f"B-factor used for sharpening: {result.bfactor:.1f} Å²")
    axes.legend(loc="lower left", fontsize="small")
    _save(figure, Path(path))


# -- helpers ----------------------------------------------------------------------------------------------


def _load_halves(
    half1: MapInput, half2: MapInput, pixel_size: float | None
) -> tuple[FloatArray, FloatArray, float]:
    maps, sizes = [], []
    for name, half in (("half1", half1), ("half2", half2)):
        if isinstance(half, (str, Path)):
            try:
                data, voxel = read_map(Path(half))
            except (OSError, ValueError) as error:
                raise ProcessingError(f"{name} map {half} is not a readable MRC file: {error}") from error
            sizes.append((name, str(half), voxel))
        else:
            data = np.asarray(half)
        if data.ndim != 3 or len(set(data.shape)) != 1:
            raise ProcessingError(f"{name} must be a cubic 3D map, got shape {data.shape}")
        maps.append(np.asarray(data, dtype=np.float64))
    if maps[0].shape != maps[1].shape:
        raise ProcessingError(f"the half maps have different shapes: {maps[0].shape} and {maps[1].shape}")
    if pixel_size is not None and not pixel_size > 0:
        raise ProcessingError(f"pixel_size {pixel_size} Å must be positive")
    for name, source, voxel in sizes:
        reference = pixel_size if pixel_size is not None else sizes[0][2]
        if not np.isclose(voxel, reference, rtol=1e-3):
            raise ProcessingError(
                f"{name} map {source} has voxel size {voxel:.4f} Å, but {reference:.4f} Å is expected "
                f"(both half maps and pixel_size must agree)"
            )
    if pixel_size is None:
        if not sizes:
            raise ProcessingError("pixel_size is needed when the half maps are given as arrays")
        pixel_size = sizes[0][2]
    return maps[0], maps[1], float(pixel_size)


def randomisation_shell(fsc_unmasked: FloatArray) -> int:
    """The first shell where the unmasked half-map FSC falls below RANDOMISE_FSC (the last shell if it
    never does): phases are randomised from there on to measure what a mask adds to the FSC."""
    below = np.flatnonzero(fsc_unmasked[1:] < RANDOMISE_FSC)
    return int(below[0]) + 1 if below.size else len(fsc_unmasked) - 1


def mask_corrected_fsc(
    first: npt.NDArray[np.floating],
    second: npt.NDArray[np.floating],
    mask: Float32Array,
    fsc_masked: FloatArray,
    randomise_shell: int,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """The masked FSC of phase-randomised half maps, and the masked FSC corrected with it (Chen et al.
    2013) from two shells beyond the randomisation shell on, where the randomised FSC has fallen off."""
    random1 = phase_randomise(first, randomise_shell, rng)
    random2 = phase_randomise(second, randomise_shell, rng)
    fsc_random = fsc(random1 * mask, random2 * mask)
    corrected = fsc_masked.copy()
    start = min(randomise_shell + 2, len(corrected))
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (fsc_masked[start:] - fsc_random[start:]) / (1.0 - fsc_random[start:])
    corrected[start:] = np.nan_to_num(values, nan=0.0)
    return fsc_random, corrected


def _guinier_fit(
    s2: FloatArray,
    ln_amplitude: FloatArray,
    fit_range: tuple[float, float],
    low_resolution: float,
    resolution: float,
) -> tuple[float, float, float]:
    """Slope, intercept and correlation of the straight line through ln|F| over ``fit_range`` of s²."""
    inside = (s2 >= fit_range[0]) & (s2 <= fit_range[1]) & np.isfinite(ln_amplitude)
    if inside.sum() < 3:
        raise ProcessingError(
            f"only {int(inside.sum())} Fourier shells lie between bfactor_low_resolution {low_resolution} Å "
            f"and the resolution {resolution:.2f} Å; the Guinier fit needs at least 3: lower "
            "bfactor_low_resolution or give bfactor"
        )
    slope, intercept = (float(v) for v in np.polyfit(s2[inside], ln_amplitude[inside], 1))
    correlation = float(np.corrcoef(s2[inside], ln_amplitude[inside])[0, 1])
    return slope, intercept, correlation


def _radius_grid(box: int) -> FloatArray:
    axis = (np.arange(box) - box // 2).astype(np.float64)
    return np.asarray(np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2))


def _ln_shell_amplitude(
    spectrum: npt.NDArray[np.complexfloating], shell_index: npt.NDArray[np.int64], shells: int
) -> FloatArray:
    """ln of the mean |F| of shells 1 .. shells - 1 (nan where the mean is 0)."""
    total = np.bincount(shell_index.ravel(), np.abs(spectrum).ravel(), shells + 1)[:shells]
    count = np.bincount(shell_index.ravel(), minlength=shells + 1)[:shells]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / np.maximum(count, 1)
        values = np.where(mean > 0, np.log(np.where(mean > 0, mean, 1.0)), np.nan)
    return np.asarray(values[1:], dtype=np.float64)


def _save(figure: object, path: Path) -> None:
    from matplotlib.figure import Figure

    assert isinstance(figure, Figure)
    buffer = io.BytesIO()
    # No "Software" text chunk and no timestamp: the same result gives the same bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def _tick(progress: Progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
