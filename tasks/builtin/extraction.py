"""Particle extraction from a micrograph: boxing, phase flipping, Fourier rescaling, contrast inversion and
background normalisation, the steps of RELION's ``relion_preprocess --extract --norm --bg_radius
--invert_contrast`` (Scheres 2012, JSB 180:519; RELION documentation), implemented independently.

Geometry (project conventions, ``docs/conventions.md`` §0): a box is cut at the integer pixel nearest each
coordinate, (X, Y) = floor((x, y) + 0.5), with its centre index box // 2 on that pixel. The particle then sits
at (x - X, y - Y) pixels from the box centre, so its origin shift is o = -(x - X, y - Y) · pixel size Å
(rlnOriginXAngst sense: centre = coordinate - o / pixel size) and X - o_x / pixel = x exactly. Write X, Y as
the particles' coordinates together with o; writing x, y with o would count the residual twice.

Steps, in RELION's order:
1. window the box (particles whose box is not fully inside the micrograph are skipped or refused);
2. phase flip, when a CTF is given: multiply the box's centred spectrum by the sign of the micrograph's CTF
   evaluated on the box's frequency grid (RELION convention, CTF > 0 at low frequency);
3. rescale, when ``rescale_box`` is given: crop (downsample) or zero-pad (upsample) the centred spectrum,
   scaled so pixel values keep their magnitude; the pixel size becomes pixel · box / rescale_box;
4. invert the contrast (raw micrographs show particles dark; RELION refines white particles);
5. normalise: fit a plane a + b·x + c·y to the background pixels (farther than ``bg_radius_px`` from the box
   centre) and subtract it, then divide by the standard deviation of the background residual, so the
   background has mean 0 and standard deviation 1 (RELION's ramp-subtracting ``--norm``; ``ramp=False``
   subtracts the background mean only, like ``--no_ramp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from scipion_kg.errors import ProcessingError

from .ctf import CTFParameters, ctf_image
from .fourier import centered_fft2, centered_ifft2

__all__ = ["Extracted", "extract_particles", "normalise_background"]

FloatArray = npt.NDArray[np.float64]
_CHUNK = 256  # particles transformed at a time


@dataclass(frozen=True)
class Extracted:
    """Extracted particles.

    ``stack`` (m, s, s) float32 holds only the m kept particles, in input order; ``kept`` (n,) flags which
    of the n input coordinates they are (a box reaching outside the micrograph is not kept). The other arrays
    have one value per input coordinate (n,), kept or not: ``coordinate_x/y`` are the integer box centres in
    micrograph pixels and ``origin_x/y_angstrom`` the sub-pixel residuals as origin shifts, so the particle
    centre is coordinate - origin / ``micrograph_pixel_size``; select the kept ones with ``[kept]``.
    ``pixel_size`` is the stack's pixel size in Å (changed by rescaling)."""

    stack: npt.NDArray[np.float32]
    kept: npt.NDArray[np.bool_]
    coordinate_x: FloatArray
    coordinate_y: FloatArray
    origin_x_angstrom: FloatArray
    origin_y_angstrom: FloatArray
    pixel_size: float
    micrograph_pixel_size: float

    @property
    def skipped(self) -> npt.NDArray[np.int64]:
        """Indices of the input coordinates whose box did not fit in the micrograph."""
        return np.flatnonzero(~self.kept)


def _name(micrograph_name: str | None) -> str:
    return f"micrograph {micrograph_name}" if micrograph_name else "the micrograph"


def normalise_background(
    stack: npt.NDArray[np.floating], bg_radius_px: float, *, ramp: bool = True
) -> npt.NDArray[np.float64]:
    """Images (n, s, s) with the background (pixels farther than ``bg_radius_px`` from the centre s // 2)
    brought to mean 0 and standard deviation 1, after subtracting a fitted plane when ``ramp``.

    An image whose background is constant is only shifted, not scaled."""
    images = np.asarray(stack, dtype=np.float64)
    size = images.shape[-1]
    grid = np.arange(size) - size // 2
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    background = gx**2 + gy**2 > bg_radius_px**2
    n_background = int(background.sum())
    if n_background < 10:
        raise ProcessingError(
            f"bg_radius_px {bg_radius_px} leaves {n_background} background pixels in a {size} px box; "
            f"use a radius below {size // 2} px"
        )
    values = images[:, background]  # (n, m)
    if ramp:
        design = np.stack([np.ones(n_background), gx[background], gy[background]], axis=1).astype(np.float64)
        coefficients = np.linalg.pinv(design) @ values.T  # (3, n)
        plane = (
            coefficients[0][:, None, None]
            + coefficients[1][:, None, None] * gx[None]
            + coefficients[2][:, None, None] * gy[None]
        )
        images = images - plane
        values = images[:, background]
    else:
        images = images - values.mean(axis=1)[:, None, None]
        values = images[:, background]
    spread = values.std(axis=1)
    spread = np.where(spread > 0, spread, 1.0)
    return np.asarray(images / spread[:, None, None])


def _resize_spectra(spectra: npt.NDArray[np.complexfloating], size: int) -> npt.NDArray[np.complex128]:
    """Centred spectra (n, b, b) cropped or zero-padded to (n, size, size) around the origin b // 2."""
    box = spectra.shape[-1]
    out = np.zeros((spectra.shape[0], size, size), dtype=np.complex128)
    common = min(box, size)
    source = slice(box // 2 - common // 2, box // 2 - common // 2 + common)
    target = slice(size // 2 - common // 2, size // 2 - common // 2 + common)
    out[:, target, target] = spectra[:, source, source]
    return out


def extract_particles(
    micrograph: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    box: int,
    *,
    pixel_size: float,
    invert_contrast: bool = True,
    normalise: bool = True,
    bg_radius_px: float | None = None,
    ramp: bool = True,
    ctf: CTFParameters | None = None,
    rescale_box: int | None = None,
    on_edge: Literal["skip", "error"] = "skip",
    micrograph_name: str | None = None,
) -> Extracted:
    """Boxes of ``box`` px around the coordinates (x, y) (micrograph pixels, 0-based, x = column).

    ``bg_radius_px`` is in pixels of the output box (None: 0.375 of it, RELION's default of 75 % of the box
    radius); ``ctf`` (the micrograph's CTF) turns on phase flipping; ``rescale_box`` resamples each box to
    that size in Fourier space; ``on_edge`` says what to do with a box that reaches outside the micrograph:
    "skip" it (reported in ``kept``/``skipped``) or raise a :class:`ProcessingError` ("error")."""
    image = np.asarray(micrograph)
    if image.ndim != 2:
        raise ProcessingError(f"{_name(micrograph_name)}: a 2D image is needed, got shape {image.shape}")
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise ProcessingError(f"x and y coordinates differ in number: {len(xs)} and {len(ys)}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ProcessingError(f"coordinates for {_name(micrograph_name)} hold NaN or infinite values")
    if pixel_size <= 0:
        raise ProcessingError(f"pixel_size must be > 0 Å, got {pixel_size}")
    if box < 2:
        raise ProcessingError(f"box must be at least 2 px, got {box}")
    height, width = image.shape
    if box > height or box > width:
        raise ProcessingError(
            f"box size {box} px is larger than {_name(micrograph_name)} ({width} x {height} px); "
            f"use a box of at most {min(width, height)} px"
        )
    out_box = box if rescale_box is None else rescale_box
    if out_box < 2:
        raise ProcessingError(f"rescale_box must be at least 2 px, got {rescale_box}")
    if on_edge not in ("skip", "error"):
        raise ProcessingError(f"on_edge must be 'skip' or 'error', got {on_edge!r}")
    radius = 0.375 * out_box if bg_radius_px is None else bg_radius_px
    if normalise and radius <= 0:
        raise ProcessingError(f"bg_radius_px must be > 0 px, got {bg_radius_px}")
    if normalise:
        normalise_background(np.zeros((0, out_box, out_box)), radius)  # checks the radius leaves a background

    centre_x = np.floor(xs + 0.5).astype(np.int64)
    centre_y = np.floor(ys + 0.5).astype(np.int64)
    start_x, start_y = centre_x - box // 2, centre_y - box // 2
    kept = (start_x >= 0) & (start_y >= 0) & (start_x + box <= width) & (start_y + box <= height)
    if on_edge == "error" and not kept.all():
        bad = np.flatnonzero(~kept)
        listed = ", ".join(f"#{i} ({xs[i]:.1f}, {ys[i]:.1f})" for i in bad[:5])
        raise ProcessingError(
            f"{len(bad)} particle box(es) of {box} px reach outside {_name(micrograph_name)} "
            f"({width} x {height} px): {listed}{' ...' if len(bad) > 5 else ''}; "
            "use on_edge='skip' to drop them"
        )
    flip = np.where(ctf_image(ctf, box, pixel_size) < 0, -1.0, 1.0) if ctf is not None else None
    indices = np.flatnonzero(kept)
    stack = np.empty((len(indices), out_box, out_box), dtype=np.float32)
    offsets = np.arange(box)
    for first in range(0, len(indices), _CHUNK):  # bounded memory for many particles or large boxes
        chosen = indices[first : first + _CHUNK]
        rows = (start_y[chosen][:, None] + offsets[None, :])[:, :, None]
        cols = (start_x[chosen][:, None] + offsets[None, :])[:, None, :]
        chunk = np.asarray(image[rows, cols], dtype=np.float64)
        if flip is not None or out_box != box:
            spectra = centered_fft2(chunk)
            if flip is not None:
                spectra = spectra * flip
            if out_box != box:
                spectra = _resize_spectra(spectra, out_box) * (out_box / box) ** 2
            chunk = centered_ifft2(spectra)
        if invert_contrast:
            chunk = -chunk
        if normalise:
            chunk = normalise_background(chunk, radius, ramp=ramp)
        stack[first : first + len(chosen)] = chunk

    residual_x = xs - centre_x
    residual_y = ys - centre_y
    return Extracted(
        stack=stack,
        kept=kept,
        coordinate_x=centre_x.astype(np.float64),
        coordinate_y=centre_y.astype(np.float64),
        origin_x_angstrom=-residual_x * pixel_size,
        origin_y_angstrom=-residual_y * pixel_size,
        pixel_size=pixel_size * box / out_box,
        micrograph_pixel_size=pixel_size,
    )
