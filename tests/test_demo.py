"""The demo: a real project with an import and a built-in masking run, and the mask's lineage."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from scipion_kg.tasks.builtin.masking import soft_mask

from scipion_kg.demo import phantom_map, run_demo
from scipion_kg.errors import ProjectError


def test_the_demo_records_import_and_masking_with_their_lineage(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", "small", say=lambda _: None)
    with mrcfile.open(result.mask) as mrc:
        mask = np.asarray(mrc.data)
        assert float(mrc.voxel_size.x) == pytest.approx(1.5)
    assert mask.shape == (48, 48, 48)
    assert mask.min() == 0.0 and mask.max() == 1.0
    assert "skg:Import" in result.lineage_text and "skg:Masking" in result.lineage_text
    prov = json.loads((result.project / "exports" / "mask-lineage.prov.json").read_text())
    assert len(prov["activity"]) == 2
    with pytest.raises(ProjectError, match="not empty"):
        run_demo(result.project, "small", say=lambda _: None)


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


def test_phantom_is_reproducible() -> None:
    assert np.array_equal(phantom_map(24), phantom_map(24))
