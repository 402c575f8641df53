"""RELION's backends on the small demo's data, measured against the simulation's ground truth.

The session's built-in demo (tests/conftest.py) is only read: its files are hard-linked into a new
project, and each RELION step runs there on the same inputs as the built-in step it stands beside
(motion correction on the movies, LoG picking and extraction on the motion-corrected micrographs, 2D
classification of the extracted particles, reconstruction from the refined poses, mask creation and
post-processing of the refined half maps). RELION's 3D auto-refine is exercised on tiny data in
test_wrappers_relion.py: on these 1,000 particles it takes far longer than the test suite may.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipion_kg.converters.mrc import read_map
from scipion_kg.tasks.builtin.fourier import fsc, resolution_at
from scipion_kg.tasks.particle_data import load_particles
from scipion_kg.tasks.workflow import WorkflowResult, parse_workflow, run_workflow
from scipion_kg.tasks.wrappers.relion import read_postprocess_star

from scipion_kg.demo import DemoResult
from scipion_kg.lineage import lineage, resolve_target
from scipion_kg.project import Project

from .demo_truth import drift_rms_error, picking_recall_precision, true_particle_share

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("relion_refine") is None,
        reason="RELION is not installed here (relion_refine is not on PATH; Debian: apt-get install relion)",
    ),
]


def _only(project: Path, pattern: str) -> Path:
    (found,) = project.glob(pattern)
    return found


@pytest.fixture(scope="module")
def relion_runs(demo: DemoResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorkflowResult]:
    root = tmp_path_factory.mktemp("relion-demo") / "project"
    project = Project.init(root)
    for folder in ("runs", "data"):
        # Hard links: the demo's movies and stacks are not copied, and the demo is never written to.
        shutil.copytree(demo.project / folder, root / folder, copy_function=os.link, dirs_exist_ok=True)
    files = {
        "movies": _only(root, "runs/ImportMovies-*/movies.star"),
        "acquisition": _only(root, "runs/ImportMovies-*/acquisition.json"),
        "micrographs": _only(root, "runs/CTFEstimation-*/micrographs_ctf.star"),
        "coordinates": _only(root, "runs/AutomaticParticlePicking-*/coordinates.star"),
        "extracted": _only(root, "runs/ParticleExtraction-*/particles.star"),
        "refined": _only(root, "runs/Refinement3D-*/run_data.star"),
        "map": _only(root, "runs/Refinement3D-*/run_class001.mrc"),
        "half1": _only(root, "runs/Refinement3D-*/run_half1_class001_unfil.mrc"),
        "half2": _only(root, "runs/Refinement3D-*/run_half2_class001_unfil.mrc"),
        "mask": _only(root, "runs/PostProcessing-*/postprocess_mask.mrc"),
    }
    given = {name: {"files": [str(path)]} for name, path in files.items()}
    steps: list[dict[str, Any]] = [
        {"id": "motion", "step": "motion_correction", "backend": "relion",
         "inputs": {"movies": given["movies"], "acquisition": given["acquisition"]},
         "parameters": {"dose_weighting": False}},
        {"id": "picking", "step": "particle_picking", "backend": "relion",
         "inputs": {"micrographs": given["micrographs"]},
         "parameters": {"diameter": [110.0, 180.0], "particles_per_micrograph": 55, "exclude_border": 64}},
        {"id": "extraction", "step": "particle_extraction", "backend": "relion",
         "inputs": {"micrographs": given["micrographs"], "coordinates": given["coordinates"]},
         "parameters": {"box": 128}},
        {"id": "class2d", "step": "classification_2d", "backend": "relion",
         "inputs": {"particles": given["extracted"]},
         "parameters": {"classes": 4, "iterations": 4, "psi_step": 20.0, "mask_diameter": 150.0}},
        {"id": "reconstruction", "step": "reconstruction", "backend": "relion",
         "inputs": {"particles": given["refined"]}},
        {"id": "mask", "step": "masking", "backend": "relion", "inputs": {"map": given["map"]}},
        {"id": "mask_builtin", "step": "masking", "inputs": {"map": given["map"]}},
        {"id": "postprocess", "step": "postprocess", "backend": "relion",
         "inputs": {"half_map_1": given["half1"], "half_map_2": given["half2"], "mask": given["mask"]}},
    ]  # fmt: skip
    workflow = parse_workflow({"steps": steps}, project, source="relion-demo", base=root)
    result = run_workflow(workflow, workers=1)
    failed = {k: o.error for k, o in result.outcomes.items() if o.status != "done"}
    assert not failed, failed
    return root, result


def _truth_dir(demo: DemoResult) -> Path:
    return _only(demo.project, "runs/Simulation-*")


def test_relion_motion_correction_recovers_the_drift(demo: DemoResult, relion_runs: Any) -> None:
    root, result = relion_runs
    truth = json.loads((_truth_dir(demo) / "ground_truth.json").read_text())["drift_px"]
    movies, rms = drift_rms_error((root / result.output("motion", "micrographs")).parent, truth)
    assert movies == 20
    assert rms < 0.5


def test_relion_log_picking_finds_the_particles(demo: DemoResult, relion_runs: Any) -> None:
    root, result = relion_runs
    recall, precision = picking_recall_precision(
        (root / result.output("picking", "coordinates")), _truth_dir(demo) / "ground_truth_particles.star"
    )
    assert recall >= 0.9
    assert precision >= 0.9


def _images_by_position(project: Project, particles: Path) -> dict[tuple[str, int, int], np.ndarray]:
    data = load_particles(project, particles)
    columns = data.table.columns
    keys = zip(
        (Path(str(n)).stem for n in columns["micrograph_name"]),
        np.rint(np.asarray(columns["coordinate_x"], dtype=float)).astype(int).tolist(),
        np.rint(np.asarray(columns["coordinate_y"], dtype=float)).astype(int).tolist(),
        strict=True,
    )
    return {key: data.images[row] for row, key in enumerate(keys)}


def _centroid(image: np.ndarray) -> np.ndarray:
    weight = np.clip(image - np.median(image), 0.0, None)
    y, x = np.indices(image.shape)
    return np.array([(weight * x).sum(), (weight * y).sum()], dtype=np.float64) / float(weight.sum())


def test_relion_extraction_matches_the_builtin_stacks(relion_runs: Any) -> None:
    # Same micrographs, same coordinates. RELION rounds each coordinate to a pixel where the built-in
    # extraction keeps the sub-pixel centre, so single noisy boxes differ; their averages must agree, sit
    # at the same place and RELION's background must be normalised (mean 0, standard deviation 1).
    root, result = relion_runs
    project = Project.find(root)
    relion_star = root / result.output("extraction", "particles")
    (builtin_star,) = [
        path
        for path in root.glob("runs/ParticleExtraction-*/particles.star")
        if path.parent != relion_star.parent
    ]
    theirs = _images_by_position(project, relion_star)
    ours = _images_by_position(project, builtin_star)
    project.close()
    common = sorted(set(theirs) & set(ours))
    assert len(common) >= 0.95 * len(ours)
    relion_stack = np.array([theirs[key] for key in common])
    builtin_average = np.mean([ours[key] for key in common], axis=0)
    relion_average = relion_stack.mean(axis=0)
    box = relion_stack.shape[1]
    y, x = np.indices((box, box))
    outside = np.hypot(x - box // 2, y - box // 2) > 0.75 * box / 2
    # Compared where the particles are: the background of both averages is mostly noise.
    agreement = float(np.corrcoef(relion_average[~outside], builtin_average[~outside])[0, 1])
    offset = np.abs(_centroid(relion_average) - _centroid(builtin_average))
    background = relion_stack[:, outside]
    print(f"extraction: {len(common)} boxes, averages r = {agreement:.3f}, centroid offset {offset} px")
    assert agreement > 0.9
    assert offset.max() < 1.0
    assert abs(float(background.mean())) < 0.05 and abs(float(background.std()) - 1.0) < 0.05


def test_relion_2d_selection_keeps_true_particles(demo: DemoResult, relion_runs: Any) -> None:
    root, result = relion_runs
    truth = _truth_dir(demo) / "ground_truth_particles.star"
    before, share_before = true_particle_share((root / result.output("class2d", "particles")), truth)
    kept, share_kept = true_particle_share((root / result.output("class2d", "selected")), truth)
    print(f"2D: {before} -> {kept}, true share {share_before:.3f} -> {share_kept:.3f}")
    assert kept < before
    assert share_kept >= share_before - 0.02  # the selection does not prefer junk


def test_relion_reconstruction_from_the_refined_poses_matches_the_truth(
    demo: DemoResult, relion_runs: Any
) -> None:
    root, result = relion_runs
    truth, pixel = read_map(Path(demo.summary["ground_truth_map"]))
    mask, _ = read_map(Path(demo.summary["mask"]))
    box = truth.shape[0]
    relion_map, relion_pixel = read_map(root / result.output("reconstruction", "map"))
    builtin_map, _ = read_map(_only(root, "runs/Refinement3D-*/run_class001.mrc"))
    assert relion_pixel == pytest.approx(pixel, abs=1e-3)
    ours = resolution_at(fsc(builtin_map * mask, truth * mask), 0.5, box, pixel)
    theirs = resolution_at(fsc(relion_map * mask, truth * mask), 0.5, box, pixel)
    print(f"FSC 0.5 against the truth: builtin {ours:.2f} A, relion_reconstruct {theirs:.2f} A")
    assert abs(theirs - ours) <= 0.3
    assert (root / result.output("reconstruction", "half_map_1")).is_file()


def test_relion_mask_overlaps_the_builtin_mask(relion_runs: Any) -> None:
    root, result = relion_runs
    theirs, _ = read_map(root / result.output("mask", "mask"))
    ours, _ = read_map(root / result.output("mask_builtin", "mask"))
    a, b = theirs > 0.5, ours > 0.5
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    print(f"mask Dice {dice:.3f}, voxels {a.sum()} / {b.sum()}")
    assert dice > 0.9


def test_relion_postprocess_agrees_with_the_builtin_resolution(demo: DemoResult, relion_runs: Any) -> None:
    root, result = relion_runs
    resolution, bfactor, _, _ = read_postprocess_star(root / result.output("postprocess", "fsc"))
    print(
        f"relion_postprocess {resolution:.2f} A, B {bfactor:.1f}; builtin {demo.summary['resolution']:.2f} A"
    )
    assert abs(resolution - demo.summary["resolution"]) <= 0.1 * demo.summary["resolution"]


def test_the_relion_runs_are_recorded_with_relions_version(relion_runs: Any) -> None:
    root, result = relion_runs
    project = Project.find(root)
    with project.open_store() as store:
        for step_id in (
            "motion",
            "picking",
            "extraction",
            "class2d",
            "reconstruction",
            "mask",
            "postprocess",
        ):
            summary = result.outcomes[step_id].run
            assert summary is not None
            output = root / summary.generated[0].path
            history = lineage(store, resolve_target(project, store, str(output)))
            (run,) = [r for r in history.runs.values() if r.iri == summary.run]
            assert any(s.get("name") == "RELION" and "3.1" in str(s.get("version")) for s in run.software), (
                step_id
            )
            assert {p.name: p.value for p in run.parameters}["backend"] == "relion"
    project.close()
