"""The built-in soft mask: the recipe of RELION's mask_create (threshold, extend, raised-cosine edge)."""

from __future__ import annotations

import numpy as np
import pytest
from scipion_kg.tasks.builtin.masking import soft_mask


def test_soft_mask_has_the_requested_extension_and_cosine_edge() -> None:
    volume = np.zeros((40, 40, 40), dtype=np.float32)
    volume[20, 20, 20] = 1.0
    mask = soft_mask(volume, 0.5, extend_voxels=3, soft_edge_voxels=4)
    line = mask[20, 20, 20:]
    assert list(line[:4]) == [1.0, 1.0, 1.0, 1.0]  # distance 0..3: inside
    # distance 4..7: raised cosine 0.5 + 0.5 cos(pi (d - 3) / 4)
    expected = [0.5 + 0.5 * np.cos(np.pi * (d - 3) / 4) for d in range(4, 8)]
    assert line[4:8] == pytest.approx(expected, abs=1e-6)
    assert line[8:].max() == 0.0


def test_a_threshold_above_the_map_is_refused() -> None:
    with pytest.raises(ValueError, match="no voxel is above the threshold"):
        soft_mask(np.zeros((8, 8, 8)), 1.0)
