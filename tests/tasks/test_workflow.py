"""The step framework: checks before anything runs, completeness by bundle and input hashes, failures."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import RDF, XSD
from scipion_kg.converters.mrc import write_map
from scipion_kg.tasks.hooks import ProgressReporter
from scipion_kg.tasks.images import write_mrc
from scipion_kg.tasks.parameters import PARAMETER
from scipion_kg.tasks.registry import step_names, step_task_class
from scipion_kg.tasks.workflow import parse_workflow, run_workflow

from scipion_kg.errors import PipelineError, ProcessingError
from scipion_kg.namespaces import expand
from scipion_kg.project import Project
from scipion_kg.run_summary import read_run_summary
from scipion_kg.vocabulary import ontology_dir

SH = Namespace("http://www.w3.org/ns/shacl#")
QUIET = ProgressReporter(quiet=True)


def _blob_map(path: Path, box: int = 32) -> None:
    grid = np.indices((box, box, box)) - box / 2
    write_map(path, np.exp(-(grid**2).sum(axis=0) / 20.0).astype(np.float32), 2.0)


def _masking(project: Project, path: str, **parameters: object) -> dict[str, object]:
    return {
        "steps": [
            {"id": "mask", "step": "masking", "inputs": {"map": {"files": [path]}}, "parameters": parameters}
        ]
    }


def test_a_step_runs_once_and_reruns_only_when_its_input_changes(project: Project) -> None:
    _blob_map(project.root / "map.mrc")
    workflow = parse_workflow(_masking(project, "map.mrc", extend=2), project, base=project.root)
    first = run_workflow(workflow, reporter=QUIET)
    assert first.succeeded
    run = first.outcomes["mask"].run
    assert run is not None and [f.role for f in run.generated] == ["mask"]
    mask_file = project.root / run.generated[0].path
    mtime = mask_file.stat().st_mtime_ns
    again = run_workflow(workflow, reporter=QUIET)
    assert again.outcomes["mask"].run == run and mask_file.stat().st_mtime_ns == mtime  # complete: not rerun
    _blob_map(project.root / "map.mrc", box=36)  # new content: the recorded input hash no longer matches
    third = run_workflow(workflow, reporter=QUIET)
    assert third.succeeded and third.outcomes["mask"].run is not None
    assert third.outcomes["mask"].run.run != run.run
    with project.open_store() as store:
        rows = store.select("SELECT (COUNT(?r) AS ?n) WHERE { ?r a <http://www.w3.org/ns/prov#Activity> }")
    assert int(str(rows[0]["n"])) == 2


def test_parameters_outside_their_shape_are_refused_before_running(project: Project) -> None:
    _blob_map(project.root / "map.mrc")
    workflow = parse_workflow(_masking(project, "map.mrc", extend=-2), project, base=project.root)
    with pytest.raises(PipelineError, match=r"step mask: parameter extend=-2"):
        run_workflow(workflow, reporter=QUIET)
    assert not any(project.runs_dir.iterdir())


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"id": "x", "step": "nonsense"}, "unknown step 'nonsense'"),
        ({"id": "x", "step": "masking", "backend": "cryosparc"}, "backend 'cryosparc' is not available"),
        ({"id": "x", "step": "masking", "parameters": {"extend": "wide"}}, "extend='wide' is not an integer"),
        ({"id": "x", "step": "masking", "parameters": {"radius": 3}}, "unknown parameter radius"),
        ({"id": "x", "step": "masking"}, "needs input 'map'"),
        ({"id": "x", "step": "masking", "inputs": {"volume": "a"}}, "has no input 'volume'"),
        ({"id": "x", "step": "masking", "inputs": {"map": "earlier"}}, "refers to step 'earlier'"),
        (
            {"id": "x", "step": "masking", "inputs": {"map": {"files": ["missing.mrc"]}}},
            "missing.mrc is not a file",
        ),
    ],
)
def test_bad_workflows_name_the_step_and_the_problem(
    project: Project, step: dict[str, object], message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_workflow({"steps": [step]}, project, base=project.root)


def test_a_step_wired_to_the_wrong_kind_of_input_is_refused(project: Project) -> None:
    _blob_map(project.root / "map.mrc")
    data = {
        "steps": [
            {"id": "mask", "step": "masking", "inputs": {"map": {"files": ["map.mrc"]}}},
            {
                "id": "post",
                "step": "postprocess",
                "inputs": {"half_map_1": "mask.mask", "half_map_2": "mask.mask"},
            },
        ]
    }
    workflow = parse_workflow(data, project, base=project.root)
    with pytest.raises(
        PipelineError, match=r"step post: input 'half_map_1' needs skg:HalfMap.*skg:VolumeMask"
    ):
        run_workflow(workflow, reporter=QUIET)


def test_a_missing_program_is_named_before_anything_runs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(project.root))
    write_mrc(project.root / "movie.mrc", np.zeros((4, 16, 16), np.float32), 1.0)
    data = {
        "steps": [
            {
                "id": "movies",
                "step": "import_movies",
                "inputs": {"movies": {"files": ["movie.mrc"]}},
                "parameters": {"pixel_size": 1.0, "voltage": 300, "dose_per_frame": 1.0},
            },
            {
                "id": "motion",
                "step": "motion_correction",
                "backend": "relion",
                "inputs": {"movies": "movies"},
            },
        ]
    }
    with pytest.raises(PipelineError, match="relion_run_motioncorr is not on PATH"):
        run_workflow(parse_workflow(data, project, base=project.root), reporter=QUIET)


def test_corrupt_or_truncated_movies_and_missing_acquisition_stop_the_import(project: Project) -> None:
    good = project.root / "good.mrc"
    write_mrc(good, np.zeros((4, 32, 32), np.float32), 1.0)
    truncated = project.root / "truncated.mrc"
    truncated.write_bytes(good.read_bytes()[:-100])
    garbage = project.root / "garbage.mrc"
    garbage.write_bytes(b"not an MRC file at all" * 100)

    def workflow(movie: str, **parameters: object) -> object:
        step = {
            "id": "movies",
            "step": "import_movies",
            "inputs": {"movies": {"files": [movie]}},
            "parameters": parameters,
        }
        return parse_workflow({"steps": [step]}, project, base=project.root)

    acquisition = {"pixel_size": 1.0, "voltage": 300, "dose_per_frame": 1.0}
    with pytest.raises(
        ProcessingError,
        match=r"truncated.mrc: truncated MRC file.*32 x 32 x 4 values \(17408 bytes.*17308 bytes",
    ):
        run_workflow(workflow("truncated.mrc", **acquisition), reporter=QUIET)  # type: ignore[arg-type]
    with pytest.raises(ProcessingError, match=r"garbage.mrc"):
        run_workflow(workflow("garbage.mrc", **acquisition), reporter=QUIET)  # type: ignore[arg-type]
    with pytest.raises(ProcessingError, match=r"voltage of the movies is unknown.*set the parameter voltage"):
        run_workflow(workflow("good.mrc", pixel_size=1.0, dose_per_frame=1.0), reporter=QUIET)  # type: ignore[arg-type]
    assert not any(project.runs_dir.iterdir())


def test_the_acquisition_comes_from_the_mdoc(project: Project) -> None:
    movie = project.root / "m.mrc"
    write_mrc(movie, np.zeros((5, 32, 32), np.float32), 1.1)
    (project.root / "m.mrc.mdoc").write_text(
        "PixelSpacing = 1.1\nVoltage = 200\n\n[ZValue = 0]\nExposureDose = 6.5\nNumSubFrames = 5\n"
    )
    step = {
        "id": "movies",
        "step": "import_movies",
        "inputs": {"movies": {"files": ["m.mrc"]}, "mdoc": {"files": ["m.mrc.mdoc"]}},
    }
    result = run_workflow(parse_workflow({"steps": [step]}, project, base=project.root), reporter=QUIET)
    record = json.loads((project.root / result.output("movies", "acquisition")).read_text())
    assert record["voltage"] == 200 and record["pixel_size"] == pytest.approx(1.1)
    assert record["dose_per_frame"] == pytest.approx(1.3)
    star = (project.root / result.output("movies", "movies")).read_text()
    assert "m.mrc" in star and "200.0" in star


def test_box_larger_than_the_micrographs_is_refused_before_running(project: Project) -> None:
    write_mrc(project.root / "m.mrc", np.zeros((4, 128, 96), np.float32), 1.0)
    data = {
        "steps": [
            {
                "id": "movies",
                "step": "import_movies",
                "inputs": {"movies": {"files": ["m.mrc"]}},
                "parameters": {"pixel_size": 1.0, "voltage": 300, "dose_per_frame": 1.0},
            },
            {
                "id": "motion",
                "step": "motion_correction",
                "inputs": {"movies": "movies", "acquisition": "movies"},
            },
            {"id": "ctf", "step": "ctf_estimation", "inputs": {"micrographs": "motion"}},
            {"id": "pick", "step": "particle_picking", "inputs": {"micrographs": "ctf"}},
            {
                "id": "extract",
                "step": "particle_extraction",
                "inputs": {"micrographs": "ctf", "coordinates": "pick"},
                "parameters": {"box": 200},
            },
        ]
    }
    with pytest.raises(ProcessingError, match=r"box 200 px is larger than the micrographs \(96 x 128 px\)"):
        run_workflow(parse_workflow(data, project, base=project.root), reporter=QUIET)
    assert not any(project.runs_dir.iterdir())


def test_a_failing_step_registers_no_output_and_says_why(project: Project) -> None:
    write_map(project.root / "flat.mrc", np.zeros((16, 16, 16), np.float32), 1.0)
    workflow = parse_workflow(
        _masking(project, "flat.mrc", threshold=5.0, lowpass=20.0), project, base=project.root
    )
    result = run_workflow(workflow, reporter=QUIET)
    assert not result.succeeded and result.outcomes["mask"].status == "failed"
    assert "no voxel is above the threshold" in (result.outcomes["mask"].error or "")
    bundles = list(project.runs_dir.glob("*/provenance.ttl"))
    assert len(bundles) == 1
    summary = read_run_summary(bundles[0])
    assert summary.status == "Failed" and summary.generated == [] and "threshold" in (summary.error or "")


def test_every_step_parameter_has_a_shape_with_the_same_datatype() -> None:
    shapes = Graph().parse(ontology_dir() / "shapes" / "steps.ttl")
    datatypes = {
        "float": XSD.double,
        "floats": XSD.double,
        "int": XSD.integer,
        "ints": XSD.integer,
        "str": XSD.string,
        "bool": XSD.boolean,
    }
    for name in step_names():
        task = step_task_class(name)
        node = next(shapes.subjects(SH.targetClass, _iri(task.step_class)))
        declared = {}
        for prop in shapes.objects(node, SH.property):
            path = shapes.value(prop, SH.path)
            declared[str(path).removeprefix(str(PARAMETER))] = shapes.value(prop, SH.datatype)
        assert declared == {spec.name: datatypes[spec.kind] for spec in task.parameter_specs}, name
    assert (None, RDF.type, SH.NodeShape) in shapes


def _iri(term: str) -> URIRef:
    return URIRef(expand(term))


@pytest.mark.skipif(shutil.which("relion_run_motioncorr") is None, reason="RELION is not installed here")
def test_relion_and_builtin_runs_of_a_step_are_two_runs_with_their_own_software(
    project: Project,
) -> None:
    rng = np.random.default_rng(0)
    write_mrc(project.root / "m.mrc", rng.poisson(2.0, (6, 128, 128)).astype(np.float32), 1.5)

    def steps(backend: str) -> dict[str, object]:
        return {
            "steps": [
                {"id": "movies", "step": "import_movies", "inputs": {"movies": {"files": ["m.mrc"]}},
                 "parameters": {"pixel_size": 1.5, "voltage": 300, "dose_per_frame": 1.0}},
                {"id": "motion", "step": "motion_correction", "backend": backend,
                 "inputs": {"movies": "movies", "acquisition": "movies"}},
            ]
        }  # fmt: skip

    runs = {}
    for backend in ("builtin", "relion"):
        result = run_workflow(parse_workflow(steps(backend), project, base=project.root), reporter=QUIET)
        assert result.succeeded, result.outcomes["motion"].error
        runs[backend] = result.outcomes["motion"].run
    assert runs["builtin"] is not None and runs["relion"] is not None
    assert runs["builtin"].run != runs["relion"].run
    relion_bundle = (project.root / runs["relion"].generated[0].path).parents[1] / "provenance.ttl"
    text = relion_bundle.read_text()
    assert "RELION version: 3.1" in text and "relion_run_motioncorr" in text


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[str]:
    """A real Luigi central scheduler on a free local port, stopped after the test."""
    executable = shutil.which("luigid")
    if executable is None:
        pytest.skip("luigid (installed with luigi) is not on PATH")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [executable, "--port", str(port), "--address", "127.0.0.1", "--logdir", str(tmp_path),
         "--state-path", str(tmp_path / "state.pickle")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "api/task_list?data=%7B%7D", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("luigid did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_workflow_runs_through_a_central_luigid_scheduler(project: Project, luigid: str) -> None:
    _blob_map(project.root / "map.mrc")
    workflow = parse_workflow(_masking(project, "map.mrc", extend=2), project, base=project.root)
    result = run_workflow(workflow, scheduler_url=luigid, reporter=QUIET)
    assert result.succeeded
    with urllib.request.urlopen(
        luigid + "api/task_list?data=" + urllib.parse.quote('{"status": "DONE"}')
    ) as reply:
        done = json.loads(reply.read())["response"]
    assert any(name.startswith("MaskingTask") for name in done)
