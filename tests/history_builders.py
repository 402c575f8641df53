"""Recorded histories for the methods and compare tests: small branching chains with known differences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipion_kg.namespaces import entity_iri
from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, Software

PropertyValues = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class Output:
    name: str
    role: str
    data_class: str
    properties: PropertyValues | None = None


def run_step(
    recorder: Recorder,
    step: str,
    inputs: Sequence[tuple[Path, str]],
    outputs: Sequence[Output],
    parameters: Sequence[Parameter],
    software: Software,
) -> dict[str, Path]:
    """Record one run; each output's content depends on the run's identity, as a real program's would."""
    with recorder.run(
        step,
        inputs=[Input(path, role) for path, role in inputs],
        parameters=parameters,
        software=[software],
    ) as run:
        paths: dict[str, Path] = {}
        for output in outputs:
            path = run.directory / f"{output.name}.star"
            path.write_text(f"data_{output.name}\n# {run.signature}\n")
            run.add_output(path, output.role, output.data_class, properties=output.properties)
            paths[output.role] = path
    return paths


def movies_file(project: Project, name: str, content: str) -> Path:
    data = project.root / "data"
    data.mkdir(exist_ok=True)
    path = data / name
    path.write_text(content)
    return path


def motion(
    recorder: Recorder, movies: Path, *, patches: Sequence[object], dose_weighting: bool = True
) -> Path:
    return run_step(
        recorder,
        "skg:MotionCorrection",
        [(movies, "movies")],
        [Output("micrographs", "micrographs", "skg:MicrographSet", {"skg:itemCount": 24})],
        [Parameter("patches", list(patches)), Parameter("dose_weighting", dose_weighting)],
        Software("RELION", "3.1.3"),
    )["micrographs"]


def processing_branch(
    recorder: Recorder,
    micrographs: Path,
    *,
    max_resolution: float = 5.0,
    ctffind: str = "4.1.14",
    symmetry: str = "D2",
) -> Path:
    """CTF estimation → extraction → refinement → post-processing; returns the sharpened map."""
    ctf = run_step(
        recorder,
        "skg:CTFEstimation",
        [(micrographs, "micrographs")],
        [Output("ctf", "micrographs", "skg:MicrographSet", {"skg:itemCount": 24})],
        [
            Parameter("min_resolution", 30.0, "unit:ANGSTROM"),
            Parameter("max_resolution", max_resolution, "unit:ANGSTROM"),
        ],
        Software("CTFFIND", ctffind),
    )["micrographs"]
    particles = run_step(
        recorder,
        "skg:ParticleExtraction",
        [(micrographs, "micrographs"), (ctf, "ctf")],
        [
            Output(
                "particles",
                "particles",
                "skg:ParticleSet",
                {"skg:itemCount": 12345, "skg:pixelSize": 1.05, "skg:boxSize": 256},
            )
        ],
        [Parameter("box", 256, "unit:PIXEL_COUNT")],
        Software("RELION", "3.1.3"),
    )["particles"]
    refined = run_step(
        recorder,
        "skg:Refinement3D",
        [(particles, "particles")],
        [
            Output(
                "run_class001",
                "map",
                "skg:Map",
                {"skg:resolution": 3.4, "skg:numberOfParticlesUsed": 12000, "skg:pointGroup": symmetry},
            )
        ],
        [Parameter("symmetry", symmetry), Parameter("initial_lowpass", 40.0, "unit:ANGSTROM")],
        Software("RELION", "3.1.3"),
    )["map"]
    return run_step(
        recorder,
        "skg:PostProcessing",
        [(refined, "half_map_1")],
        [Output("postprocess", "map", "skg:SharpenedMap", {"skg:resolution": 3.1, "skg:bFactor": -95.5})],
        [Parameter("bfactor_low_resolution", 10.0, "unit:ANGSTROM")],
        Software("RELION", "3.1.3"),
    )["map"]


def iri_of(project: Project, path: Path) -> str:
    return entity_iri(project.hash_cache.digest(path).sha256)
