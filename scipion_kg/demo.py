"""``scipion-kg demo``: a complete, self-contained run of the recorder on generated data.

It builds a project, writes a phantom map (Gaussian blobs, voxel size 1.5 Å), registers it through an
import run, computes a soft solvent mask with the built-in masking backend, and exports the mask's
lineage as text, PROV-JSON and Turtle. Everything runs on the embedded store; no server is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .atomic import atomic_write_bytes
from .errors import ProjectError
from .export import export_lineage
from .importer import import_files
from .lineage import lineage
from .project import Project
from .recorder import Input, Parameter, Recorder, Software
from .version import __version__

__all__ = ["DemoResult", "phantom_map", "run_demo"]

SIZES = {"small": 48, "standard": 96}
VOXEL_SIZE = 1.5


@dataclass(frozen=True)
class DemoResult:
    project: Path
    phantom: Path
    mask: Path
    lineage_text: str
    exports: tuple[Path, ...]


def phantom_map(box: int, seed: int = 7) -> npt.NDArray[np.float32]:
    """A reproducible phantom: 24 Gaussian blobs of random size inside a sphere of a third of the box."""
    rng = np.random.default_rng(seed)
    grid = np.indices((box, box, box), dtype=np.float32) - box / 2
    volume = np.zeros((box, box, box), dtype=np.float32)
    for _ in range(24):
        direction = rng.normal(size=3)
        centre = direction / np.linalg.norm(direction) * rng.uniform(0, box / 6)
        sigma = rng.uniform(box / 40, box / 16)
        squared = sum((grid[axis] - centre[axis]) ** 2 for axis in range(3))
        volume += np.exp(-squared / (2 * sigma**2)).astype(np.float32)
    return volume


def run_demo(out: Path, size: str = "small", say: Callable[[str], None] = print) -> DemoResult:
    from scipion_kg.converters.mrc import write_map
    from scipion_kg.tasks.builtin.masking import soft_mask

    if out.exists() and any(out.iterdir()):
        raise ProjectError(f"{out} already exists and is not empty; choose another --out")
    box = SIZES[size]
    say(f"[1/4] creating project {out}")
    project = Project.init(out)
    phantom = project.root / "data" / "phantom.mrc"
    write_map(phantom, phantom_map(box), VOXEL_SIZE)
    with project.open_store(write=True) as store:
        recorder = Recorder(project, store)
        say(f"[2/4] importing a {box}^3 phantom map ({VOXEL_SIZE} Å/voxel)")
        import_files(recorder, [phantom], data_class="skg:Map")
        say("[3/4] computing a soft solvent mask (built-in backend)")
        volume = phantom_map(box)
        threshold = float(volume.mean() + 2 * volume.std())
        parameters = [
            Parameter("threshold", round(threshold, 6)),
            Parameter("extend_voxels", 3),
            Parameter("soft_edge_voxels", 6),
            Parameter("voxel_size", VOXEL_SIZE, "unit:ANGSTROM"),
        ]
        with recorder.run(
            "skg:Masking",
            inputs=[Input(phantom, "map", "skg:Map")],
            parameters=parameters,
            software=[Software("scipion-kg", __version__, algorithm="threshold, extend, raised-cosine edge")],
        ) as run:
            mask = run.directory / "mask.mrc"
            write_map(mask, soft_mask(volume, threshold, 3, 6), VOXEL_SIZE)
            run.add_output(mask, "mask", "skg:Mask")
        say("[4/4] exporting the mask's lineage")
        result = lineage(store, run.outputs[0].iri)
        exports = []
        for name, fmt in (
            ("mask-lineage.txt", "text"),
            ("mask-lineage.prov.json", "prov-json"),
            ("mask-lineage.ttl", "turtle"),
        ):
            target = project.root / "exports" / name
            atomic_write_bytes(target, export_lineage(store, result, fmt).encode("utf-8"))
            exports.append(target)
        text = export_lineage(store, result, "text")
    project.close()
    return DemoResult(project.root, phantom, mask, text, tuple(exports))
