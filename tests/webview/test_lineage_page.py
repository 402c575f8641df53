"""The lineage page and its graph.json on a recorded project: counts, layering, collapse and escaping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from scipion_kg.webview.app import create_app
from scipion_kg.webview.context import ViewerConfig
from scipion_kg.webview.links import entity_token, run_token

from scipion_kg.project import Project
from scipion_kg.recorder import Recorder, Software

from ..browser.projects import Pipeline, record_pipeline

MOVIES = 40
CLASSIFICATIONS = 10
HOSTILE_NAME = '<img src=x onerror="alert(1)">.star'


@dataclass
class Recorded:
    root: Path
    pipeline: Pipeline
    hostile: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    project = Project.init(tmp_path_factory.mktemp("lineage") / "project")
    with project.open_store(write=True) as store:
        pipeline = record_pipeline(project, store, movies=MOVIES, classifications=CLASSIFICATIONS)
        with Recorder(project, store).run("skg:Import", software=[Software("scipion-kg", "test")]) as run:
            hostile_file = run.directory / HOSTILE_NAME
            hostile_file.write_text("data_\n")
            run.add_output(hostile_file, "table", "skg:ParticleSet")
    project.close()
    yield Recorded(project.root, pipeline, run.outputs[0].iri)


@pytest.fixture(scope="module")
def client(recorded: Recorded) -> FlaskClient:
    client: FlaskClient = create_app(ViewerConfig(project_dir=recorded.root)).test_client()
    return client


def token(iri: str) -> str:
    value: str | None = entity_token(iri)
    assert value is not None
    return value


def node_id(iri: str) -> str:
    return ("entity-" if "/entity/" in iri else "run-") + iri.rsplit("/", 1)[-1]


def graph(client: FlaskClient, iri: str, query: str = "") -> dict[str, Any]:
    response = client.get(f"/lineage/{token(iri)}/graph.json?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    document: dict[str, Any] = response.get_json()
    return document


# Known answers from what the fixture records (upstream of the map: every run; downstream of the first
# movie: the motion correction and everything after it).
@pytest.mark.parametrize(
    ("root", "direction", "runs", "entities", "edges"),
    [
        # runs: import, motion, 10 classifications, refine, postprocess; files: 40 movies, micrographs,
        # 10 particle sets, 2 half maps, map; edges: 40 + 40 + 1 + 2 * 10 + 3 + 3
        (
            "map",
            "upstream",
            4 + CLASSIFICATIONS,
            MOVIES + CLASSIFICATIONS + 4,
            2 * MOVIES + 2 * CLASSIFICATIONS + 7,
        ),
        # runs: motion .. postprocess; files: the movie, micrographs, 10 particle sets, 2 halves, map
        ("movie", "downstream", 3 + CLASSIFICATIONS, CLASSIFICATIONS + 5, 2 * CLASSIFICATIONS + 8),
    ],
)
def test_the_expanded_graph_has_every_run_file_and_edge_in_layer_order(
    client: FlaskClient, recorded: Recorded, root: str, direction: str, runs: int, entities: int, edges: int
) -> None:
    root_iri = recorded.pipeline.entities["map"] if root == "map" else recorded.pipeline.movies[0]
    document = graph(client, root_iri, f"direction={direction}&expand=all")
    nodes = {node["id"]: node for node in document["nodes"]}
    assert document["counts"]["runs"] == runs and document["counts"]["entities"] == entities
    assert len(nodes) == len(document["nodes"]) == runs + entities
    assert sum(node["kind"] == "run" for node in nodes.values()) == runs
    assert len(document["edges"]) == document["counts"]["edges"] == edges
    assert document["root"] == node_id(root_iri) and nodes[document["root"]]["root"] is True
    for edge in document["edges"]:
        assert edge["source"] in nodes and edge["target"] in nodes
        assert nodes[edge["source"]]["layer"] < nodes[edge["target"]]["layer"]
        assert nodes[edge["source"]]["x"] < nodes[edge["target"]]["x"]
        kinds = (nodes[edge["source"]]["kind"], nodes[edge["target"]]["kind"])
        assert kinds == {"used": ("entity", "run"), "generated": ("run", "entity")}[edge["relation"]]


def test_the_ten_step_chain_and_the_forty_movie_fan_collapse(client: FlaskClient, recorded: Recorded) -> None:
    pipeline = recorded.pipeline
    document = graph(client, pipeline.entities["map"])
    groups = {node["id"]: node for node in document["nodes"] if node["kind"] == "group"}
    by_reason = {node["group"]["reason"]: node["group"] for node in groups.values()}
    assert set(by_reason) == {"chain", "fan"}
    assert set(by_reason["fan"]["members"]) == {node_id(movie) for movie in pipeline.movies}
    # The motion correction has one input once the movies are folded, so it heads the chain.
    chain = {pipeline.runs["motion"], pipeline.entities["micrographs"], *pipeline.chain_runs}
    chain |= set(pipeline.chain_entities)
    assert set(by_reason["chain"]["members"]) == {node_id(iri) for iri in chain}
    assert by_reason["chain"]["runs"] == CLASSIFICATIONS + 1
    shown = {node["label"] for node in document["nodes"] if node["kind"] != "group"}
    assert shown == {
        "ImportMovies",
        "Refinement3D",
        "half1.mrc",
        "half2.mrc",
        "PostProcessing",
        "postprocess.mrc",
    }
    assert len(document["edges"]) == 8
    # Expanding the chain shows its runs, linked to their pages, and keeps the movies folded.
    chain_id = next(node_id for node_id, node in groups.items() if node["group"]["reason"] == "chain")
    expanded = graph(client, pipeline.entities["map"], f"expand={chain_id}")
    nodes = {node["id"]: node for node in expanded["nodes"]}
    assert chain_id not in nodes and expanded["expanded"] == [chain_id]
    for run in pipeline.chain_runs:
        assert nodes[node_id(run)]["member_of"] == chain_id
        assert nodes[node_id(run)]["url"] == f"/run/{run_token(run)}"
    assert sum(node["kind"] == "group" for node in nodes.values()) == 1


def test_the_page_has_the_canvas_toggle_and_no_inline_script(client: FlaskClient, recorded: Recorded) -> None:
    map_token = token(recorded.pipeline.entities["map"])
    response = client.get(f"/lineage/{map_token}?direction=downstream")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<title>Lineage of postprocess.mrc" in page
    assert (
        f'data-graph-url="/lineage/{map_token}/graph.json"' in page and 'data-direction="downstream"' in page
    )
    assert f'href="/lineage/{map_token}?direction=upstream"' in page
    assert '<script src="/static/lineage.js"></script>' in page and "<script>" not in page
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_file_names_are_escaped(client: FlaskClient, recorded: Recorded) -> None:
    page = client.get(f"/lineage/{token(recorded.hostile)}").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page
    document = graph(client, recorded.hostile)
    assert [node["label"] for node in document["nodes"]][-1] == HOSTILE_NAME


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/lineage/sha256-" + "0" * 64, 404),
        ("/lineage/sha256-" + "0" * 64 + "/graph.json", 404),
        ("/lineage/..%2F..%2Fetc%2Fpasswd", 404),
        ("/lineage/{map}?direction=sideways", 400),
        ("/lineage/{map}/graph.json?direction=sideways", 400),
    ],
)
def test_bad_requests_get_an_error_page(
    client: FlaskClient, recorded: Recorded, path: str, status: int
) -> None:
    response = client.get(path.format(map=token(recorded.pipeline.entities["map"])))
    assert response.status_code == status
    assert "Traceback" not in response.get_data(as_text=True)
