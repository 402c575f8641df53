"""Initial model for 3D refinement from a related reference map.

Method: the classic start of a refinement from a known, related structure (e.g. RELION's ``--ref`` with
``--ini_high``, Scheres 2012 JSB 180:519): the reference is low-passed, resampled onto the particles'
grid (same physical centre, voxel ``box // 2``) by cubic-spline interpolation, and low-passed again to
``resolution`` Å with a raised-cosine edge, so that refinement is not biased by the reference's fine
detail (Henderson et al. 2012 Structure 20:205 on model bias).

Ab initio reconstruction (common lines, Shkolnisky & Singer 2012; stochastic gradient descent, Punjani
et al. 2017 Nat Methods 14:290) is not implemented here; see processing.md §1 (ASPIRE common lines failed
at SNR 0.1) for why a reference-based start is the default of the built-in pipeline.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from scipion_kg.errors import ProcessingError

__all__ = ["cosine_lowpass", "initial_model_from_reference"]

FloatArray = npt.NDArray[np.float64]


def cosine_lowpass(
    volume: npt.NDArray[np.floating], resolution: float, pixel_size: float, edge_shells: float = 2.0
) -> FloatArray:
    """``volume`` (any shape, 2D or 3D) low-passed at ``resolution`` Å: the filter is 1 up to
    1/resolution minus half the edge, 0.5 at 1/resolution and 0 beyond 1/resolution plus half the edge; the
    edge is ``edge_shells`` Fourier shells of the largest axis wide."""
    data = np.asarray(volume, dtype=np.float64)
    if resolution <= 0 or pixel_size <= 0:
        raise ProcessingError(f"resolution {resolution} Å and pixel size {pixel_size} Å must be positive")
    axes = [np.fft.fftfreq(n, d=pixel_size) for n in data.shape[:-1]] + [
        np.fft.rfftfreq(data.shape[-1], pixel_size)
    ]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    frequency = np.sqrt(sum(g**2 for g in grids))
    cutoff = 1.0 / resolution
    width = edge_shells / (max(data.shape) * pixel_size)
    if width > 0:
        ramp = np.clip((cutoff + width / 2 - frequency) / width, 0.0, 1.0)
        weight = 0.5 - 0.5 * np.cos(np.pi * ramp)
    else:
        weight = (frequency <= cutoff).astype(np.float64)
    return np.asarray(
        np.fft.irfftn(np.fft.rfftn(data) * weight, s=data.shape, axes=tuple(range(data.ndim))),
        dtype=np.float64,
    )


def initial_model_from_reference(
    reference: npt.NDArray[np.floating],
    reference_pixel_size: float,
    box: int,
    pixel_size: float,
    resolution: float = 40.0,
) -> npt.NDArray[np.float32]:
    """``reference`` (z, y, x) at ``reference_pixel_size`` Å resampled onto a ``box``³ grid of
    ``pixel_size`` Å (centres at index n // 2 coincide) and low-passed to ``resolution`` Å (cosine edge)."""
    data = np.asarray(reference, dtype=np.float64)
    if data.ndim != 3:
        raise ProcessingError(f"the reference must be a 3D map (z, y, x), got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ProcessingError("the reference map contains non-finite values (NaN or inf)")
    if reference_pixel_size <= 0 or pixel_size <= 0:
        raise ProcessingError(
            f"pixel sizes must be positive, got reference {reference_pixel_size} Å "
            f"and particles {pixel_size} Å"
        )
    if box < 4:
        raise ProcessingError(f"box {box} px is too small for an initial model; give at least 4")
    if resolution < 2 * pixel_size:
        raise ProcessingError(
            f"resolution {resolution} Å is finer than the Nyquist limit {2 * pixel_size} Å of the particles' "
            f"{pixel_size} Å pixels; give at least {2 * pixel_size} Å"
        )
    # Band-limit first so that resampling to coarser voxels does not alias.
    filtered = cosine_lowpass(data, resolution, reference_pixel_size)
    scale = pixel_size / reference_pixel_size
    centre_in = np.array([n // 2 for n in data.shape], dtype=np.float64)
    centre_out = np.full(3, box // 2, dtype=np.float64)
    offset = centre_in - scale * centre_out
    resampled = ndimage.affine_transform(
        filtered, np.full(3, scale), offset=offset, output_shape=(box, box, box), order=3, mode="constant"
    )
    return cosine_lowpass(resampled, resolution, pixel_size).astype(np.float32)
