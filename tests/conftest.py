"""Shared fixtures: fresh projects, the shared corpus of real files, a chain of recorded runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scipion_kg.demo import DemoResult, run_demo
from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, Software
from scipion_kg.store import Store

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The corpus of real files beside the checkout (CI always has it; a user's clone may not)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared corpus of real EM files is not beside this checkout ({SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """One small built-in demo for the whole session (about a minute on 2 cores); tests only read it,
    except the deposition test, which records one more run in it."""
    return run_demo(tmp_path_factory.mktemp("demo") / "project", "small", say=lambda _: None)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    project = Project.init(tmp_path / "project")
    yield project
    project.close()


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    with project.open_store(write=True) as store:
        yield store


@dataclass
class Chain:
    """Five recorded runs: import -> motion correction -> CTF -> picking -> extraction."""

    files: dict[str, Path]
    runs: dict[str, str]
    entities: dict[str, str]


STEPS = [
    # (run name, step, [(input file name, role)], [(output file name, role, data class)], parameters)
    (
        "motion",
        "skg:MotionCorrection",
        [("movies", "movies")],
        [("micrographs", "micrographs", "skg:MicrographSet")],
        [Parameter("patches", 5), Parameter("dose_per_frame", 1.2, "skg:ElectronPerSquareAngstrom")],
    ),
    (
        "ctf",
        "skg:CTFEstimation",
        [("micrographs", "micrographs")],
        [("ctf", "ctf", "skg:CTFSet")],
        [Parameter("max_resolution", 5.0, "unit:ANGSTROM"), Parameter("threads", 2, significant=False)],
    ),
    (
        "pick",
        "skg:ParticlePicking",
        [("micrographs", "micrographs")],
        [("coords", "coordinates", "skg:CoordinateSet")],
        [Parameter("diameter", 150.0, "unit:ANGSTROM")],
    ),
    (
        "extract",
        "skg:ParticleExtraction",
        [("micrographs", "micrographs"), ("coords", "coordinates"), ("ctf", "ctf")],
        [("particles", "particles", "skg:ParticleSet")],
        [Parameter("box_size", 64)],
    ),
]


def record_chain(project: Project, store: Store | None) -> Chain:
    recorder = Recorder(project, store)
    data = project.root / "data"
    data.mkdir(exist_ok=True)
    files = {"movies": data / "movies.star"}
    files["movies"].write_text("data_movies\nloop_\n_rlnMicrographMovieName\nmovie_001.tif\n")
    runs: dict[str, str] = {}
    entities: dict[str, str] = {}
    with recorder.run(
        "skg:Import",
        parameters=[Parameter("source", "movies.star")],
        software=[Software("scipion-kg", "test")],
    ) as run:
        run.add_output(files["movies"], "movies", "skg:MovieSet")
    runs["import"] = run.iri
    entities["movies"] = run.outputs[0].iri
    for name, step, inputs, outputs, parameters in STEPS:
        with recorder.run(
            step,
            inputs=[Input(files[f], role) for f, role in inputs],
            parameters=parameters,
            software=[Software("scipion-kg", "test", algorithm=name)],
        ) as run:
            for file_name, role, data_class in outputs:
                path = run.directory / f"{file_name}.star"
                path.write_text(f"data_{file_name}\n# made by {name}\n")
                files[file_name] = path
                run.add_output(path, role, data_class)
        runs[name] = run.iri
        for (file_name, _, _), entity in zip(outputs, run.outputs, strict=True):
            entities[file_name] = entity.iri
    return Chain(files, runs, entities)


@pytest.fixture
def chain(project: Project, store: Store) -> Chain:
    return record_chain(project, store)
