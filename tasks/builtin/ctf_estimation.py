"""CTF estimation from a micrograph's Thon rings, in the manner of CTFFIND4.

Method (Mindell & Grigorieff 2003 JSB 142:334, CTFFIND3; Rohou & Grigorieff 2015 JSB 192:216, CTFFIND4):

1. **Spectrum.** Welch periodogram: overlapping tiles (50 %) of ``tile_size`` px, each mean-subtracted and
   tapered by a separable Tukey window (20 % cosine edges, so the tile edges make no central cross), their
   power spectra averaged; the amplitude spectrum is its square root.
2. **Background.** Where naive fitters fail. A box average of a steep, curved spectrum is biased near the
   inner edge of the band (the box is one-sided there, and the radius is convex in x and y), which leaves
   a smooth bump that correlates with the broad first CTF lobes: on Thon-ring-free coloured noise that
   bump alone was "fitted" with rings detected to 18 Å. So the background is removed in two stages:
   (a) the isotropic part: a polynomial of degree 4 in log radius fitted to the log rotational average
   between min_resolution and Nyquist (too stiff to follow the rings), divided out; (b) the anisotropic
   remainder, as CTFFIND4 does: subtract the box convolution of the flattened spectrum, with a box of
   edge √2 · r_min px (r_min = tile · pixel / min_resolution, CTFFIND's choice) that ignores the pixels
   inside r_min and wraps around the spectrum's periodic edges. The residual is divided by its local
   standard deviation (a box of twice that edge), which gives every ring band the same weight (CTFFIND
   4.1.9 renormalises its spectrum for the same reason), and clipped at ±3.5 (CTFFIND clips high values
   too) so that a few bright pixels (crystalline ice, lattice spots) do not dominate.
3. **1D search.** The rotational average of the filtered spectrum between min_resolution and
   max_resolution is correlated with CTF² for every defocus on a grid from min_defocus to max_defocus (and
   every phase shift from min_phase_shift to max_phase_shift, with ``find_phase_shift``); the grid step is
   ``defocus_step`` or finer, so that no Thon ring moves by more than an eighth of a ring between
   neighbours at max_resolution.
4. **2D refinement.** The normalised cross-correlation between the filtered 2D spectrum and CTF² over the
   ring band (a half plane: the spectrum is centrosymmetric) is maximised over (mean defocus,
   astigmatism · cos 2θ, astigmatism · sin 2θ[, phase shift]): a grid of astigmatism magnitudes (0 to
   3000 Å) and angles (15° steps) about the 1D answer and Nelder-Mead from the best three grid points on
   the lower-resolution half of the band, then Nelder-Mead on the whole band (CTFFIND4 refines its 1D
   answer by conjugate gradients). This parameterisation has no U/V swap and no 180° ambiguity.
   ``astigmatism_restraint`` (Å) multiplies the score by exp(-½ (|U - V| / restraint)²), a Gaussian prior
   in the role of CTFFIND's "expected (tolerated) astigmatism" penalty.
5. **Fit resolution.** Every pixel of the filtered spectrum goes to the shell of its "equi-phase"
   frequency (CTFFIND 4.1.12's EPA): the frequency at which an unastigmatic CTF with the fitted mean
   defocus has the pixel's CTF phase. From shell sums, the normalised correlation between the 2D spectrum
   and the fitted CTF² is computed over the pixels of a window of shells about two Thon-ring extrema wide
   (CTFFIND4 sizes its windows from the extrema too). CTFFIND4 thresholds the correlation of 1D profiles
   (0.1, 0.5, 0.66); that ignores how many pixels back a window, and white noise passed it here. So a
   window agrees when its correlation is significant, ≥ 4 / √(pixels in the window) (4 σ of the
   correlation of unrelated data), and the fit resolution is the last shell of the run of agreeing
   windows that starts in the lowest tenth of the shells (more than three long). It may be finer than
   max_resolution (the fit is extrapolated to Nyquist, as CTFFIND's "Thon rings detected up to");
   2 · pixel_size means the rings agree up to Nyquist, and the resolution of min_resolution means no
   Thon rings were found.

Conventions: the CTF is :func:`scipion_kg.tasks.builtin.ctf.ctf_2d`'s (RELION's getCTF), CTF = sin χ,
χ = π λ Δf k² - π/2 Cs λ³ k⁴ + φ + arctan(Q / √(1 - Q²)). Defocus in Å, positive underfocus,
``defocus_u >= defocus_v`` (CTFFIND's defocus 1 >= defocus 2); ``defocus_angle`` in degrees in [0, 180),
from +x (array columns) towards +y (array rows) to the U axis, as ``ctf_2d`` takes it; RELION reads
CTFFIND's azimuth into the same parameter unchanged, and CTFFIND prints it in (-90, 90]. The phase shift
is in degrees in [0, 180): CTF² cannot tell φ from φ + 180°. ``cross_correlation`` is the normalised
cross-correlation of step 4 (CTFFIND ≥ 4.1.11 reports the same kind of score), between -1 and 1.

Failure modes: a micrograph without Thon rings (pure noise) does NOT raise: its estimate has a
cross-correlation near 0 (≤ 0.025 on 1024² px of white noise here, against ≥ 0.04 for faint rings) and a
fit resolution at (about) min_resolution; callers decide with their own thresholds. A micrograph with
NaN/inf values, a constant one, a tile larger than the micrograph, or parameters out of range raise
:class:`ProcessingError`. ``max_resolution`` finer than Nyquist is clipped to Nyquist (2 · pixel_size).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft
from scipy import ndimage, optimize
from scipy.signal import windows

from scipion_kg.atomic import atomic_write_bytes
from scipion_kg.errors import ProcessingError

from .ctf import CTFParameters, electron_wavelength
from .fourier import frequency_grid_2d

__all__ = ["CTFEstimate", "RadialProfile", "estimate_ctf", "plot_ctf_fit"]

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[int, int], None]

_TAPER = 0.2  # Tukey window: fraction of each tile edge that is cosine-tapered
_ISOTROPIC_DEGREE = 4  # polynomial in log radius for the isotropic background (log amplitude)
_CLIP = 3.5  # the filtered spectrum is clipped at this many local standard deviations
_SIGNIFICANCE = 4.0  # fit resolution: windows agree while correlation · √pixels >= this
_ASTIGMATISM_GRID = (0.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0)  # Å, coarse 2D grid
_ANGLE_STEP = 15.0  # degrees, coarse 2D grid


class RadialProfile(NamedTuple):
    """1D profiles for a plot, per equi-phase shell (one Fourier pixel wide) from min_resolution to
    Nyquist: spatial frequency (1/Å); the equi-phase average of the filtered spectrum, scaled by least
    squares onto the fit over the fitted band; the fitted CTF² (0 to 1); the normalised correlation between
    the filtered 2D spectrum and the fitted CTF² over the pixels of a window of shells about the shell;
    and the significance threshold of that correlation (4 / √pixels in the window)."""

    frequency: FloatArray
    observed: FloatArray
    fitted: FloatArray
    correlation: FloatArray
    threshold: FloatArray


@dataclass(frozen=True, eq=False)
class CTFEstimate:
    """One micrograph's fitted CTF. Defocus in Å (U >= V), angles in degrees, resolutions in Å."""

    defocus_u: float
    defocus_v: float
    defocus_angle: float  # [0, 180), from +x to the U axis
    phase_shift: float  # [0, 180)
    cross_correlation: float
    fit_resolution: float
    pixel_size: float
    voltage: float  # kV
    spherical_aberration: float  # mm
    amplitude_contrast: float
    diagnostic: npt.NDArray[np.float32] | None = None  # left half: filtered spectrum, right half: fit
    radial: RadialProfile | None = None

    @property
    def mean_defocus(self) -> float:
        return 0.5 * (self.defocus_u + self.defocus_v)

    @property
    def astigmatism(self) -> float:
        """|U - V| in Å."""
        return self.defocus_u - self.defocus_v

    def to_parameters(self, bfactor: float = 0.0) -> CTFParameters:
        """The fitted CTF as :class:`CTFParameters` (for :func:`ctf_image`, particle extraction...)."""
        return CTFParameters(
            defocus_u=self.defocus_u,
            defocus_v=self.defocus_v,
            defocus_angle=self.defocus_angle,
            voltage=self.voltage,
            spherical_aberration=self.spherical_aberration,
            amplitude_contrast=self.amplitude_contrast,
            phase_shift=self.phase_shift,
            bfactor=bfactor,
        )

    @classmethod
    def from_ctffind(
        cls,
        defocus_1: float,
        defocus_2: float,
        azimuth: float,
        phase_shift_radians: float,
        cross_correlation: float,
        fit_resolution: float,
        *,
        pixel_size: float,
        voltage: float,
        spherical_aberration: float,
        amplitude_contrast: float,
    ) -> CTFEstimate:
        """An estimate from one row of CTFFIND's output .txt (columns 2-7: defocus 1 and 2 in Å, azimuth
        of astigmatism in degrees, additional phase shift in radians, cross-correlation, fit resolution
        in Å) and the optics from its header; angles are brought to [0, 180), U >= V enforced."""
        u, v, angle = _canonical(defocus_1, defocus_2, azimuth)
        return cls(
            u,
            v,
            angle,
            float(np.degrees(phase_shift_radians)) % 180.0,
            float(cross_correlation),
            float(fit_resolution),
            float(pixel_size),
            float(voltage),
            float(spherical_aberration),
            float(amplitude_contrast),
        )


@dataclass(frozen=True)
class _Optics:
    wavelength: float  # Å
    cs: float  # Å
    amplitude_phase: float  # rad

    def chi_terms(self, k2: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(a, b) with χ = a · Δf - b + φ at squared frequencies ``k2`` (the χ of :func:`ctf_2d`)."""
        a = np.pi * self.wavelength * k2
        b = 0.5 * np.pi * self.cs * self.wavelength**3 * k2**2 - self.amplitude_phase
        return a, b


@dataclass(frozen=True)
class _Band:
    """The ring band of the filtered spectrum, flattened (one entry per pixel of a half plane), with the
    terms of 2χ = m · a2 + p · ac + q · as - b2 + 2φ precomputed in float32 (a = π λ k², θ the azimuth)."""

    a2: npt.NDArray[np.float32]  # 2 π λ k²
    ac: npt.NDArray[np.float32]  # π λ k² cos 2θ
    as_: npt.NDArray[np.float32]  # π λ k² sin 2θ
    b2: npt.NDArray[np.float32]  # π Cs λ³ k⁴ - 2 · amplitude-contrast phase
    data: npt.NDArray[np.float32]  # filtered spectrum, mean removed, unit norm

    def subset(self, keep: npt.NDArray[np.bool_]) -> _Band:
        data = self.data[keep] - self.data[keep].mean()
        norm = float(np.linalg.norm(data))
        return _Band(self.a2[keep], self.ac[keep], self.as_[keep], self.b2[keep], data / (norm or 1.0))


def estimate_ctf(
    micrograph: npt.NDArray[np.floating],
    pixel_size: float,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
    *,
    tile_size: int = 512,
    min_resolution: float = 30.0,
    max_resolution: float = 5.0,
    min_defocus: float = 5000.0,
    max_defocus: float = 50000.0,
    defocus_step: float = 500.0,
    find_phase_shift: bool = False,
    min_phase_shift: float = 0.0,
    max_phase_shift: float = 180.0,
    phase_shift_step: float = 10.0,
    astigmatism_restraint: float | None = None,
    progress: Progress | None = None,
) -> CTFEstimate:
    """Fit the CTF of ``micrograph`` (y, x) from its Thon rings; see the module docstring for the method.

    ``pixel_size`` in Å, ``voltage`` in kV, ``spherical_aberration`` in mm, ``amplitude_contrast`` as a
    fraction; resolutions and defocus values in Å; phase shifts in degrees. ``progress(done, total)`` is
    called as tiles are transformed and as the search advances."""
    image = np.asarray(micrograph)
    max_resolution = _validate(
        image,
        pixel_size,
        voltage,
        spherical_aberration,
        amplitude_contrast,
        tile_size,
        min_resolution,
        max_resolution,
        min_defocus,
        max_defocus,
        defocus_step,
        find_phase_shift,
        min_phase_shift,
        max_phase_shift,
        phase_shift_step,
        astigmatism_restraint,
    )
    optics = _Optics(
        electron_wavelength(voltage),
        spherical_aberration * 1e7,
        float(np.arctan(amplitude_contrast / np.sqrt(1.0 - amplitude_contrast**2))),
    )
    steps = _tile_starts(image.shape[0], tile_size), _tile_starts(image.shape[1], tile_size)
    n_tiles = len(steps[0]) * len(steps[1])
    total = n_tiles + 3
    report = progress if progress is not None else _no_progress

    power = _power_spectrum(image, tile_size, steps, lambda done: report(done, total))
    extent = tile_size * pixel_size  # 1 / (frequency step of the spectrum), Å
    r_min = extent / min_resolution
    r_max = min(extent / max_resolution, tile_size / 2.0)
    filtered = _filtered_spectrum(np.sqrt(power), r_min)

    kx, ky = frequency_grid_2d(tile_size, pixel_size)
    radius = np.hypot(kx, ky) * extent
    band_mask = (radius >= r_min) & (radius <= r_max) & ((ky > 0) | ((ky == 0) & (kx > 0)))
    band = _make_band(filtered, kx, ky, band_mask, optics)

    phases = (
        np.arange(min_phase_shift, max_phase_shift + 0.5 * phase_shift_step, phase_shift_step)
        if find_phase_shift
        else np.zeros(1)
    )
    k_max = r_max / extent
    fine_step = min(defocus_step, 1.0 / (8.0 * optics.wavelength * k_max**2))
    defoci = np.arange(min_defocus, max_defocus + 0.5 * fine_step, fine_step)
    mean0, phase0 = _search_1d(filtered, radius, r_min, r_max, extent, optics, defoci, phases)
    report(n_tiles + 1, total)

    full = _Objective(band, astigmatism_restraint, min_defocus, max_defocus, find_phase_shift, phase0)
    coarse_band = band.subset(radius[band_mask] <= 0.5 * (r_min + r_max))
    coarse = _Objective(
        coarse_band, astigmatism_restraint, min_defocus, max_defocus, find_phase_shift, phase0
    )
    best = _refine_2d(full, coarse, mean0, phase0, fine_step)
    report(n_tiles + 2, total)

    mean, p, q = float(best[0]), float(best[1]), float(best[2])
    phase = float(np.radians(best[3])) if find_phase_shift else phase0
    astig = float(np.hypot(p, q))
    angle = float(np.degrees(0.5 * np.arctan2(q, p))) % 180.0
    score = _correlation(band, mean, p, q, phase)

    profile, fit_resolution = _equiphase_profile(
        filtered, kx, ky, radius, r_min, r_max, extent, pixel_size, optics, mean, p, q, phase
    )
    diagnostic = _diagnostic(filtered, kx, ky, radius, r_min, r_max, optics, mean, p, q, phase)
    report(total, total)
    return CTFEstimate(
        defocus_u=mean + 0.5 * astig,
        defocus_v=mean - 0.5 * astig,
        defocus_angle=angle,
        phase_shift=float(np.degrees(phase)) % 180.0,
        cross_correlation=score,
        fit_resolution=fit_resolution,
        pixel_size=float(pixel_size),
        voltage=float(voltage),
        spherical_aberration=float(spherical_aberration),
        amplitude_contrast=float(amplitude_contrast),
        diagnostic=diagnostic,
        radial=profile,
    )


def plot_ctf_fit(estimate: CTFEstimate, path: Path) -> None:
    """Write a PNG of the diagnostic image and the 1D profiles of ``estimate`` to ``path`` (atomically,
    with no timestamp or software metadata, so equal estimates give equal bytes)."""
    if estimate.diagnostic is None or estimate.radial is None:
        raise ProcessingError(
            f"cannot plot the CTF fit to {path}: the estimate has no diagnostic image or radial profile "
            "(it was not made by estimate_ctf, e.g. it was read from a CTFFIND output file)"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11.0, 4.6), dpi=100)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.5]})
    left.imshow(estimate.diagnostic, cmap="gray", origin="lower", interpolation="nearest")
    left.set_title("filtered spectrum | fitted CTF²", fontsize=10)
    left.set_xticks([])
    left.set_yticks([])
    profile = estimate.radial
    right.plot(profile.frequency, profile.observed, lw=0.8, color="0.3", label="observed (equi-phase avg)")
    right.plot(profile.frequency, profile.fitted, lw=1.0, color="tab:red", label="fitted CTF²")
    right.plot(profile.frequency, profile.correlation, lw=1.0, color="tab:blue", label="window correlation")
    right.plot(profile.frequency, profile.threshold, lw=0.8, color="tab:blue", ls=":", label="significance")
    if np.isfinite(estimate.fit_resolution) and estimate.fit_resolution > 0:
        right.axvline(
            1.0 / estimate.fit_resolution, color="tab:green", lw=1.0, ls="--", label="fit resolution"
        )
    right.set_xlabel("spatial frequency (1/Å)")
    right.set_ylim(-0.6, 1.4)
    right.legend(loc="upper right", fontsize=8)
    right.set_title(
        f"U {estimate.defocus_u:.0f} Å, V {estimate.defocus_v:.0f} Å, angle {estimate.defocus_angle:.1f}°, "
        f"phase {estimate.phase_shift:.0f}°, CC {estimate.cross_correlation:.3f}, "
        f"fit to {estimate.fit_resolution:.1f} Å",
        fontsize=9,
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(Path(path), buffer.getvalue())


# -- validation -----------------------------------------------------------------------------------------


def _validate(
    image: npt.NDArray[np.generic],
    pixel_size: float,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
    tile_size: int,
    min_resolution: float,
    max_resolution: float,
    min_defocus: float,
    max_defocus: float,
    defocus_step: float,
    find_phase_shift: bool,
    min_phase_shift: float,
    max_phase_shift: float,
    phase_shift_step: float,
    astigmatism_restraint: float | None,
) -> float:
    """Check the inputs; return max_resolution clipped to Nyquist."""
    if image.ndim != 2:
        raise ProcessingError(
            f"CTF estimation needs a 2D micrograph (y, x), got an array of shape {image.shape}"
        )
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise ProcessingError(f"CTF estimation needs a real-valued micrograph, got dtype {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ProcessingError(
            f"the micrograph has {int(np.count_nonzero(~np.isfinite(image)))} NaN or infinite pixels; "
            "CTF estimation needs finite values"
        )
    if float(np.ptp(image)) == 0.0:
        raise ProcessingError("the micrograph is constant (all pixels equal): it has no Thon rings to fit")
    if not (pixel_size > 0 and voltage > 0 and spherical_aberration >= 0):
        raise ProcessingError(
            f"pixel_size ({pixel_size} Å) and voltage ({voltage} kV) must be positive and "
            f"spherical_aberration ({spherical_aberration} mm) non-negative"
        )
    if not 0.0 <= amplitude_contrast < 1.0:
        raise ProcessingError(f"amplitude_contrast {amplitude_contrast} must be a fraction in [0, 1)")
    if tile_size < 64 or tile_size % 2:
        raise ProcessingError(f"tile_size {tile_size} px must be even and at least 64")
    if tile_size > min(image.shape):
        raise ProcessingError(
            f"tile_size {tile_size} px is larger than the micrograph ({image.shape[1]} x {image.shape[0]} "
            f"px); choose a tile_size of at most {min(image.shape) // 2 * 2} px"
        )
    nyquist = 2.0 * pixel_size
    if not min_resolution > nyquist:
        raise ProcessingError(
            f"min_resolution {min_resolution} Å must be coarser than Nyquist ({nyquist:.3g} Å at "
            f"{pixel_size} Å/px)"
        )
    max_resolution = max(float(max_resolution), nyquist)
    extent = tile_size * pixel_size
    if extent / max_resolution - extent / min_resolution < 8.0:
        raise ProcessingError(
            f"the band from min_resolution {min_resolution} Å to max_resolution {max_resolution:.3g} Å "
            f"spans fewer than 8 Fourier shells of a {tile_size} px tile; widen it (e.g. min_resolution "
            "30 Å, max_resolution 5 Å) or use a larger tile_size"
        )
    if not (0.0 < min_defocus < max_defocus and defocus_step > 0.0):
        raise ProcessingError(
            f"the defocus search needs 0 < min_defocus < max_defocus and defocus_step > 0, got "
            f"{min_defocus}, {max_defocus} and {defocus_step} Å"
        )
    if find_phase_shift and not (min_phase_shift <= max_phase_shift and phase_shift_step > 0.0):
        raise ProcessingError(
            f"the phase-shift search needs min_phase_shift <= max_phase_shift and phase_shift_step > 0, got "
            f"{min_phase_shift}, {max_phase_shift} and {phase_shift_step} degrees"
        )
    if astigmatism_restraint is not None and not astigmatism_restraint > 0:
        raise ProcessingError(
            f"astigmatism_restraint {astigmatism_restraint} Å must be positive (or None for no restraint)"
        )
    return max_resolution


# -- spectrum ---------------------------------------------------------------------------------------------


def _no_progress(done: int, total: int) -> None:
    return None


def _tile_starts(length: int, tile: int) -> list[int]:
    """Tile origins with 50 % overlap; the last tile ends at the edge of the micrograph."""
    step = tile // 2
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _power_spectrum(
    image: npt.NDArray[np.generic],
    tile: int,
    starts: tuple[list[int], list[int]],
    report: Callable[[int], None],
) -> FloatArray:
    """Welch average of the tiles' power spectra on a centred tile x tile grid (origin at tile // 2)."""
    taper = windows.tukey(tile, _TAPER).astype(np.float32)
    window = taper[:, None] * taper[None, :]
    origins = [(y, x) for y in starts[0] for x in starts[1]]
    half = np.zeros((tile, tile // 2 + 1), dtype=np.float64)
    batch = 8
    for first in range(0, len(origins), batch):
        chunk = origins[first : first + batch]
        tiles = np.stack([np.asarray(image[y : y + tile, x : x + tile], dtype=np.float32) for y, x in chunk])
        tiles -= tiles.mean(axis=(1, 2), keepdims=True)
        tiles *= window
        spectra = sfft.rfft2(tiles, workers=2)
        half += np.sum(spectra.real.astype(np.float64) ** 2 + spectra.imag.astype(np.float64) ** 2, axis=0)
        report(first + len(chunk))
    half /= len(origins) * float(np.sum(window.astype(np.float64) ** 2))
    # Complete the plane from Hermitian symmetry: P(-k) = P(k).
    full = np.empty((tile, tile), dtype=np.float64)
    full[:, : tile // 2 + 1] = half
    rows = (-np.arange(tile)) % tile
    columns = tile - np.arange(tile // 2 + 1, tile)
    full[:, tile // 2 + 1 :] = half[rows][:, columns]
    return np.asarray(np.fft.fftshift(full))


def _masked_box_mean(values: FloatArray, weight: FloatArray, box: int) -> FloatArray:
    """Box average of ``values`` over the pixels where ``weight`` is 1, with periodic edges."""
    numerator = ndimage.uniform_filter(values * weight, box, mode="wrap")
    denominator = ndimage.uniform_filter(weight, box, mode="wrap")
    return np.asarray(numerator / np.maximum(denominator, 1e-6))


def _filtered_spectrum(amplitude: FloatArray, r_min: float) -> FloatArray:
    """Background-subtracted, locally normalised amplitude spectrum (0 inside r_min); module docstring."""
    size = amplitude.shape[0]
    axis = np.arange(size) - size // 2
    radius = np.hypot(axis[None, :], axis[:, None])
    weight = (radius >= r_min).astype(np.float64)
    # Isotropic part: log rotational average against log radius, a polynomial over r_min .. Nyquist.
    shells = np.rint(radius).astype(np.int64).ravel()
    first, last = int(np.ceil(r_min)), size // 2
    log_amplitude = np.log(np.maximum(amplitude, np.finfo(np.float64).tiny))
    sums = np.bincount(shells, log_amplitude.ravel(), last + 1)[first : last + 1]
    counts = np.bincount(shells, None, last + 1)[first : last + 1]
    log_radius = np.log(np.arange(first, last + 1) / r_min)
    coefficients = np.polynomial.polynomial.polyfit(
        log_radius, sums / counts, _ISOTROPIC_DEGREE, w=np.sqrt(counts)
    )
    isotropic = np.polynomial.polynomial.polyval(np.log(np.maximum(radius, 1.0) / r_min), coefficients)
    flat = amplitude * np.exp(-isotropic)
    # Anisotropic remainder: CTFFIND's masked box convolution, on the flattened spectrum.
    box = max(3, int(r_min * np.sqrt(2.0)) | 1)
    residual = (flat - _masked_box_mean(flat, weight, box)) * weight
    variance = _masked_box_mean(residual**2, weight, 2 * box + 1)
    scale = np.sqrt(np.maximum(variance, 1e-30 * max(float(variance.max()), 1e-300)))
    filtered = np.clip(residual / scale, -_CLIP, _CLIP) * weight
    return np.asarray(filtered)


def _make_band(
    filtered: FloatArray, kx: FloatArray, ky: FloatArray, mask: npt.NDArray[np.bool_], optics: _Optics
) -> _Band:
    k2 = kx[mask] ** 2 + ky[mask] ** 2
    theta = np.arctan2(ky[mask], kx[mask])
    a, b = optics.chi_terms(k2)
    data = filtered[mask] - filtered[mask].mean()
    norm = float(np.linalg.norm(data))
    data = data / norm if norm > 0 else data

    def single(values: FloatArray) -> npt.NDArray[np.float32]:
        return np.ascontiguousarray(values, dtype=np.float32)

    return _Band(
        single(2.0 * a),
        single(a * np.cos(2 * theta)),
        single(a * np.sin(2 * theta)),
        single(2.0 * b),
        single(data),
    )


# -- fitting ----------------------------------------------------------------------------------------------


def _correlation(band: _Band, mean: float, p: float, q: float, phase: float) -> float:
    """Normalised cross-correlation between the band and CTF² = (1 - cos 2χ) / 2."""
    argument = band.a2 * np.float32(mean)
    argument += band.ac * np.float32(p)
    argument += band.as_ * np.float32(q)
    argument -= band.b2
    argument += np.float32(2.0 * phase)
    model = np.cos(argument, out=argument)
    model -= model.mean()
    norm = float(np.linalg.norm(model))
    return -float(band.data @ model) / norm if norm > 0 else 0.0


class _Objective:
    """Minus the (restrained) correlation over ``band``, as a function of x = (mean, p, q[, phase °])."""

    def __init__(
        self,
        band: _Band,
        restraint: float | None,
        min_defocus: float,
        max_defocus: float,
        find_phase: bool,
        phase: float,
    ) -> None:
        self.band = band
        self.restraint = restraint
        self.low = 0.5 * min_defocus
        self.high = 1.5 * max_defocus
        self.find_phase = find_phase
        self.phase = phase  # radians, used when the phase is not searched

    def __call__(self, x: FloatArray) -> float:
        mean, p, q = float(x[0]), float(x[1]), float(x[2])
        astig = float(np.hypot(p, q))
        if not (self.low <= mean - 0.5 * astig and mean + 0.5 * astig <= self.high):
            return 1.0
        phase = float(np.radians(x[3])) if self.find_phase else self.phase
        score = _correlation(self.band, mean, p, q, phase)
        if self.restraint is not None:
            score *= float(np.exp(-0.5 * (astig / self.restraint) ** 2))
        return -score


def _search_1d(
    filtered: FloatArray,
    radius: FloatArray,
    r_min: float,
    r_max: float,
    extent: float,
    optics: _Optics,
    defoci: FloatArray,
    phases: FloatArray,
) -> tuple[float, float]:
    """Best (defocus Å, phase rad) for the rotational average; every shell weighs the same."""
    shells = np.rint(radius).astype(np.int64).ravel()
    first, last = int(np.ceil(r_min)), int(np.floor(r_max))
    sums = np.bincount(shells, filtered.ravel(), last + 1)[first : last + 1]
    counts = np.bincount(shells, None, last + 1)[first : last + 1]
    profile = sums / np.maximum(counts, 1)
    profile -= profile.mean()
    k2 = (np.arange(first, last + 1) / extent) ** 2
    a, b = optics.chi_terms(k2)
    phase_rad = np.radians(phases)
    best = (-np.inf, float(defoci[0]), 0.0)
    for phase in phase_rad:
        models = -np.cos(2.0 * (defoci[:, None] * a[None, :] - b[None, :] + phase))
        models -= models.mean(axis=1, keepdims=True)
        scores = (models @ profile) / np.maximum(np.linalg.norm(models, axis=1), 1e-12)
        index = int(np.argmax(scores))
        if scores[index] > best[0]:
            best = (float(scores[index]), float(defoci[index]), float(phase))
    return best[1], best[2]


def _refine_2d(full: _Objective, coarse: _Objective, mean0: float, phase0: float, step: float) -> FloatArray:
    """Grid over astigmatism around the 1D answer and Nelder-Mead from the best grid points, both on the
    low-resolution half of the band (cheap, wide basin), then Nelder-Mead on the whole band."""
    candidates: list[tuple[float, FloatArray]] = []
    mean_step = max(step, 250.0)
    for offset in (-1.0, 0.0, 1.0):
        for astig in _ASTIGMATISM_GRID:
            for angle in np.radians(np.arange(0.0, 180.0, _ANGLE_STEP) if astig > 0 else np.zeros(1)):
                x = [mean0 + offset * mean_step, astig * np.cos(2 * angle), astig * np.sin(2 * angle)]
                point = np.asarray(x + ([float(np.degrees(phase0))] if full.find_phase else []))
                candidates.append((coarse(point), point))
    candidates.sort(key=lambda item: item[0])
    starts: list[FloatArray] = []
    for _, point in candidates:
        if all(
            np.hypot(*(point[1:3] - other[1:3])) > 400.0 or abs(point[0] - other[0]) > step
            for other in starts
        ):
            starts.append(point)
        if len(starts) == 3:
            break
    scale = np.asarray([mean_step, 300.0, 300.0] + ([20.0] if full.find_phase else []))
    refined = [_nelder_mead(coarse, start, scale) for start in starts]
    best = min(refined, key=full)
    best = _nelder_mead(full, best, 0.5 * scale)
    return _nelder_mead(full, best, 0.1 * scale)  # a restart: Nelder-Mead can stall on a shrunken simplex


def _nelder_mead(objective: _Objective, start: FloatArray, scale: FloatArray) -> FloatArray:
    simplex = np.vstack([start, start + np.diag(scale)])
    result = optimize.minimize(
        objective,
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 2.0, "fatol": 1e-6, "maxiter": 1000},
    )
    return np.asarray(result.x, dtype=np.float64)


# -- fit resolution, profiles, diagnostic -----------------------------------------------------------------


def _phase_map(
    kx: FloatArray, ky: FloatArray, optics: _Optics, mean: float, p: float, q: float, phase: float
) -> FloatArray:
    k2 = kx**2 + ky**2
    theta = np.arctan2(ky, kx)
    defocus = mean + 0.5 * (p * np.cos(2 * theta) + q * np.sin(2 * theta))
    a, b = optics.chi_terms(k2)
    return np.asarray(a * defocus - b + phase)


def _equiphase_profile(
    filtered: FloatArray,
    kx: FloatArray,
    ky: FloatArray,
    radius: FloatArray,
    r_min: float,
    r_max: float,
    extent: float,
    pixel_size: float,
    optics: _Optics,
    mean: float,
    p: float,
    q: float,
    phase: float,
) -> tuple[RadialProfile, float]:
    """Equi-phase average of the filtered spectrum, the fitted CTF², their windowed 2D correlation and its
    significance threshold; and the fit resolution (Å)."""
    size = filtered.shape[0]
    # The defocus-dependent part of χ at every pixel equals λ m k_eq² - Cs λ³ k_eq⁴ / 2 at the equivalent
    # frequency k_eq of an unastigmatic CTF with the mean defocus m: solve the quadratic in k_eq² (its
    # smaller root; pixels past the extremum of χ, where Cs wins, have none and are left out).
    wavelength, cs = optics.wavelength, optics.cs
    k2 = kx**2 + ky**2
    theta = np.arctan2(ky, kx)
    defocus = mean + 0.5 * (p * np.cos(2 * theta) + q * np.sin(2 * theta))
    target = wavelength * defocus * k2 - 0.5 * cs * wavelength**3 * k2**2
    if cs > 0:
        discriminant = (wavelength * mean) ** 2 - 2.0 * cs * wavelength**3 * target
        valid = discriminant >= 0
        k_eq2 = (wavelength * mean - np.sqrt(np.where(valid, discriminant, 0.0))) / (cs * wavelength**3)
    else:
        valid = np.ones_like(k2, dtype=bool)
        k_eq2 = target / (wavelength * mean)
    r_eq = np.sqrt(np.maximum(k_eq2, 0.0)) * extent
    first, last = int(np.ceil(r_min)), size // 2
    half_plane = (ky > 0) | ((ky == 0) & (kx > 0))  # the spectrum is centrosymmetric: count each pixel once
    use = valid & half_plane & (radius >= r_min) & (r_eq >= first - 0.5) & (r_eq <= last + 0.5)
    shells = np.rint(r_eq[use]).astype(np.int64) - first
    n_shells = last - first + 1
    data = filtered[use]
    model = np.sin(_phase_map(kx[use], ky[use], optics, mean, p, q, phase)) ** 2
    sums = np.stack(
        [
            np.bincount(shells, weights, n_shells)[:n_shells]
            for weights in (None, data, data * data, model, model * model, data * model)
        ]
    )
    count = sums[0]
    frequency = np.arange(first, last + 1) / extent
    a, b = optics.chi_terms(frequency**2)
    fitted = np.sin(a * mean - b + phase) ** 2
    observed = sums[1] / np.maximum(count, 1.0)

    # Windows about two ring extrema wide (extrema of sin² are π/2 apart in χ), as CTFFIND4 sizes them.
    slope = np.abs(2.0 * np.pi * wavelength * (mean * frequency - cs * wavelength**2 * frequency**3)) / extent
    half_width = np.ceil((0.5 * np.pi) / np.maximum(slope, 1e-12))
    half_width = np.clip(half_width, max(2, n_shells // 40), max(2, n_shells // 2 - 1)).astype(np.int64)
    width = np.minimum(n_shells, 2 * half_width + 1)
    low = np.minimum(np.maximum(0, np.arange(n_shells) - half_width), n_shells - width)
    cumulative = np.concatenate([np.zeros((6, 1)), np.cumsum(sums, axis=1)], axis=1)
    window = cumulative[:, low + width] - cumulative[:, low]
    n = np.maximum(window[0], 1.0)
    covariance = window[5] - window[1] * window[3] / n
    variance = np.maximum(window[2] - window[1] ** 2 / n, 0.0) * np.maximum(
        window[4] - window[3] ** 2 / n, 0.0
    )
    correlation = np.where(variance > 0, covariance / np.sqrt(np.maximum(variance, 1e-300)), 0.0)
    threshold = _SIGNIFICANCE / np.sqrt(n)

    in_band = (frequency <= r_max / extent) & (count > 0)
    scale, offset = _least_squares_scale(observed[in_band], fitted[in_band])
    profile = RadialProfile(frequency, scale * observed + offset, fitted, correlation, threshold)
    return profile, _fit_resolution(frequency, correlation >= threshold, pixel_size)


def _least_squares_scale(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """(s, o) minimising |s x + o - y|², with s >= 0 so a failed fit is not shown upside down."""
    xc = x - x.mean()
    denominator = float(xc @ xc)
    scale = max(0.0, float(xc @ (y - y.mean())) / denominator) if denominator > 0 else 0.0
    return scale, float(y.mean() - scale * x.mean())


def _fit_resolution(frequency: FloatArray, agrees: npt.NDArray[np.bool_], pixel_size: float) -> float:
    """The resolution of the last shell of the run of agreeing shells that starts in the lowest tenth of
    the shells and is longer than three shells; the lowest shell's resolution when there is no such run
    (no Thon rings found), 2 · pixel_size when the run reaches the edge of the spectrum."""
    n = len(agrees)
    first = int(np.argmax(agrees)) if agrees.any() else n
    if first > max(1, n // 10):
        return float(1.0 / frequency[0])
    end = first + int(np.argmin(agrees[first:])) if not agrees[first:].all() else n
    if end - first <= 3:
        return float(1.0 / frequency[0])
    if end == n:
        return float(max(2.0 * pixel_size, 1.0 / frequency[-1]))
    return float(1.0 / frequency[end - 1])


def _diagnostic(
    filtered: FloatArray,
    kx: FloatArray,
    ky: FloatArray,
    radius: FloatArray,
    r_min: float,
    r_max: float,
    optics: _Optics,
    mean: float,
    p: float,
    q: float,
    phase: float,
) -> npt.NDArray[np.float32]:
    """Left half (columns < size / 2): filtered spectrum, smoothed by a Gaussian of σ = 1 px for display;
    right half: fitted CTF²; both standardised over the fitted band and clipped at ±3, 0 inside
    min_resolution. Row index = ky, column index = kx, origin at (size // 2, size // 2)."""
    size = filtered.shape[0]
    band = (radius >= r_min) & (radius <= r_max)
    model = np.sin(_phase_map(kx, ky, optics, mean, p, q, phase)) ** 2

    def standardised(values: FloatArray) -> FloatArray:
        centre = float(values[band].mean())
        spread = float(values[band].std()) or 1.0
        return np.asarray(np.clip((values - centre) / spread, -3.0, 3.0) * (radius >= r_min))

    image = standardised(ndimage.gaussian_filter(filtered, 1.0, mode="wrap"))
    image[:, size // 2 :] = standardised(model)[:, size // 2 :]
    return image.astype(np.float32)


def _canonical(defocus_1: float, defocus_2: float, angle: float) -> tuple[float, float, float]:
    """(U, V, angle) with U >= V and the angle in [0, 180)."""
    u, v, a = float(defocus_1), float(defocus_2), float(angle)
    if u < v:
        u, v, a = v, u, a + 90.0
    return u, v, a % 180.0
