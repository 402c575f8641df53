"""``scipion-kg demo``: the whole single-particle pipeline on simulated data with a known answer.

It computes a ground-truth map from a real atomic model shipped with the package (PDB 1BD2), simulates
movies with drift, CTF and noise (particles at known positions and poses), and runs every step through
Luigi with the chosen backends: import (acquisition from the simulated SerialEM mdoc files), motion
correction, CTF estimation, picking, extraction, 2D classification with selection, an initial model,
gold-standard 3D refinement and post-processing. Every step is a recorded run; the project can be served
and queried afterwards. ``DIR/demo-summary.json`` says where everything is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes
from .errors import ProjectError
from .project import Project

__all__ = ["DemoResult", "demo_workflow", "run_demo"]

SIZES = ("small", "standard")
# Steps that have a RELION backend; the others run built-in whatever --backend says.
RELION_STEPS = {"motion", "picking", "extraction", "class2d", "refine", "postprocess"}

_SETTINGS: dict[str, dict[str, Any]] = {
    "small": {
        "box": 128,
        "diameter": [110.0, 180.0],
        "mask": 150.0,
        "classes": 8,
        "class_iterations": 6,
        "refine_iterations": 15,
        "final_step": 0.9375,
        "per_micrograph": 55,
        "ctf_tile": 384,
        "ctf_max_resolution": 5.0,
    },
    "standard": {
        "box": 128,
        "diameter": [110.0, 180.0],
        "mask": 150.0,
        "classes": 10,
        "class_iterations": 8,
        "refine_iterations": 15,
        "final_step": 0.9375,
        "per_micrograph": 55,
        "ctf_tile": 384,
        "ctf_max_resolution": 5.0,
    },
}


@dataclass(frozen=True)
class DemoResult:
    project: Path
    summary_file: Path
    summary: dict[str, Any]


def demo_workflow(size: str, backend: str, model: Path | None = None) -> dict[str, Any]:
    """The demo's workflow (the same structure a ``scipion-kg pipeline`` file holds)."""
    s = _SETTINGS[size]

    def chosen(step_id: str) -> str:
        return backend if backend == "relion" and step_id in RELION_STEPS else "builtin"

    simulate: dict[str, Any] = {"id": "simulate", "step": "simulate", "parameters": {"size": size, "seed": 1}}
    initial: dict[str, Any] = {
        "id": "initial",
        "step": "initial_model",
        "inputs": {"particles": "class2d.selected"},
    }
    if model is not None:
        simulate["inputs"] = {"model": {"files": [str(model)]}}
        # The initial model starts from the same atomic model, low-pass filtered to 40 Å (see the README).
        initial["inputs"]["reference_model"] = {"files": [str(model)]}
    steps: list[dict[str, Any]] = [
        simulate,
        {
            "id": "import",
            "step": "import_movies",
            "inputs": {"movies": "simulate.movie", "mdoc": "simulate.mdoc"},
            "parameters": {"spherical_aberration": 2.7, "amplitude_contrast": 0.1},
        },
        # The simulation has no radiation damage: weighting frames for it would only lose signal.
        {
            "id": "motion",
            "step": "motion_correction",
            "inputs": {"movies": "import.movies", "acquisition": "import.acquisition"},
            "parameters": {"dose_weighting": False},
        },
        {
            "id": "ctf",
            "step": "ctf_estimation",
            "inputs": {"micrographs": "motion.micrographs"},
            "parameters": {
                "max_resolution": s["ctf_max_resolution"],
                "tile_size": s["ctf_tile"],
                "min_defocus": 5000.0,
                "max_defocus": 35000.0,
            },
        },
        {
            "id": "picking",
            "step": "particle_picking",
            "inputs": {"micrographs": "ctf.micrographs"},
            "parameters": {
                "diameter": s["diameter"],
                "particles_per_micrograph": s["per_micrograph"],
                "exclude_border": s["box"] // 2,
            },
        },
        {
            "id": "extraction",
            "step": "particle_extraction",
            "inputs": {"micrographs": "ctf.micrographs", "coordinates": "picking.coordinates"},
            "parameters": {"box": s["box"]},
        },
        {
            "id": "class2d",
            "step": "classification_2d",
            "inputs": {"particles": "extraction.particles"},
            "parameters": {
                "classes": s["classes"],
                "iterations": s["class_iterations"],
                "mask_diameter": s["mask"],
            },
        },
        initial,
        {
            "id": "refine",
            "step": "refine_3d",
            "inputs": {"particles": "class2d.selected", "reference": "initial.initial_map"},
            "parameters": {
                "iterations": s["refine_iterations"],
                "final_angular_step": s["final_step"],
                "mask_diameter": s["mask"],
            },
        },
        {
            "id": "postprocess",
            "step": "postprocess",
            "inputs": {"half_map_1": "refine.half_map_1", "half_map_2": "refine.half_map_2"},
        },
    ]
    for step in steps:
        step["backend"] = chosen(step["id"])
    return {"steps": steps}


def run_demo(
    out: Path,
    size: str = "small",
    backend: str = "builtin",
    say: Callable[[str], None] = print,
    workers: int = 1,
) -> DemoResult:
    from scipion_kg.tasks.hooks import ProgressReporter
    from scipion_kg.tasks.simulation import packaged_model
    from scipion_kg.tasks.workflow import parse_workflow, run_workflow

    if size not in SIZES:
        raise ProjectError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    if out.exists() and any(out.iterdir()):
        raise ProjectError(f"{out} already exists and is not empty; choose another --out")
    project = Project.init(out)
    model = project.root / "data" / "models" / packaged_model().name
    model.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(model, packaged_model().read_bytes())
    data = demo_workflow(size, backend, model)
    workflow_file = project.root / "demo-workflow.json"
    atomic_write_bytes(workflow_file, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    say(
        f"project {project.root}: simulating a {size} data set from PDB 1BD2, then {len(data['steps'])} steps"
    )
    workflow = parse_workflow(data, project, str(workflow_file), base=project.root)
    reporter = ProgressReporter(len(workflow.steps), quiet=False, say=say)
    result = run_workflow(workflow, workers=workers, reporter=reporter)
    failed = [o for o in result.outcomes.values() if o.status != "done"]
    if failed:
        first = failed[0]
        raise ProjectError(f"the demo stopped at step {first.step_id}: {first.error or first.status}")

    def path(step: str, role: str) -> str:
        return str(project.root / result.output(step, role))

    refine = result.outcomes["refine"].run
    post = result.outcomes["postprocess"].run
    assert refine is not None and post is not None
    from scipion_kg.tasks.star_blocks import read_blocks

    general = read_blocks(project.root / result.output("postprocess", "fsc"))["general"]
    summary: dict[str, Any] = {
        "project": str(project.root),
        "size": size,
        "backend": backend,
        "ground_truth_map": path("simulate", "ground_truth_map"),
        "final_map": path("postprocess", "map"),
        "half_maps": [path("refine", "half_map_1"), path("refine", "half_map_2")],
        "mask": path("postprocess", "mask"),
        "resolution": float(general["rlnFinalResolution"][0]),
        "bfactor": float(general["rlnBfactorUsedForSharpening"][0]),
        "fsc": path("postprocess", "fsc"),
        "truth_particles": path("simulate", "truth_particles"),
        "refined_particles": path("refine", "particles"),
        "seconds": round(result.seconds, 1),
        "steps": {o.step_id: {"status": o.status, "seconds": o.seconds} for o in result.outcomes.values()},
    }
    summary_file = project.root / "demo-summary.json"
    atomic_write_bytes(summary_file, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    project.close()
    return DemoResult(project.root, summary_file, summary)
