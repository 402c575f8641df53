"""The viewer against a SPARQL 1.1 server (a real ``oxigraph serve``) instead of the embedded store: a
project whose graph lives on the server, and a bare endpoint with no project directory."""

from __future__ import annotations

import json
from pathlib import Path

from scipion_kg.webview import ViewerConfig, create_app

from scipion_kg.project import Project, StoreConfig

from ..conftest import record_chain
from ..test_store_endpoint import sparql_server

__all__ = ["sparql_server"]


def test_a_project_on_an_endpoint_is_browsed_like_an_embedded_one(sparql_server: str, tmp_path: Path) -> None:
    project = Project.init(
        tmp_path / "remote", store=StoreConfig(f"{sparql_server}/query", f"{sparql_server}/update")
    )
    with project.open_store(write=True) as store:
        chain = record_chain(project, store)
    client = create_app(ViewerConfig(project_dir=project.root)).test_client()
    overview = client.get("/").get_data(as_text=True)
    for run in chain.runs.values():
        assert run.rsplit("/", 1)[-1] in overview
    particles = chain.entities["particles"].rsplit("/", 1)[-1]
    graph = client.get(f"/lineage/{particles}/graph.json?expand=all").get_json()
    runs = {node["iri"] for node in graph["nodes"] if node["kind"] == "run"}
    assert runs == set(chain.runs.values())
    answer = client.get(
        "/sparql",
        query_string={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?r a <http://www.w3.org/ns/prov#Activity> }"},
        headers={"Accept": "application/sparql-results+json"},
    )
    assert answer.status_code == 200
    count = json.loads(answer.data)["results"]["bindings"][0]["n"]["value"]
    assert int(count) == len(chain.runs)
    # A bare endpoint, no project directory: the graph pages work, files are simply not there to show.
    bare = create_app(ViewerConfig(endpoint=f"{sparql_server}/query")).test_client()
    assert bare.get("/").status_code == 200
    assert bare.get(f"/entity/{particles}").status_code == 200
    assert bare.get(f"/file/{particles}").status_code == 404
