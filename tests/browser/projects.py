"""Recorded projects for the viewer's tests: a pipeline ending in a sharpened map, and a wide one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, Software
from scipion_kg.store import Store

__all__ = ["Pipeline", "record_pipeline", "record_wide"]

_TEST_SOFTWARE = [Software("scipion-kg", "test")]


@dataclass
class Pipeline:
    """IRIs of what was recorded, by name, and of the groups of runs the tests look for."""

    runs: dict[str, str] = field(default_factory=dict)
    entities: dict[str, str] = field(default_factory=dict)
    movies: list[str] = field(default_factory=list)
    chain_runs: list[str] = field(default_factory=list)
    chain_entities: list[str] = field(default_factory=list)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def record_pipeline(
    project: Project, store: Store, *, movies: int = 40, classifications: int = 10
) -> Pipeline:
    """Import ``movies`` movies (one run), motion-correct them together, then ``classifications``
    successive 2D classifications (one input, one output each), a 3D refinement making two half maps and
    a post-processing making the sharpened map."""
    recorder = Recorder(project, store)
    recorded = Pipeline()
    with recorder.run(
        "skg:ImportMovies", parameters=[Parameter("pattern", "movie_*.tif")], software=_TEST_SOFTWARE
    ) as run:
        for index in range(movies):
            run.add_output(
                _write(run.directory / f"movie_{index:03d}.tif", f"movie {index}\n"), "movie", "skg:Movie"
            )
    recorded.runs["import"] = run.iri
    recorded.movies = [output.iri for output in run.outputs]
    movie_paths = sorted(run.directory.glob("movie_*.tif"))
    with recorder.run(
        "skg:MotionCorrection",
        inputs=[Input(path, "movie", "skg:Movie") for path in movie_paths],
        parameters=[Parameter("patches", 5)],
        software=_TEST_SOFTWARE,
    ) as run:
        micrographs = _write(run.directory / "micrographs.star", "data_micrographs\n")
        run.add_output(micrographs, "micrographs", "skg:MicrographSet")
    recorded.runs["motion"] = run.iri
    recorded.entities["micrographs"] = run.outputs[0].iri
    particles = micrographs
    for index in range(classifications):
        with recorder.run(
            "skg:Classification2D",
            inputs=[Input(particles, "particles", "skg:ParticleSet")],
            parameters=[Parameter("iteration", index)],
            software=_TEST_SOFTWARE,
        ) as run:
            particles = _write(run.directory / "particles.star", f"data_particles\n# round {index}\n")
            run.add_output(particles, "particles", "skg:ParticleSet")
        recorded.chain_runs.append(run.iri)
        recorded.chain_entities.append(run.outputs[0].iri)
    with recorder.run(
        "skg:Refinement3D",
        inputs=[Input(particles, "particles", "skg:ParticleSet")],
        parameters=[Parameter("symmetry", "C1")],
        software=_TEST_SOFTWARE,
    ) as run:
        halves = [_write(run.directory / f"half{n}.mrc", f"half map {n}\n") for n in (1, 2)]
        for half in halves:
            run.add_output(half, "half_map", "skg:HalfMap")
    recorded.runs["refine"] = run.iri
    recorded.entities["half1"], recorded.entities["half2"] = (output.iri for output in run.outputs)
    with recorder.run(
        "skg:PostProcessing",
        inputs=[Input(half, "half_map", "skg:HalfMap") for half in halves],
        parameters=[Parameter("bfactor", -80.0)],
        software=_TEST_SOFTWARE,
    ) as run:
        run.add_output(
            _write(run.directory / "postprocess.mrc", "sharpened map\n"), "map", "skg:SharpenedMap"
        )
    recorded.runs["postprocess"] = run.iri
    recorded.entities["map"] = run.outputs[0].iri
    return recorded


def record_wide(project: Project, store: Store, *, movies: int = 140, per_run: int = 4) -> Pipeline:
    """A lineage of more than 300 nodes that folds to a handful: one import of ``movies`` movies,
    motion correction in batches of ``per_run`` movies, one refinement using every micrograph."""
    recorder = Recorder(project, store)
    recorded = Pipeline()
    with recorder.run("skg:ImportMovies", software=_TEST_SOFTWARE) as run:
        for index in range(movies):
            run.add_output(
                _write(run.directory / f"movie_{index:03d}.tif", f"movie {index}\n"), "movie", "skg:Movie"
            )
    recorded.runs["import"] = run.iri
    movie_paths = sorted(run.directory.glob("movie_*.tif"))
    micrographs: list[Path] = []
    for start in range(0, movies, per_run):
        batch = movie_paths[start : start + per_run]
        with recorder.run(
            "skg:MotionCorrection",
            inputs=[Input(path, "movie", "skg:Movie") for path in batch],
            software=_TEST_SOFTWARE,
        ) as run:
            for path in batch:
                output = _write(run.directory / f"{path.stem}.mrc", f"micrograph of {path.stem}\n")
                run.add_output(output, "micrograph", "skg:Micrograph")
                micrographs.append(output)
    with recorder.run(
        "skg:Refinement3D",
        inputs=[Input(path, "micrograph", "skg:Micrograph") for path in micrographs],
        software=_TEST_SOFTWARE,
    ) as run:
        run.add_output(_write(run.directory / "map.mrc", "map\n"), "map", "skg:Map")
    recorded.runs["refine"] = run.iri
    recorded.entities["map"] = run.outputs[0].iri
    return recorded
