"""Fourier-space primitives shared by the built-in backends: frequency grids, shifts, central-slice
projection, shell statistics (FSC) and filters.

Conventions (``docs/conventions.md`` §0 of the project's research notes):
- arrays are indexed (z, y, x) for volumes and (y, x) for images; the centre of an axis of length n is
  index n // 2 (RELION's image centre);
- a pose is the pivot matrix A (RELION's Euler_angles2matrix): the projection of map V is
  P(r) = ∫ V(Aᵀ (x, y, z)) dz, so its Fourier transform is V̂(Aᵀ (kx, ky, 0)) (Fourier slice theorem);
- an origin shift o (Å, RELION's rlnOriginXAngst) moves the projection by -o: I(x) = P(x + o).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "Projector",
    "centered_fft2",
    "centered_ifft2",
    "fourier_shift_images",
    "frequency_grid_2d",
    "fsc",
    "lowpass",
    "radial_index",
    "resolution_at",
]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complexfloating]


def frequency_grid_2d(size: int, pixel_size: float = 1.0) -> tuple[FloatArray, FloatArray]:
    """Frequencies (kx, ky) in 1/Å of a centred ``size`` x ``size`` DFT grid (origin at size // 2)."""
    k = (np.arange(size) - size // 2) / (size * pixel_size)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    return kx, ky


def centered_fft2(images: npt.NDArray[np.floating]) -> ComplexArray:
    """2D DFT over the last two axes with the origin of both spaces at index n // 2."""
    shifted = np.fft.ifftshift(images, axes=(-2, -1))
    return np.fft.fftshift(np.fft.fft2(shifted, axes=(-2, -1)), axes=(-2, -1))


def centered_ifft2(spectra: ComplexArray) -> FloatArray:
    """Inverse of :func:`centered_fft2`, real part."""
    shifted = np.fft.ifftshift(spectra, axes=(-2, -1))
    return np.asarray(np.fft.fftshift(np.fft.ifft2(shifted, axes=(-2, -1)), axes=(-2, -1)).real)


def fourier_shift_images(images: npt.NDArray[np.floating], shifts_px: FloatArray) -> FloatArray:
    """Images translated by ``shifts_px`` (n, 2) as (dx, dy) pixels: out(x) = in(x - d), sub-pixel exact."""
    stack = np.atleast_3d(images) if images.ndim == 2 else images
    if images.ndim == 2:
        stack = images[None]
    size_y, size_x = stack.shape[-2:]
    ky = np.fft.fftfreq(size_y)[:, None]
    kx = np.fft.fftfreq(size_x)[None, :]
    shifts = np.asarray(shifts_px, dtype=np.float64).reshape(-1, 2)
    phase = np.exp(-2j * np.pi * (kx[None] * shifts[:, 0, None, None] + ky[None] * shifts[:, 1, None, None]))
    moved = np.fft.ifft2(np.fft.fft2(stack, axes=(-2, -1)) * phase, axes=(-2, -1)).real
    return np.asarray(moved[0] if images.ndim == 2 else moved)


def radial_index(shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """Integer Fourier shell of every element of a centred grid of ``shape`` (cubic or square)."""
    axes = [np.arange(n) - n // 2 for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt(sum(g.astype(np.float64) ** 2 for g in grids))
    return np.rint(radius).astype(np.int64)


def fsc(map1: npt.NDArray[np.floating], map2: npt.NDArray[np.floating]) -> FloatArray:
    """Fourier shell correlation of two maps (or images) of the same cubic shape, shells 0 .. n // 2."""
    if map1.shape != map2.shape:
        raise ValueError(f"FSC needs maps of the same shape, got {map1.shape} and {map2.shape}")
    f1 = np.fft.fftshift(np.fft.fftn(map1))
    f2 = np.fft.fftshift(np.fft.fftn(map2))
    shells = radial_index(map1.shape).ravel()
    n_shells = map1.shape[0] // 2 + 1
    keep = shells < n_shells
    shells = shells[keep]
    cross = np.bincount(shells, (f1 * np.conj(f2)).real.ravel()[keep], n_shells)
    power1 = np.bincount(shells, (np.abs(f1) ** 2).ravel()[keep], n_shells)
    power2 = np.bincount(shells, (np.abs(f2) ** 2).ravel()[keep], n_shells)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = cross / np.sqrt(power1 * power2)
    return np.asarray(np.nan_to_num(curve, nan=0.0), dtype=np.float64)


def resolution_at(curve: FloatArray, threshold: float, box: int, pixel_size: float) -> float:
    """Resolution (Å) where ``curve`` first falls below ``threshold``, interpolated between shells.

    Shell i has spatial frequency i / (box · pixel_size); shell 0 is skipped. If the curve never falls
    below the threshold the Nyquist resolution 2 · pixel_size is returned."""
    for shell in range(1, len(curve)):
        if curve[shell] < threshold:
            previous = curve[shell - 1]
            fraction = (previous - threshold) / (previous - curve[shell]) if previous != curve[shell] else 0
            frequency = (shell - 1 + fraction) / (box * pixel_size)
            return float(1.0 / frequency) if frequency > 0 else float("inf")
    return 2.0 * pixel_size


def lowpass(
    volume: npt.NDArray[np.floating], resolution: float, pixel_size: float, edge: float = 0.0
) -> FloatArray:
    """``volume`` (2D or 3D) low-passed at ``resolution`` Å with a raised-cosine edge ``edge`` shells wide."""
    box = volume.shape[0]
    shells = np.sqrt(
        sum(
            (g.astype(np.float64)) ** 2
            for g in np.meshgrid(*[np.arange(n) - n // 2 for n in volume.shape], indexing="ij")
        )
    )
    cutoff = box * pixel_size / resolution
    if edge > 0:
        weight = np.clip((cutoff + edge / 2 - shells) / edge, 0.0, 1.0)
        weight = 0.5 - 0.5 * np.cos(np.pi * weight)
    else:
        weight = (shells <= cutoff).astype(np.float64)
    spectrum = np.fft.fftshift(np.fft.fftn(volume)) * weight
    return np.asarray(np.fft.ifftn(np.fft.ifftshift(spectrum)).real, dtype=np.float64)


class Projector:
    """Central-slice projections of a cubic map, with 2x oversampling and trilinear interpolation.

    The map is divided by the transform of the interpolation kernel before its own transform (gridding
    correction),
    so projections are not attenuated towards the box edge."""

    def __init__(self, volume: npt.NDArray[np.floating], padding: int = 2) -> None:
        box = volume.shape[0]
        if volume.ndim != 3 or volume.shape != (box, box, box):
            raise ValueError(f"a cubic 3D map is needed, got shape {volume.shape}")
        self.box = box
        self.padding = padding
        padded_box = padding * box
        grid = np.arange(box) - box // 2
        z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
        # Trilinear interpolation is a separable triangle kernel: it multiplies the map by sinc² per axis.
        correction = (np.sinc(x / padded_box) * np.sinc(y / padded_box) * np.sinc(z / padded_box)) ** 2
        corrected = np.asarray(volume, dtype=np.float64) / np.maximum(correction, 1e-3)
        padded = np.zeros((padded_box,) * 3)
        start = padded_box // 2 - box // 2
        padded[start : start + box, start : start + box, start : start + box] = corrected
        spectrum = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(padded)))
        self._real = np.ascontiguousarray(spectrum.real, dtype=np.float32)
        self._imag = np.ascontiguousarray(spectrum.imag, dtype=np.float32)
        self._centre = padded_box // 2

    def project_spectra(self, matrices: FloatArray, size: int | None = None) -> npt.NDArray[np.complex128]:
        """Centred 2D spectra (n, size, size) of the projections for pivot matrices (n, 3, 3)."""
        size = size or self.box
        k = np.arange(size) - size // 2
        ky, kx = np.meshgrid(k, k, indexing="ij")
        plane = np.stack([kx.ravel(), ky.ravel(), np.zeros(kx.size)]).astype(np.float64)  # (3, m)
        out = np.empty((len(matrices), size, size), dtype=np.complex128)
        scale = self.padding * self.box / size
        for index, matrix in enumerate(np.asarray(matrices, dtype=np.float64)):
            # Frequency k of the image samples the map at Aᵀ k; rows of the coordinate array are (z, y, x).
            points = matrix.T @ plane * scale
            coordinates = points[::-1] + self._centre
            real = ndimage.map_coordinates(self._real, coordinates, order=1, mode="constant")
            imag = ndimage.map_coordinates(self._imag, coordinates, order=1, mode="constant")
            out[index] = (real + 1j * imag).reshape(size, size)
        return out

    def project(self, matrices: FloatArray, size: int | None = None) -> FloatArray:
        """Real-space projections (n, size, size) for pivot matrices (n, 3, 3)."""
        return centered_ifft2(self.project_spectra(matrices, size))
