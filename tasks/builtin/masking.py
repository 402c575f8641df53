"""Soft solvent mask of a density map: threshold, extend, cosine edge (as RELION's mask_create does).

RELION documents the same three parameters (``--ini_threshold``, ``--extend_inimask``,
``--width_soft_edge``); this is an independent numpy implementation of that recipe.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["soft_mask"]


def soft_mask(
    volume: npt.NDArray[np.floating],
    threshold: float,
    extend_voxels: int = 3,
    soft_edge_voxels: int = 6,
) -> npt.NDArray[np.float32]:
    """A mask that is 1 inside ``volume > threshold`` grown by ``extend_voxels``, falling to 0 along a
    raised-cosine edge ``soft_edge_voxels`` wide."""
    if volume.ndim != 3:
        raise ValueError(f"a 3D map is needed, got an array of shape {volume.shape}")
    core = volume > threshold
    if not core.any():
        raise ValueError(f"no voxel is above the threshold {threshold}; lower it")
    # Distance of every voxel from the thresholded region, in voxels.
    distance = ndimage.distance_transform_edt(~core)
    mask = np.zeros(volume.shape, dtype=np.float32)
    mask[distance <= extend_voxels] = 1.0
    if soft_edge_voxels > 0:
        edge = (distance > extend_voxels) & (distance <= extend_voxels + soft_edge_voxels)
        phase = (distance[edge] - extend_voxels) / soft_edge_voxels
        mask[edge] = 0.5 + 0.5 * np.cos(np.pi * phase)
    return mask
