"""Recorded projects for the viewer tests: the five-run chain of tests/conftest.py plus runs that
exercise the viewer (a map with known voxels, an FSC curve, logs and figures, hostile strings, a file
recorded outside the project)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from matplotlib.figure import Figure
from scipion_kg.webview import ViewerConfig, create_app

from scipion_kg.project import Project
from scipion_kg.recorder import Input, Parameter, Recorder, Software
from tests.conftest import Chain, record_chain

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PIXEL_SIZE = 1.899999976158142  # a float32 pixel size as an MRC header stores 1.9 Å
MAP_SHAPE = (6, 8, 10)  # z, y, x
LOG_TAIL = "refinement converged at iteration 12"
LOG_HEAD = "first line of a long log"
# Shells: frequency 1/Å and FSC; the curve first drops below 0.143 after the shell at 0.1 /Å (10 Å).
FSC_ROWS = [(0, 0.0, 1.0), (1, 0.05, 0.9), (2, 0.1, 0.2), (3, 0.15, 0.1), (4, 0.2, 0.05)]


@dataclass
class Recorded:
    project_dir: Path
    chain: Chain
    runs: dict[str, str] = field(default_factory=dict)
    entities: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # run IRIs in recording order


def token(iri: str) -> str:
    return iri.rsplit("/", 1)[-1]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _map_data() -> np.ndarray:
    return np.arange(np.prod(MAP_SHAPE), dtype=np.float32).reshape(MAP_SHAPE)


def _fsc_star() -> str:
    rows = "\n".join(f"{index} {frequency} {value}" for index, frequency, value in FSC_ROWS)
    return (
        "data_general\n\n_rlnFinalResolution 10.0\n\n"
        "data_fsc\n\nloop_\n_rlnSpectralIndex #1\n_rlnResolution #2\n"
        "_rlnFourierShellCorrelationCorrected #3\n"
        f"{rows}\n"
    )


def record_viewer_project(base: Path) -> Recorded:
    project = Project.init(base / "project")
    outside = base / "outside" / "reference.star"
    outside.parent.mkdir()
    outside.write_text("data_reference\n# a file the project does not own\n")
    try:
        with project.open_store(write=True) as store:
            chain = record_chain(project, store)
            recorded = Recorded(
                project.root, chain, dict(chain.runs), dict(chain.entities), dict(chain.files)
            )
            recorded.order = [chain.runs[name] for name in ("import", "motion", "ctf", "pick", "extract")]
            recorder = Recorder(project, store)
            with recorder.run(
                "skg:Refinement3D",
                inputs=[Input(chain.files["particles"], "particles"), Input(outside, "reference")],
                parameters=[
                    Parameter("symmetry", "C1"),
                    Parameter("note", HOSTILE),
                    Parameter("initial_lowpass", 40.0, "unit:ANGSTROM"),
                ],
                software=[Software("RELION", "3.1.3")],
                command_line=f"relion_refine --o {HOSTILE}",
            ) as run:
                map_path = run.directory / "run_class001.mrc"
                with mrcfile.new(map_path) as mrc:
                    mrc.set_data(_map_data())
                    mrc.voxel_size = PIXEL_SIZE
                fsc_path = run.directory / "run_fsc.star"
                fsc_path.write_text(_fsc_star())
                hostile_dir = run.directory / "<script>alert(1)<"
                hostile_dir.mkdir()
                hostile_path = hostile_dir / "script>"
                hostile_path.write_text("data_odd\n")
                (run.directory / "run.log").write_text(
                    LOG_HEAD + "\n" + "x" * 100_000 + "\n" + LOG_TAIL + "\n"
                )
                (run.directory / "run.err").write_text(f"warning: {HOSTILE}\n")
                figures = run.directory / "figures"
                figures.mkdir()
                (figures / "angles.png").write_bytes(_tiny_png())
                (run.directory / "notes.txt").write_text("not a figure\n")
                run.add_output(map_path, "map", "skg:Map", properties={"skg:pixelSize": PIXEL_SIZE})
                run.add_output(fsc_path, "fsc", "skg:FSCCurve", properties={"skg:resolution": 10.0})
                run.add_output(hostile_path, "odd", "skg:MetadataFile")
            recorded.runs["refine"] = run.iri
            recorded.order.append(run.iri)
            recorded.files.update(map=map_path, fsc=fsc_path, hostile=hostile_path, outside=outside)
            by_role = {item.role: item.iri for item in run.outputs}
            recorded.entities.update(map=by_role["map"], fsc=by_role["fsc"], hostile=by_role["odd"])
            recorded.entities["outside"] = next(item.iri for item in run.used if item.role == "reference")
            with (
                pytest.raises(RuntimeError),
                recorder.run(
                    "skg:PostProcessing",
                    inputs=[Input(map_path, "map")],
                    parameters=[Parameter("bfactor", -50.0, "skg:SquareAngstrom")],
                    software=[Software("RELION", "3.1.3")],
                ),
            ):
                raise RuntimeError(f"failed on {HOSTILE}")
            failed = store.select(
                "SELECT ?run WHERE { ?run <https://w3id.org/scipion-kg/ontology#runStatus> "
                "<https://w3id.org/scipion-kg/ontology#Failed> }"
            )
            recorded.runs["failed"] = str(failed[0]["run"])
            recorded.order.append(recorded.runs["failed"])
    finally:
        project.close()
    return recorded


def _tiny_png() -> bytes:
    figure = Figure(figsize=(1, 1))
    figure.add_subplot(1, 1, 1).plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def make_app(recorded: Recorded, **config: int) -> Flask:
    app = create_app(ViewerConfig(project_dir=recorded.project_dir, **config))  # type: ignore[arg-type]
    app.testing = True
    return app


def client(recorded: Recorded, **config: int) -> FlaskClient:
    return make_app(recorded, **config).test_client()
