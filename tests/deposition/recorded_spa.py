"""A small single-particle project recorded run by run, with real maps, for the deposition tests.

import -> motion correction -> CTF -> picking -> extraction -> 2D classification -> initial model ->
3D refinement (map, two half maps, particles) -> post-processing (sharpened map, mask, FSC). Every value
the deposition should find is stated here (``ACQUISITION``, ``COUNTS``, ``SOFTWARE``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt

from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, Software
from scipion_kg.store import Store

__all__ = [
    "ACQUISITION",
    "BOX",
    "COUNTS",
    "SOFTWARE",
    "VOXEL",
    "RecordedSPA",
    "record_refinement",
    "record_spa",
    "write_map",
]

BOX = 32
VOXEL = 1.5
ACQUISITION = {"voltage": 300.0, "cs": 2.7, "amplitude_contrast": 0.07, "dose_per_frame": 1.25, "frames": 40}
COUNTS = {"movies": 24, "picked": 5321, "extracted": 5300, "classes": 50, "selected_classes": 12}
COUNTS |= {"selected": 4100, "refined": 3987}
SOFTWARE = {
    "motion": Software("MotionCor2", "1.6.4", algorithm="patch-based motion correction"),
    "ctf": Software("CTFFIND", "4.1.14"),
    "pick": Software("crYOLO", "1.9.6", algorithm="crYOLO general model"),
    "extract": Software("RELION", "4.0.1-commit-ex4mpl"),
    "class2d": Software("RELION", "4.0.1-commit-ex4mpl", algorithm="relion_refine --K 50"),
    "initial": Software("RELION", "4.0.1-commit-ex4mpl", algorithm="relion_refine --denovo_3dref"),
    "refine": Software("RELION", "4.0.1-commit-ex4mpl", algorithm="relion_refine --auto_refine"),
    "postprocess": Software("RELION", "4.0.1-commit-ex4mpl", algorithm="relion_postprocess"),
}
Value = str | int | float | bool
POSTPROCESS_RESOLUTION = 3.21  # what the post-processing run claims (not what the half maps give)


def write_map(path: Path, data: npt.NDArray[np.floating[Any]], voxel: float = VOXEL) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data.astype(np.float32))
        mrc.voxel_size = voxel
    return path


def _blobs(box: int) -> npt.NDArray[np.float32]:
    """A few Gaussian blobs: a map with power at every resolution up to a few voxels."""
    grid = np.indices((box, box, box), dtype=np.float64) - box / 2
    volume = np.zeros((box, box, box))
    for centre, width in (((0, 0, 0), 3.0), ((5, -4, 2), 1.6), ((-6, 3, -5), 1.2), ((2, 7, -3), 2.2)):
        offset = sum((grid[axis] - centre[axis]) ** 2 for axis in range(3))
        volume += np.exp(-offset / (2 * width**2))
    return volume.astype(np.float32)


def half_maps(box: int, seed: int, noise: float = 0.08) -> tuple[npt.NDArray[np.float32], ...]:
    rng = np.random.default_rng(seed)
    signal = _blobs(box)
    return tuple((signal + rng.normal(0, noise, signal.shape)).astype(np.float32) for _ in range(2))


@dataclass
class RecordedSPA:
    project: Project
    runs: dict[str, str] = field(default_factory=dict)
    entities: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def _star(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"data_\n# {text}\n")
    return path


def record_refinement(
    recorder: Recorder,
    spa: RecordedSPA,
    name: str,
    *,
    seed: int,
    half_2_box: int = BOX,
    symmetry: str = "d2",
    software: Software = SOFTWARE["refine"],
) -> None:
    """A RELION-like gold-standard refinement run ``name``: map, half maps, particles and FSC."""
    inputs = [Input(spa.files["selected"], "particles", "skg:ParticleSet")]
    if "initial_map" in spa.files:
        inputs.append(Input(spa.files["initial_map"], "reference", "skg:Map"))
    with recorder.run(
        "skg:Refinement3D",
        inputs=inputs,
        parameters=[Parameter("symmetry", symmetry), Parameter("seed", seed)],
        software=[software],
    ) as run:
        half1, half2 = half_maps(BOX, seed)
        if half_2_box != BOX:
            half2 = half_maps(half_2_box, seed + 1)[1]
        spa.files[f"{name}_half_map_1"] = write_map(run.directory / "run_half1_class001_unfil.mrc", half1)
        spa.files[f"{name}_half_map_2"] = write_map(run.directory / "run_half2_class001_unfil.mrc", half2)
        average = (half1 + half2) / 2 if half1.shape == half2.shape else half1
        spa.files[f"{name}_map"] = write_map(run.directory / "run_class001.mrc", average)
        spa.files[f"{name}_particles"] = _star(run.directory / "run_data.star", f"{name} particles")
        run.add_output(
            spa.files[f"{name}_map"],
            "map",
            "skg:Map",
            properties={"skg:numberOfParticlesUsed": COUNTS["refined"], "skg:pointGroup": symmetry},
        )
        for half in (1, 2):
            run.add_output(spa.files[f"{name}_half_map_{half}"], f"half_map_{half}", "skg:HalfMap")
        run.add_output(
            spa.files[f"{name}_particles"],
            "particles",
            "skg:ParticleSet",
            properties={"skg:itemCount": COUNTS["refined"]},
        )
    spa.runs[name] = run.iri
    for output in run.outputs:
        key = "particles" if output.role == "particles" else output.role
        spa.entities[f"{name}_{key}"] = output.iri


def record_postprocess(recorder: Recorder, spa: RecordedSPA, half_1: str, half_2: str) -> None:
    """A post-processing run using the half maps ``spa.files[half_1]`` and ``spa.files[half_2]``."""
    with recorder.run(
        "skg:PostProcessing",
        inputs=[
            Input(spa.files[half_1], "half_map_1", "skg:HalfMap"),
            Input(spa.files[half_2], "half_map_2", "skg:HalfMap"),
        ],
        software=[SOFTWARE["postprocess"]],
    ) as run:
        with mrcfile.open(spa.files[half_1]) as one, mrcfile.open(spa.files[half_2]) as two:
            average = (one.data + two.data) / 2
        spa.files["postprocess_map"] = write_map(run.directory / "postprocess.mrc", average * 1.5)
        spa.files["mask"] = write_map(
            run.directory / "postprocess_mask.mrc", (average > 0.2).astype(np.float32)
        )
        spa.files["fsc"] = _star(run.directory / "postprocess.star", f"fsc of {half_1} and {half_2}")
        run.add_output(
            spa.files["postprocess_map"],
            "map",
            "skg:SharpenedMap",
            properties={"skg:resolution": POSTPROCESS_RESOLUTION},
        )
        run.add_output(spa.files["mask"], "mask", "skg:VolumeMask")
        run.add_output(spa.files["fsc"], "fsc", "skg:FSCCurve")
    spa.runs["postprocess"] = run.iri
    for output in run.outputs:
        spa.entities[f"postprocess_{output.role}"] = output.iri


def record_spa(project: Project, store: Store) -> RecordedSPA:
    """The whole chain, post-processing included (see the module docstring)."""
    recorder = Recorder(project, store)
    spa = RecordedSPA(project)
    with recorder.run(
        "skg:ImportMovies",
        parameters=[Parameter("pattern", "movies/*.tiff")],
        software=[Software("scipion-kg", "t")],
    ) as run:
        spa.files["movies"] = _star(run.directory / "movies.star", "movies")
        run.add_output(
            spa.files["movies"],
            "movies",
            "skg:MovieSet",
            properties={
                "skg:itemCount": COUNTS["movies"],
                "skg:accelerationVoltage": ACQUISITION["voltage"],
                "skg:sphericalAberration": ACQUISITION["cs"],
                "skg:amplitudeContrast": ACQUISITION["amplitude_contrast"],
                "skg:dosePerFrame": ACQUISITION["dose_per_frame"],
                "skg:numberOfFrames": int(ACQUISITION["frames"]),
                "skg:pixelSize": 0.75,
            },
        )
    spa.runs["import"] = run.iri
    spa.entities["movies"] = run.outputs[0].iri
    # (name, step, inputs, [(output, role, class, properties)])
    chain: list[tuple[str, str, list[tuple[str, str]], list[tuple[str, str, str, dict[str, Value]]]]] = [
        ("motion", "skg:MotionCorrection", [("movies", "movies")],
         [("micrographs", "micrographs", "skg:MicrographSet", {"skg:motionCorrectionType": "patch"})]),
        ("ctf", "skg:CTFEstimation", [("micrographs", "micrographs")],
         [("ctf", "micrographs", "skg:MicrographSet", {})]),
        ("pick", "skg:AutomaticParticlePicking", [("ctf", "micrographs")],
         [("coordinates", "coordinates", "skg:CoordinateSet", {"skg:itemCount": COUNTS["picked"]})]),
        ("extract", "skg:ParticleExtraction", [("ctf", "micrographs"), ("coordinates", "coordinates")],
         [("particles", "particles", "skg:ParticleSet", {"skg:itemCount": COUNTS["extracted"]})]),
        ("class2d", "skg:Classification2D", [("particles", "particles")],
         [("class_averages", "class_averages", "skg:ParticleSet", {"skg:numberOfClasses": COUNTS["classes"]}),
          ("selected", "selected", "skg:ParticleSet",
           {"skg:itemCount": COUNTS["selected"], "skg:numberOfClasses": COUNTS["selected_classes"]})]),
    ]  # fmt: skip
    for name, step, inputs, outputs in chain:
        with recorder.run(
            step, inputs=[Input(spa.files[f], role) for f, role in inputs], software=[SOFTWARE[name]]
        ) as run:
            for file_name, role, data_class, properties in outputs:
                spa.files[file_name] = _star(run.directory / f"{file_name}.star", f"{name} {file_name}")
                run.add_output(spa.files[file_name], role, data_class, properties=properties)
        spa.runs[name] = run.iri
        for (file_name, _, _, _), entity in zip(outputs, run.outputs, strict=True):
            spa.entities[file_name] = entity.iri
    with recorder.run(
        "skg:InitialModel",
        inputs=[Input(spa.files["selected"], "particles", "skg:ParticleSet")],
        software=[SOFTWARE["initial"]],
    ) as run:
        spa.files["initial_map"] = write_map(run.directory / "initial_model.mrc", half_maps(BOX, 99)[0])
        run.add_output(spa.files["initial_map"], "initial_map", "skg:InitialVolume")
    spa.runs["initial"] = run.iri
    record_refinement(recorder, spa, "refine", seed=1)
    record_postprocess(recorder, spa, "refine_half_map_1", "refine_half_map_2")
    return spa
