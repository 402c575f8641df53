"""The JSON API and its OpenAPI description."""

from __future__ import annotations

import json
import re

import pytest

from .projects import Recorded, client, make_app, record_viewer_project, sha256_of, token


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_viewer_project(tmp_path_factory.mktemp("api"))


def test_runs_paginated(recorded: Recorded) -> None:
    viewer = client(recorded, page_size=3)
    newest_first = list(reversed(recorded.order))
    pages = [viewer.get(f"/api/runs?page={page}").get_json() for page in (1, 2, 3)]
    assert [run["iri"] for page in pages for run in page["runs"]] == newest_first
    assert [len(page["runs"]) for page in pages] == [3, 3, 1]
    first = pages[0]["runs"][0]
    assert first["status"] == "Failed"
    assert first["software"] == [{"name": "RELION", "version": "3.1.3"}]
    assert first["links"]["html"] == f"/run/{token(first['iri'])}"


def test_run(recorded: Recorded) -> None:
    data = client(recorded).get(f"/api/runs/{token(recorded.runs['ctf'])}").get_json()
    assert data["status"] == "Succeeded"
    assert data["step"] == "https://w3id.org/scipion-kg/ontology#CTFEstimation"
    parameters = {p["name"]: p for p in data["parameters"]}
    assert parameters["max_resolution"]["unit"] == "http://qudt.org/vocab/unit/ANGSTROM"
    assert parameters["max_resolution"]["unit_symbol"] == "Å"
    assert parameters["threads"]["significant"] is False
    assert [(item["role"], item["sha256"]) for item in data["inputs"]] == [
        ("micrographs", sha256_of(recorded.files["micrographs"]))
    ]
    assert [item["role"] for item in data["outputs"]] == ["ctf"]


def test_entity(recorded: Recorded) -> None:
    data = client(recorded).get(f"/api/entities/{token(recorded.entities['map'])}").get_json()
    assert data["sha256"] == sha256_of(recorded.files["map"])
    assert data["size"] == recorded.files["map"].stat().st_size
    assert [run["iri"] for run in data["generated_by"]] == [recorded.runs["refine"]]
    assert [run["status"] for run in data["used_by"]] == ["Failed"]
    pixel = next(p for p in data["properties"] if p["label"] == "pixel size")
    assert (pixel["value"], pixel["unit_symbol"]) == ("1.9", "Å")


@pytest.mark.parametrize(
    ("root", "direction", "runs"),
    [
        ("particles", "upstream", {"import", "motion", "ctf", "pick", "extract"}),
        ("ctf", "upstream", {"import", "motion", "ctf"}),
        ("micrographs", "downstream", {"ctf", "pick", "extract", "refine", "failed"}),
        ("map", "downstream", {"failed"}),
    ],
)
def test_lineage(recorded: Recorded, root: str, direction: str, runs: set[str]) -> None:
    url = f"/api/entities/{token(recorded.entities[root])}/lineage?direction={direction}"
    data = client(recorded).get(url).get_json()
    assert data["direction"] == direction
    run_nodes = {node["id"] for node in data["nodes"] if node["kind"] == "run"}
    assert run_nodes == {recorded.runs[name] for name in runs}
    ids = {node["id"] for node in data["nodes"]}
    assert all(edge["source"] in ids and edge["target"] in ids for edge in data["edges"])
    if root == "ctf":
        used = {"source": recorded.runs["ctf"], "target": recorded.entities["micrographs"]}
        generated = {"source": recorded.entities["ctf"], "target": recorded.runs["ctf"]}
        assert used | {"relation": "used", "role": "micrographs"} in data["edges"]
        assert generated | {"relation": "wasGeneratedBy", "role": "ctf"} in data["edges"]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/api/runs/" + "0" * 64, 404),
        ("/api/entities/sha256-" + "0" * 64, 404),
        ("/api/entities/not..valid", 404),
        ("/api/entities/sha256-" + "0" * 64 + "/lineage", 404),
        ("/api/entities/{t}/lineage?direction=up", 400),
    ],
)
def test_api_errors_are_json(recorded: Recorded, url: str, code: int) -> None:
    response = client(recorded).get(url.format(t=token(recorded.entities["map"])))
    assert response.status_code == code
    assert response.get_json()["error"]["code"] == code


def test_openapi_documents_every_api_route(recorded: Recorded) -> None:
    app = make_app(recorded)
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.get_data(as_text=True))
    assert document["openapi"].startswith("3.0")
    assert document["info"]["title"] and document["info"]["version"]
    paths = document["paths"]
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api"):
            templated = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            assert templated in paths, templated
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                assert method.lower() in paths[templated], (templated, method)
    for documented in ("/sparql", "/file/{token}", "/entity/{token}/lineage.{fmt}"):
        assert documented in paths
    for item in paths.values():
        for operation in item.values():
            assert operation["responses"]


def test_openapi_is_valid(recorded: Recorded) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = client(recorded).get("/api/openapi.json").get_json()
    validator.validate(document)
